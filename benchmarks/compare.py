"""One markdown table: every workload, ours beside the anchor a user would pick, same run.

    python benchmarks/compare.py [--quick] [--only gemm,conv,...]

Columns: workload, ours (ms), anchor and its time, ratio (anchor time / ours: > 1 means we are
faster), GFLOP/s and % of this machine's fp32 FMA peak (BIGMODEL_PEAK_GFLOPS, default 230 =
2 Zen 4 cores x 32 FLOP/cycle x ~3.6 GHz). Each kernel family adds a compare_<family>.py with a
rows() function; GPU rows come from compare_gpu.py when a GPU is present.
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import inspect
import os
import platform
import sys

# Ours (libgomp) and the anchors (OpenBLAS, torch) keep their worker threads spinning after a
# call; in one process on 2 cores each pool then waits out the other's spin in 4 ms scheduler
# slices (a 0.1 ms 256³ SGEMM read 1.3 ms). Short spins for both, set before either library
# loads (benchmarks/NOTES.md "Method on this machine").
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bigmodel  # noqa: E402

FAMILIES = ["gemm", "conv", "rnn", "attention", "svd", "train"]
PEAK = float(os.environ.get("BIGMODEL_PEAK_GFLOPS", "230"))


def fmt_row(r):
    ratio = r["anchor_ms"] / r["ours_ms"] if r.get("anchor_ms") else float("nan")
    gf = r["flop"] / (r["ours_ms"] * 1e-3) / 1e9 if r.get("flop") else r.get("gflops")
    if "ours_GBps" in r and not r.get("note"):
        r["note"] = f"{r['ours_GBps']} GB/s ours, {r.get('anchor_GBps', '?')} GB/s anchor"
    cells = [r["workload"], f"{r['ours_ms']:.3f}", f"{r.get('anchor', 'torch')} {r['anchor_ms']:.3f}",
             f"{ratio:.2f}x", f"{gf:.0f}" if gf else "", f"{100 * gf / PEAK:.0f}%" if gf else "",
             r.get("note", "")]
    return "| " + " | ".join(cells) + " |"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer, smaller workloads")
    p.add_argument("--only", default=",".join(FAMILIES), help="comma-separated families")
    args = p.parse_args(argv)
    info = bigmodel.info()
    print(f"# bigmodel {info['version']} — {datetime.date.today()} — {platform.node()} — "
          f"isa {info['isa']}, {info['threads']} threads, peak {PEAK:.0f} GFLOP/s\n")
    print("| workload | ours ms | anchor ms | ratio (anchor/ours) | GFLOP/s | % peak | note |")
    print("|---|---|---|---|---|---|---|")
    for fam in args.only.split(","):
        try:
            mod = importlib.import_module(f"compare_{fam}")
        except ModuleNotFoundError:
            continue
        try:
            if "quick" in inspect.signature(mod.rows).parameters:
                result = mod.rows(quick=args.quick)
            else:
                result = mod.rows(rounds=2, calls=3) if args.quick else mod.rows()
        except ImportError as e:  # an optional anchor (torch, scikit-learn) is not installed
            print(f"| {fam}: skipped, {e} | | | | | | |", flush=True)
            continue
        for r in result:
            print(fmt_row(r), flush=True)
    if info["gpu_present"]:
        try:
            import compare_gpu
            print(compare_gpu.table(compare_gpu.rows()), flush=True)
            print(compare_gpu.family_tables(), flush=True)
        except ModuleNotFoundError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
