"""RNN rows for compare.py: ours beside torch.nn.LSTM / GRU (CPU) in the same run.

Workloads from BENCHMARKS.md: seq 100, batch 64, 128 -> 256, and seq 35, batch 20, 650 -> 650;
forward alone (ours training=False, torch under no_grad) and forward + backward (gradient of the
output = ones; all weight, bias and input gradients). Both libraries use the same thread count
(bigmodel's, 2 on the development machine). Where the CPU has AVX512_BF16, an extra row per
workload times ours with precision='bf16' (bf16 products, fp32 accumulation; relative error
~1e-2) against the same fp32 torch run: not a like-for-like precision. Returns [] when torch is
not installed.
"""
from __future__ import annotations

import numpy as np

import bigmodel
from bigmodel import _core, ops
from timing import interleaved

WORKLOADS = [("LSTM", 100, 64, 128, 256), ("GRU", 100, 64, 128, 256),
             ("LSTM", 35, 20, 650, 650), ("GRU", 35, 20, 650, 650)]
# Anchors measured on a quiet machine (BENCHMARKS.md), ms: (forward, forward + backward).
QUIET = {("LSTM", 100): (27.4, 112), ("GRU", 100): (38.3, 125), ("LSTM", 35): (27.1, 85.4),
         ("GRU", 35): (33.1, 130)}


def flops(kind, T, B, I, H, backward):
    G = 4 if kind == "LSTM" else 3
    f = 2.0 * T * B * G * H * (I + H)
    return 3 * f if backward else f


def workload_fns(kind, T, B, I, H, torch):
    """{'ours_fwd', 'torch_fwd', 'ours_fwdbwd', 'torch_fwdbwd'} (+ 'bf16_fwd', 'bf16_fwdbwd'
    where AVX512_BF16 is available) closures on shared weights."""
    torch.manual_seed(0)
    m = (torch.nn.LSTM if kind == "LSTM" else torch.nn.GRU)(I, H, batch_first=True)
    ws = [tuple(getattr(m, f"{p}_l0").detach().numpy().copy()
                for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))]
    x = np.random.default_rng(0).standard_normal((B, T, I), dtype=np.float32)
    xt = torch.from_numpy(x.copy())
    fwd = ops.lstm if kind == "LSTM" else ops.gru
    bwd = ops.lstm_backward if kind == "LSTM" else ops.gru_backward
    gout = np.ones((B, T, H), np.float32)

    def ours_fwd():
        fwd(x, ws, training=False)

    def ours_fwdbwd():
        res = fwd(x, ws)
        bwd(res[-1], gout)

    def torch_fwd():
        with torch.no_grad():
            m(xt)

    def torch_fwdbwd():
        xr = xt.clone().requires_grad_(True)
        out, _ = m(xr)
        out.backward(torch.ones_like(out))

    def bf16_fwd():
        fwd(x, ws, training=False, precision="bf16")

    def bf16_fwdbwd():
        res = fwd(x, ws, precision="bf16")
        bwd(res[-1], gout)

    fns = dict(ours_fwd=ours_fwd, torch_fwd=torch_fwd, ours_fwdbwd=ours_fwdbwd,
               torch_fwdbwd=torch_fwdbwd)
    if _core.bf16_available():
        fns.update(bf16_fwd=bf16_fwd, bf16_fwdbwd=bf16_fwdbwd)
    return fns


def rows(quick: bool = False):
    try:
        import torch
    except ImportError:
        return []
    nt = bigmodel.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(nt)
    out = []
    try:
        for kind, T, B, I, H in WORKLOADS[:2] if quick else WORKLOADS:
            fns = workload_fns(kind, T, B, I, H, torch)
            for phase, label in (("fwd", "fwd"), ("fwdbwd", "fwd+bwd")):
                timed = {"ours": fns["ours_" + phase], "torch": fns["torch_" + phase]}
                if "bf16_" + phase in fns:
                    timed["bf16"] = fns["bf16_" + phase]
                t = interleaved(timed, reps=3, rounds=1 if quick else 2)
                quiet = QUIET[(kind, T)][phase == "fwdbwd"]
                out.append(dict(
                    workload=f"{kind} T{T} B{B} {I}->{H} {label}", ours_ms=t["ours"] * 1e3,
                    anchor=f"torch ({nt} thr)", anchor_ms=t["torch"] * 1e3,
                    flop=flops(kind, T, B, I, H, phase == "fwdbwd"),
                    note=f"quiet-machine anchor {quiet} ms"))
                if "bf16" in t:
                    out.append(dict(
                        workload=f"{kind} T{T} B{B} {I}->{H} {label} bf16", ours_ms=t["bf16"] * 1e3,
                        anchor=f"torch fp32 ({nt} thr)", anchor_ms=t["torch"] * 1e3,
                        flop=flops(kind, T, B, I, H, phase == "fwdbwd"),
                        note=f"precision='bf16' (rel. error ~1e-2); {t['ours'] / t['bf16']:.2f}x our fp32"))
    finally:
        torch.set_num_threads(before)
    return out


if __name__ == "__main__":
    import sys
    for r in rows(quick="--quick" in sys.argv):
        print(f"{r['workload']:32s} ours {r['ours_ms']:8.2f} ms  torch {r['anchor_ms']:8.2f} ms  "
              f"ratio {r['anchor_ms'] / r['ours_ms']:.2f}x", flush=True)
