#!/usr/bin/env python3
"""Lists the innermost FMA loops of compiled kernels that store vector registers to the stack.

A micro-kernel's accumulators must live in registers for the whole k loop. Twice in session 7
GCC kept them in memory instead, storing every accumulator on every k step (half speed, no
warning): once through a store loop bounded by the run-time row count, once when a tile
function was inlined into a driver. This reads `objdump -d` of the object files and reports,
per function, the innermost loops (a backward jump with no other inside it) that contain at
least 6 vector FMAs (vfmadd*, vdpbf16ps on ymm/zmm) and 2 or more stores of a ymm/zmm
register to (%rbp)/(%rsp) offsets (scalar remainder loops are not counted). Usage, after
tools/dev_build.sh:

    python3 tools/check_spills.py build/dev-off/CMakeFiles/bigmodel_cpu.dir/csrc/cpu/*.o

Exit status 1 when any loop is found. A heuristic: it reads text, it does not prove anything;
read the listed loop before acting. Known false positive: the SpMM row kernels
(svd_avx512.cpp, row_fwd_zmm<..., 4>), whose flagged "loop" is the rare path for a bad index or
an edge row around the main pair loop, not the pair loop itself (which is clean).
"""
from __future__ import annotations

import re
import subprocess
import sys

FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(.*)$")
JUMP = re.compile(r"j\w+\s+([0-9a-f]+)")
SPILL = re.compile(r"vmov\w*\s+%[yz]mm\d+,-?0x[0-9a-f]+\(%r[bs]p\)")


def loops(obj: str):
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", obj], check=True,
                          capture_output=True, text=True).stdout
    funcs, cur = {}, None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            cur = funcs.setdefault(m.group(2), [])
            continue
        m = INSN.match(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), m.group(2)))
    for name, ins in funcs.items():
        at = {a: i for i, (a, _) in enumerate(ins)}
        back = []
        for i, (a, txt) in enumerate(ins):
            m = JUMP.match(txt)
            if m and int(m.group(1), 16) < a and int(m.group(1), 16) in at:
                back.append((at[int(m.group(1), 16)], i))
        for s, e in back:
            if any(s <= s2 and e2 < e for s2, e2 in back if (s2, e2) != (s, e)):
                continue  # an outer loop
            body = [t for _, t in ins[s:e + 1]]
            fmas = sum(("vfmadd" in t or "vdpbf16" in t) and ("%ymm" in t or "%zmm" in t)
                       for t in body)
            spills = sum(SPILL.match(t) is not None for t in body)
            if fmas >= 6:
                yield name, fmas, spills


def main(argv):
    found = checked = 0
    for obj in argv:
        for name, fmas, spills in loops(obj):
            checked += 1
            if spills >= 2:
                found += 1
                print(f"{obj}: {name[:150]}: {fmas} FMAs, {spills} vector stores to the stack")
    print(f"{checked} innermost FMA loops, {found} with vector stores to the stack")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
