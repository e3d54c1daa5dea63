"""GPU RNN rows: bigmodel's CUDA LSTM / GRU beside cuDNN (torch.nn.LSTM / GRU on CUDA), same run.

    python3 benchmarks/compare_gpu_rnn.py [--quick]     # on a machine with a GPU, CuPy and torch

Workloads: (T, B, I = H) = (64, 64, 256), (128, 32, 512), (32, 128, 1024), one layer,
batch-first, float32. Phases: forward alone (ours training=False, torch under no_grad) and
forward + backward (gradient of the output = ones; weight, bias and input gradients). cuDNN runs
with TF32 off (torch.backends.cudnn.allow_tf32 = False) so the fp32 rows compare like with like;
a third row per workload times ours with precision='tf32' (input projection and dx / dW on
tensor cores, recurrence in fp32) against cuDNN with TF32 allowed. Both use the same weights; the
note gives the relative difference of the two forward outputs (a sanity check, not a test).
Timing: CUDA events around back-to-back calls, median of trials (compare_gpu._time_cupy /
_time_torch). `rows()` returns [] when CuPy, torch or a GPU is missing (each row needs both).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from compare_gpu import _time_cupy, _time_torch  # noqa: E402

WORKLOADS = [(64, 64, 256, 256), (128, 32, 512, 512), (32, 128, 1024, 1024)]


def flops(kind, T, B, I, H, backward):
    G = 4 if kind == "LSTM" else 3
    f = 2.0 * T * B * G * H * (I + H)
    return 3 * f if backward else f


def _libs():
    """(cupy, torch) or None when either is missing or there is no GPU."""
    try:
        import cupy as cp
        import torch
    except ImportError:
        return None
    from bigmodel.ops import _backend
    if not (_backend.cuda_available() and torch.cuda.is_available()):
        return None
    return cp, torch


def workload_fns(kind, T, B, I, H, cp, torch):
    """Closures on shared weights: ours_fwd, torch_fwd, ours_fwdbwd, torch_fwdbwd,
    ours_tf32_fwdbwd; plus the forward outputs' relative difference."""
    from bigmodel import ops
    torch.manual_seed(0)
    m = (torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU)(I, H, batch_first=True).cuda()
    ws = [tuple(cp.asarray(getattr(m, f"{p}_l0").detach().contiguous())
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))]
    x_np = np.random.default_rng(0).standard_normal((B, T, I), dtype=np.float32)
    x = cp.asarray(x_np)
    xt = torch.from_numpy(x_np).cuda()
    fwd = ops.lstm if kind == "LSTM" else ops.gru
    bwd = ops.lstm_backward if kind == "LSTM" else ops.gru_backward
    gout = cp.ones((B, T, H), cp.float32)

    torch.backends.cudnn.allow_tf32 = False
    with torch.no_grad():
        ref = cp.asarray(m(xt)[0].contiguous())
    ours = fwd(x, ws, training=False)[0]
    diff = float(cp.linalg.norm(ours - ref) / cp.linalg.norm(ref))

    def torch_fwd():
        with torch.no_grad():
            m(xt)

    def torch_fwdbwd():
        xr = xt.clone().requires_grad_(True)
        out, _ = m(xr)
        out.backward(torch.ones_like(out))

    def ours_fwdbwd(precision="native"):
        res = fwd(x, ws, precision=precision)
        bwd(res[-1], gout)

    return dict(ours_fwd=lambda: fwd(x, ws, training=False), torch_fwd=torch_fwd,
                ours_fwdbwd=ours_fwdbwd, torch_fwdbwd=torch_fwdbwd,
                ours_tf32_fwdbwd=lambda: ours_fwdbwd("tf32")), diff


def rows(quick: bool = False):
    """Measurements as dicts (compare.py's row format) plus 'ratio' = cuDNN time / ours
    (> 1: ours faster)."""
    libs = _libs()
    if libs is None:
        return []
    cp, torch = libs
    reps, trials = (3, 3) if quick else (10, 5)
    out = []

    def row(kind, shape, label, ours_s, theirs_s, backward, note):
        T, B, I, H = shape
        out.append(dict(workload=f"GPU {kind} T{T} B{B} {I}->{H} {label}", ours_ms=ours_s * 1e3,
                        anchor="cuDNN (torch)", anchor_ms=theirs_s * 1e3,
                        flop=flops(kind, T, B, I, H, backward), ratio=theirs_s / ours_s,
                        note=note))

    tf32_before = torch.backends.cudnn.allow_tf32
    try:
        for shape in WORKLOADS[:1] if quick else WORKLOADS:
            for kind in ("LSTM", "GRU"):
                fns, diff = workload_fns(kind, *shape, cp, torch)
                note = f"fwd rel. diff vs cuDNN {diff:.1e}"
                torch.backends.cudnn.allow_tf32 = False
                for phase, label in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
                    ours = _time_cupy(fns["ours_" + phase], reps=reps, trials=trials)
                    theirs = _time_torch(fns["torch_" + phase], reps=reps, trials=trials)
                    row(kind, shape, label, ours, theirs, phase == "fwdbwd", note)
                if not quick:
                    torch.backends.cudnn.allow_tf32 = True
                    ours = _time_cupy(fns["ours_tf32_fwdbwd"], reps=reps, trials=trials)
                    theirs = _time_torch(fns["torch_fwdbwd"], reps=reps, trials=trials)
                    row(kind, shape, "fwd+bwd tf32", ours, theirs, True,
                        "ours: tf32 GEMMs, fp32 recurrence; cuDNN: allow_tf32")
                del fns
    finally:
        torch.backends.cudnn.allow_tf32 = tf32_before
    return out


def table(rs) -> str:
    lines = ["| workload | ours ms | cuDNN ms | cuDNN / ours | ours GFLOP/s | note |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rs:
        gf = r["flop"] / (r["ours_ms"] * 1e-3) / 1e9
        lines.append(f"| {r['workload']} | {r['ours_ms']:.3f} | {r['anchor_ms']:.3f} | "
                     f"{r['ratio']:.2f} | {gf:.0f} | {r['note']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    rs = rows(quick="--quick" in sys.argv)
    print(table(rs) if rs else "compare_gpu_rnn: skipped (needs CuPy, torch and a GPU with "
                               "bigmodel's CUDA module)")
