"""Attention ratio table: bigmodel.ops.attention beside torch SDPA (CPU, 2 threads) in the same
run, interleaved, best of a few rounds; plus a naive NumPy softmax(QK^T)V row.

    PYTHONPATH=python python3 benchmarks/compare_attention.py [--quick]

rows() returns dicts: workload, ours_ms, anchor_ms, ratio (anchor_ms / ours_ms: > 1 means
bigmodel is faster), gflops (bigmodel's throughput; fwd = 4 B H Sq Sk D, halved when causal;
fwd+bwd counts 3.5x the forward, the usual FlashAttention convention).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from bigmodel import ops

B, H, D = 8, 8, 64


_clock = time.perf_counter


def _best(fns, rounds):
    """Interleaved timing: each round runs every fn once; returns best time (ms) per fn."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, f in enumerate(fns):
            t0 = _clock()
            f()
            best[i] = min(best[i], (_clock() - t0) * 1e3)
    return best


def _inputs(S, seed=0):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((B, H, S, D)).astype(np.float32) for _ in range(3))
    do = rng.standard_normal((B, H, S, D)).astype(np.float32)
    return q, k, v, do


def _flops(S, causal, bwd):
    f = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)
    return f * (3.5 if bwd else 1.0)


def _ours(q, k, v, do, causal, bwd):
    if not bwd:
        return lambda: ops.attention(q, k, v, causal=causal)

    def run():
        out, lse = ops.attention(q, k, v, causal=causal, return_lse=True)
        ops.attention_backward(do, q, k, v, out, lse, causal=causal)
    return run


def _torch(torch, q, k, v, do, causal, bwd):
    F = torch.nn.functional.scaled_dot_product_attention
    tq, tk, tv, tdo = (torch.from_numpy(x) for x in (q, k, v, do))
    if not bwd:
        def fwd():
            with torch.no_grad():
                F(tq, tk, tv, is_causal=causal)
        return fwd

    def run():
        a, b, c = (t.detach().requires_grad_() for t in (tq, tk, tv))
        F(a, b, c, is_causal=causal).backward(tdo)
    return run


def _naive_numpy(q, k, v):
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * np.float32(1 / np.sqrt(q.shape[-1]))
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)
    return np.matmul(p, v)


def rows(quick=False, cpu_time=False):
    """cpu_time: one thread each and process CPU time instead of wall time -- a kernel-
    efficiency ratio that survives a shared, overloaded machine (not the headline figure)."""
    global _clock
    import torch
    import bigmodel
    threads = 1 if cpu_time else 2
    torch.set_num_threads(threads)
    bigmodel.set_num_threads(threads) if cpu_time else None
    _clock = time.process_time if cpu_time else time.perf_counter
    out = []
    plan = [(512, False, False, 5), (512, True, False, 5), (512, False, True, 3),
            (512, True, True, 3), (2048, False, False, 3), (2048, True, False, 3),
            (2048, False, True, 2), (2048, True, True, 2)]
    if quick:
        plan = [p for p in plan if p[0] == 512]
    for S, causal, bwd, rounds in plan:
        q, k, v, do = _inputs(S)
        ours, theirs = _ours(q, k, v, do, causal, bwd), _torch(torch, q, k, v, do, causal, bwd)
        ours(), theirs()  # warm-up: threads, scratch, torch's kernels
        t_ours, t_anchor = _best([ours, theirs], rounds)
        name = f"S{S} {'causal' if causal else 'full'} {'fwd+bwd' if bwd else 'fwd'}"
        out.append(dict(workload=name, ours_ms=t_ours, anchor="torch SDPA", anchor_ms=t_anchor,
                        ratio=t_anchor / t_ours, gflops=_flops(S, causal, bwd) / t_ours / 1e6))
    q, k, v, do = _inputs(512)
    ours = lambda: ops.attention(q, k, v)  # noqa: E731
    naive = lambda: _naive_numpy(q, k, v)  # noqa: E731
    ours(), naive()
    t_ours, t_anchor = _best([ours, naive], 3)
    out.append(dict(workload="S512 full fwd", ours_ms=t_ours, anchor="naive NumPy softmax(QK^T)V",
                    anchor_ms=t_anchor, ratio=t_anchor / t_ours,
                    gflops=_flops(512, False, False) / t_ours / 1e6))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="S=512 rows only")
    ap.add_argument("--cpu-time", action="store_true",
                    help="1 thread each, process CPU time (robust to a loaded machine)")
    args = ap.parse_args()
    table = rows(args.quick, args.cpu_time)
    print(f"B={B} H={H} D={D} float32, {'1 thread each, CPU time' if args.cpu_time else 'wall time'}"
          f", torch threads {__import__('torch').get_num_threads()}, bigmodel threads "
          f"{__import__('bigmodel').get_num_threads()}, load average "
          f"{open('/proc/loadavg').read().split()[0]}")
    print("| workload | anchor | ours ms | anchor ms | ratio (anchor/ours) | ours GFLOP/s |")
    print("|---|---|---|---|---|---|")
    for r in table:
        print(f"| {r['workload']} | {r['anchor']} | {r['ours_ms']:.1f} | {r['anchor_ms']:.1f} | "
              f"{r['ratio']:.2f} | {r['gflops']:.0f} |")


if __name__ == "__main__":
    main()
