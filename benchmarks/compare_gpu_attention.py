"""GPU attention and row-wise ops: bigmodel's CUDA kernels beside torch in the same run.

    python3 benchmarks/compare_gpu_attention.py [--quick]      # a GPU, CuPy and torch

rows(quick=False) returns dicts in benchmarks/compare.py's format: workload, ours_ms, anchor,
anchor_ms, gflops (attention: fwd = 4 B H S^2 D, halved when causal; fwd+bwd counts 3.5x the
forward, the FlashAttention convention) or ours_GBps / anchor_GBps (row-wise ops: bytes read +
written once), note. A row whose anchor library (torch with CUDA) is missing is skipped.

Attention is fp32 on both sides. torch's flash SDPA backend needs fp16/bf16, so for fp32 torch
runs the memory-efficient backend when it accepts the inputs, else the math one; the note says
which. Timing: CUDA events around back-to-back calls (compare_gpu._time_cupy / _time_torch).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_gpu import _time_cupy, _time_torch  # noqa: E402

ATTN_SHAPES = [(8, 12, 512, 64), (4, 16, 1024, 64), (2, 16, 2048, 128)]  # B, H, S, D
ATTN_QUICK = [(8, 12, 512, 64)]
SOFTMAX_SHAPES = [(4096, 1024), (1024, 50257)]
LN_SHAPES = [(8192, 768), (4096, 4096)]


def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch


def _sdpa(torch):
    """(callable(q, k, v, causal), backend name): efficient backend for fp32 if torch has it."""
    F = torch.nn.functional.scaled_dot_product_attention
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return (lambda q, k, v, causal: F(q, k, v, is_causal=causal)), "default"

    def with_backend(backend):
        def run(q, k, v, causal):
            with sdpa_kernel([backend]):
                return F(q, k, v, is_causal=causal)
        return run

    q = torch.zeros((1, 1, 8, 64), device="cuda", dtype=torch.float32, requires_grad=True)
    for backend, name in ((SDPBackend.EFFICIENT_ATTENTION, "efficient"), (SDPBackend.MATH, "math")):
        fn = with_backend(backend)
        try:
            fn(q, q, q, False).sum().backward()
            return fn, name
        except RuntimeError:
            continue
    return (lambda q, k, v, causal: F(q, k, v, is_causal=causal)), "default"


def _attention_rows(cp, torch, shapes, out):
    from bigmodel import ops
    sdpa, backend = _sdpa(torch)
    rng = np.random.default_rng(0)
    for B, H, S, D in shapes:
        q, k, v, do = (cp.asarray(rng.standard_normal((B, H, S, D), dtype=np.float32))
                       for _ in range(4))
        tq, tk, tv, tdo = (torch.as_tensor(x, device="cuda") for x in (q, k, v, do))
        tq, tk, tv = (x.detach().requires_grad_() for x in (tq, tk, tv))
        for causal in (False, True):
            fwd_flop = 4.0 * B * H * S * S * D * (0.5 if causal else 1.0)

            def ours_bwd():
                o, lse = ops.attention(q, k, v, causal=causal, return_lse=True)
                ops.attention_backward(do, q, k, v, o, lse, causal=causal)

            def torch_bwd():
                tq.grad = tk.grad = tv.grad = None  # no accumulation add between calls
                sdpa(tq, tk, tv, causal).backward(tdo)

            tag = f"B{B} H{H} S{S} D{D}{' causal' if causal else ''}"
            for name, ours, theirs, flop in (
                    ("fwd", lambda: ops.attention(q, k, v, causal=causal),
                     lambda: sdpa(tq, tk, tv, causal), fwd_flop),
                    ("fwd+bwd", ours_bwd, torch_bwd, 3.5 * fwd_flop)):
                ours_s = _time_cupy(ours)
                with torch.no_grad() if name == "fwd" else contextlib.nullcontext():
                    theirs_s = _time_torch(theirs)
                out.append({"workload": f"cuda attention {name} fp32 {tag}",
                            "ours_ms": ours_s * 1e3, "anchor": f"torch SDPA ({backend})",
                            "anchor_ms": theirs_s * 1e3, "gflops": flop / ours_s / 1e9,
                            "note": f"torch {flop / theirs_s / 1e12:.1f} TFLOP/s"})
        del q, k, v, do, tq, tk, tv, tdo


def _gbps(nbytes, seconds):
    return round(nbytes / seconds / 1e9)


def _rowwise_rows(cp, torch, quick, out):
    from bigmodel import ops
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    for N, C in SOFTMAX_SHAPES[:1] if quick else SOFTMAX_SHAPES:
        x = cp.asarray(rng.standard_normal((N, C), dtype=np.float32))
        t = cp.asarray(rng.integers(0, C, size=N))
        tx, tt = torch.as_tensor(x, device="cuda"), torch.as_tensor(t, device="cuda")
        nbytes = 2 * x.nbytes
        for name, ours, theirs, nb in (
                ("softmax", lambda: ops.softmax(x), lambda: torch.softmax(tx, -1), nbytes),
                ("log_softmax", lambda: ops.log_softmax(x), lambda: F.log_softmax(tx, -1), nbytes),
                ("cross_entropy", lambda: ops.cross_entropy(x, t),
                 lambda: F.cross_entropy(tx, tt), x.nbytes)):
            o, a = _time_cupy(ours), _time_torch(theirs)
            out.append({"workload": f"cuda {name} fp32 ({N}, {C})", "ours_ms": o * 1e3,
                        "anchor": "torch", "anchor_ms": a * 1e3,
                        "ours_GBps": _gbps(nb, o), "anchor_GBps": _gbps(nb, a)})
    for N, D in LN_SHAPES[:1] if quick else LN_SHAPES:
        x = cp.asarray(rng.standard_normal((N, D), dtype=np.float32))
        dy = cp.asarray(rng.standard_normal((N, D), dtype=np.float32))
        w = cp.asarray(rng.standard_normal(D, dtype=np.float32))
        b = cp.asarray(rng.standard_normal(D, dtype=np.float32))
        tx, tdy, tw, tb = (torch.as_tensor(a, device="cuda") for a in (x, dy, w, b))
        tx, tw, tb = (a.detach().requires_grad_() for a in (tx, tw, tb))

        def ours_bwd():
            _, mean, rstd = ops.layer_norm(x, D, w, b, return_stats=True)
            ops.layer_norm_backward(dy, x, D, w, b, mean=mean, rstd=rstd)

        def torch_bwd():
            tx.grad = tw.grad = tb.grad = None
            F.layer_norm(tx, (D,), tw, tb).backward(tdy)

        o = _time_cupy(lambda: ops.layer_norm(x, D, w, b))
        with torch.no_grad():
            a = _time_torch(lambda: F.layer_norm(tx, (D,), tw, tb))
        out.append({"workload": f"cuda layer_norm fwd fp32 ({N}, {D})", "ours_ms": o * 1e3,
                    "anchor": "torch", "anchor_ms": a * 1e3, "ours_GBps": _gbps(2 * x.nbytes, o),
                    "anchor_GBps": _gbps(2 * x.nbytes, a)})
        o, a = _time_cupy(ours_bwd), _time_torch(torch_bwd)
        nb = 5 * x.nbytes  # fwd: x in, y out; bwd: x, dy in, dx out (stats and params are small)
        out.append({"workload": f"cuda layer_norm fwd+bwd fp32 ({N}, {D})", "ours_ms": o * 1e3,
                    "anchor": "torch", "anchor_ms": a * 1e3, "ours_GBps": _gbps(nb, o),
                    "anchor_GBps": _gbps(nb, a)})


def rows(quick=False):
    """Measurements as dicts (see the module docstring). ImportError without CuPy or a GPU."""
    import cupy as cp
    from bigmodel.ops import _backend
    if not _backend.cuda_available():
        raise ImportError("bigmodel's CUDA module or a GPU is not available")
    torch = _torch_cuda()
    out = []
    if torch is None:
        print("compare_gpu_attention: torch with CUDA not available; every row needs it as the "
              "anchor, none measured", file=sys.stderr)
        return out
    _attention_rows(cp, torch, ATTN_QUICK if quick else ATTN_SHAPES, out)
    _rowwise_rows(cp, torch, quick, out)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="fewer, smaller workloads")
    args = p.parse_args(argv)
    print("| workload | ours ms | anchor ms | ratio (anchor/ours) | GFLOP/s or GB/s | note |")
    print("|---|---:|---:|---:|---:|---|")
    for r in rows(quick=args.quick):
        rate = (f"{r['gflops']:.0f} GFLOP/s" if "gflops" in r
                else f"{r['ours_GBps']} GB/s (torch {r['anchor_GBps']})")
        print(f"| {r['workload']} | {r['ours_ms']:.3f} | {r['anchor']} {r['anchor_ms']:.3f} | "
              f"{r['anchor_ms'] / r['ours_ms']:.2f}x | {rate} | {r.get('note', '')} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
