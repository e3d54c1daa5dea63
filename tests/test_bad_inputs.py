"""The bad-input matrix (tests/bad_input_cases.py): every public op, functional and layer with
wrong dtypes, ndims, shapes, sizes and parameters, unusual views, NaN/Inf, NumPy mixed with CuPy
and 32-bit-overflowing sizes. One child interpreter per group runs its cases, so a crash or a
hang fails that group and names the case that was running."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import bigmodel
import bad_input_cases as cases

TIMEOUT_S = 120
SLOW_TIMEOUT_S = 600
_PYTHONPATH = os.pathsep.join(
    [os.path.dirname(os.path.dirname(os.path.abspath(bigmodel.__file__))), cases.HERE]
    + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def run_group(name):
    """(results by case id, None) or (results so far, why the child failed)."""
    env = dict(os.environ, PYTHONPATH=_PYTHONPATH, PYTHONFAULTHANDLER="1")
    cmd = [sys.executable, os.path.join(cases.HERE, "bad_input_cases.py"), name]
    timeout = SLOW_TIMEOUT_S if name in cases.SLOW_GROUPS else TIMEOUT_S
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        stdout, stderr, rc, hung = proc.stdout, proc.stderr, proc.returncode, False
    except subprocess.TimeoutExpired as e:
        def text(v):
            return (v.decode(errors="replace") if isinstance(v, bytes) else v) or ""
        stdout, stderr, rc, hung = text(e.stdout), text(e.stderr), None, True
    results, running, done = {}, None, False
    for line in stdout.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "start" in rec:
            running = rec["start"]
        elif "id" in rec:
            results[rec["id"]] = rec
            running = None
        elif "done" in rec:
            done = True
    if hung:
        return results, f"hung (> {timeout} s) in case {running}\n{stderr[-3000:]}"
    if rc != 0 or not done:
        return results, (f"child exited with status {rc} in case {running} (a crash)\n"
                         f"{stderr[-3000:]}")
    return results, None


@pytest.mark.parametrize("name", [pytest.param(g, marks=pytest.mark.slow) if g in cases.SLOW_GROUPS
                                  else g for g in cases.GROUPS])
def test_bad_input_matrix(name):
    results, crash = run_group(name)
    failed = [f"{cid}: {r['msg']}" for cid, r in results.items() if not r["ok"]]
    assert crash is None, crash + ("\nalso failed:\n" + "\n".join(failed) if failed else "")
    assert results, f"group {name} has no cases"
    assert not failed, f"{len(failed)} of {len(results)} cases failed:\n" + "\n".join(failed)
