"""Conv and pooling: bigmodel vs torch CPU (2 threads), interleaved in one run, as a ratio table.

    PYTHONPATH=python python3 benchmarks/compare_conv.py [--rounds 7]

rows() returns [{workload, ours_ms, anchor_ms, ratio, ...}], ratio = anchor_ms / ours_ms
(throughput ratio: > 1 means bigmodel is faster). Each round times ours then torch (best of a
few calls each, more for sub-millisecond workloads); the table keeps the best of all rounds for
each, so both see the same machine load.
Pool rows add GB/s: bytes of the arrays read and written (fwd: x + y; fwd+bwd: x + y + dy + dx;
the int64 indices are not counted) over our time.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import bigmodel
from bigmodel import ops


_CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def _best(fn, calls, clock=time.perf_counter):
    best = float("inf")
    for _ in range(calls):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best * 1e3


def _conv_workloads(torch, F):
    rng = np.random.default_rng(0)
    out = []
    for name, xs, ws, pad, need_dx in (("MNIST-1 1->32 3x3 28^2 N64", (64, 1, 28, 28), (32, 1, 3, 3), 0, False),
                                       ("MNIST-2 32->64 3x3 26^2 N64", (64, 32, 26, 26), (64, 32, 3, 3), 0, True),
                                       ("ResNet 64->64 3x3 p1 56^2 N32", (32, 64, 56, 56), (64, 64, 3, 3), 1, True)):
        x = rng.standard_normal(xs).astype(np.float32)
        w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32)
        b = rng.standard_normal(ws[0]).astype(np.float32)
        y = ops.conv2d(x, w, b, padding=pad)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        tx = torch.from_numpy(x).requires_grad_(need_dx)
        tw = torch.from_numpy(w).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def ours_f(x=x, w=w, b=b, pad=pad):
            ops.conv2d(x, w, b, padding=pad)

        def torch_f(x=x, w=w, b=b, pad=pad):
            with torch.no_grad():
                F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), padding=pad)

        def ours_fb(x=x, w=w, b=b, dy=dy, pad=pad, need_dx=need_dx):
            ops.conv2d(x, w, b, padding=pad)
            ops.conv2d_backward(dy, x, w, padding=pad, need_dx=need_dx)

        def torch_fb(tx=tx, tw=tw, tb=tb, tdy=tdy, pad=pad):
            tw.grad = tb.grad = tx.grad = None
            F.conv2d(tx, tw, tb, padding=pad).backward(tdy)

        bwd = "fwd+bwd" if need_dx else "fwd+bwd(dW,db)"
        out.append((f"{name} fwd", ours_f, torch_f, None))
        out.append((f"{name} {bwd}", ours_fb, torch_fb, None))
    return out


def _pool_workloads(torch, F):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 64, 24, 24)).astype(np.float32)
    dy = rng.standard_normal((64, 64, 12, 12)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_(True)
    tdy = torch.from_numpy(dy)
    fwd_bytes = x.nbytes + dy.nbytes
    fb_bytes = 2 * fwd_bytes

    def max_f():
        ops.max_pool2d(x, 2)

    def max_fb():
        y, i = ops.max_pool2d(x, 2)
        ops.max_pool2d_backward(dy, i, x.shape)

    def avg_f():
        ops.avg_pool2d(x, 2)

    def avg_fb():
        ops.avg_pool2d(x, 2)
        ops.avg_pool2d_backward(dy, x.shape, 2)

    def t_max_f():
        with torch.no_grad():
            F.max_pool2d(torch.from_numpy(x), 2)

    def t_avg_f():
        with torch.no_grad():
            F.avg_pool2d(torch.from_numpy(x), 2)

    def t_max_fb():
        tx.grad = None
        F.max_pool2d(tx, 2).backward(tdy)

    def t_avg_fb():
        tx.grad = None
        F.avg_pool2d(tx, 2).backward(tdy)

    return [("max_pool 2x2 s2 N64 C64 24^2 fwd", max_f, t_max_f, fwd_bytes),
            ("max_pool 2x2 s2 N64 C64 24^2 fwd+bwd", max_fb, t_max_fb, fb_bytes),
            ("avg_pool 2x2 s2 N64 C64 24^2 fwd", avg_f, t_avg_f, fwd_bytes),
            ("avg_pool 2x2 s2 N64 C64 24^2 fwd+bwd", avg_fb, t_avg_fb, fb_bytes)]


def rows(rounds=5, calls=5, threads=2, select=None, clock="wall"):
    """Time every workload (ours and torch interleaved); see the module docstring.

    clock='cpu' times process CPU time instead of wall time: on a heavily shared machine it
    ignores the time a thread waits to be scheduled (but counts spinning at barriers)."""
    clk = _CLOCKS[clock]
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    bigmodel.set_num_threads(threads)
    work = _conv_workloads(torch, F) + _pool_workloads(torch, F)
    if select:
        work = [w for w in work if any(s in w[0] for s in select)]
    result = []
    for name, ours, theirs, nbytes in work:
        ours(); theirs()  # warm-up (scratch, thread pools, oneDNN primitive cache)
        # Sub-millisecond workloads get more calls per round (at least ~20 ms of each), so that
        # the best call is not a scheduler artefact on a shared machine.
        t0 = time.perf_counter(); ours(); theirs(); t1 = time.perf_counter() - t0
        n = max(calls, min(200, int(0.04 / max(t1, 1e-6))))
        o = a = float("inf")
        for _ in range(rounds):
            o = min(o, _best(ours, n, clk))
            a = min(a, _best(theirs, n, clk))
        row = {"workload": name, "ours_ms": round(o, 3), "anchor_ms": round(a, 3),
               "ratio": round(a / o, 2)}
        if nbytes:
            row["ours_GBps"] = round(nbytes / (o * 1e-3) / 1e9, 1)
            row["anchor_GBps"] = round(nbytes / (a * 1e-3) / 1e9, 1)
        result.append(row)
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--select", nargs="*", help="substrings of workload names to keep")
    ap.add_argument("--clock", choices=sorted(_CLOCKS), default="wall")
    args = ap.parse_args()
    print(f"bigmodel {bigmodel.__version__} isa={bigmodel.info()['isa']} threads={args.threads} "
          f"clock={args.clock}")
    print(f"{'workload':44s} {'ours ms':>9s} {'torch ms':>9s} {'ratio':>6s} {'GB/s':>6s}")
    for r in rows(args.rounds, args.calls, args.threads, args.select, args.clock):
        gb = f"{r['ours_GBps']:6.1f}" if "ours_GBps" in r else ""
        print(f"{r['workload']:44s} {r['ours_ms']:9.3f} {r['anchor_ms']:9.3f} {r['ratio']:6.2f} {gb}")


if __name__ == "__main__":
    main()
