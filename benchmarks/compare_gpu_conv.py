"""GPU conv2d and pooling: bigmodel's CUDA kernels beside cuDNN (through torch), same run.

    python3 benchmarks/compare_gpu_conv.py [--quick]      # a machine with a GPU, CuPy and torch

rows(quick=False) returns dicts {workload, ours_ms, anchor, anchor_ms, ratio, flop, note}:
ratio = anchor_ms / ours_ms (throughput ratio: > 1 means bigmodel is faster). Timing as
benchmarks/compare_gpu.py: CUDA events around back-to-back calls after a warm-up, median of
trials. torch runs with cudnn.benchmark=True (it picks its fastest algorithm per shape during the
warm-up) and TF32 off, so the fp32 rows compare like with like. Backward rows time dx + dW + db
(no dx for a first layer) through aten.convolution_backward, i.e. cuDNN's kernels without
autograd; pooling backward through aten's *_backward ops. CuPy has no convolution of its own, so
the only anchor is cuDNN; a row whose anchor cannot run keeps its own time and an empty anchor.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from compare_gpu import _time_cupy, _time_torch, _torch  # noqa: E402

# (name, x shape, w shape, kwargs, need_dx)
CONV = [
    ("MNIST-1 1->32 3x3 28^2 N64", (64, 1, 28, 28), (32, 1, 3, 3), {}, False),
    ("MNIST-2 32->64 3x3 26^2 N64", (64, 32, 26, 26), (64, 32, 3, 3), {}, True),
    ("ResNet 64->64 3x3 p1 56^2 N32", (32, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}, True),
    ("ResNet 128->128 3x3 p1 28^2 N32", (32, 128, 28, 28), (128, 128, 3, 3), {"padding": 1}, True),
    ("ResNet 256->256 3x3 p1 14^2 N32", (32, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}, True),
    ("ResNet 64->128 1x1 s2 56^2 N32", (32, 64, 56, 56), (128, 64, 1, 1), {"stride": 2}, True),
    ("depthwise 3x3 p1 96ch 56^2 N32", (32, 96, 56, 56), (96, 1, 3, 3), {"padding": 1, "groups": 96}, True),
]
QUICK_CONV = {"MNIST-2 32->64 3x3 26^2 N64", "ResNet 64->64 3x3 p1 56^2 N32"}

# (name, op, x shape, kwargs)
POOL = [
    ("maxpool 2x2 24^2 N64 C32 (MNIST)", "max", (64, 32, 24, 24), {"kernel_size": 2}),
    ("maxpool 3x3 s2 p1 112^2 N32 C64 (ResNet stem)", "max", (32, 64, 112, 112),
     {"kernel_size": 3, "stride": 2, "padding": 1}),
    ("avgpool 2x2 56^2 N32 C64", "avg", (32, 64, 56, 56), {"kernel_size": 2}),
    ("global avgpool 7^2 N32 C512", "global", (32, 512, 7, 7), {}),
]


def _conv_rows(cp, torch, quick):
    from bigmodel import ops
    rng = np.random.default_rng(0)
    out = []
    for name, xs, ws, kw, need_dx in CONV:
        if quick and name not in QUICK_CONV:
            continue
        x = cp.asarray(rng.standard_normal(xs, dtype=np.float32))
        w = cp.asarray((rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(np.float32))
        b = cp.asarray(rng.standard_normal(ws[0], dtype=np.float32))
        y = ops.conv2d(x, w, b, **kw)
        dy = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
        N, K, P, Q = y.shape
        macs = N * K * P * Q * ws[1] * ws[2] * ws[3]
        fwd_ours = _time_cupy(lambda: ops.conv2d(x, w, b, **kw))
        bwd_ours = _time_cupy(lambda: ops.conv2d_backward(dy, x, w, need_dx=need_dx, **kw))
        fwd_t = bwd_t = None
        if torch is not None:
            F = torch.nn.functional
            tx, tw, tb, tdy = (torch.as_tensor(a, device="cuda") for a in (x, w, b, dy))
            stride = kw.get("stride", 1)
            pad = kw.get("padding", 0)
            groups = kw.get("groups", 1)
            s2, p2 = (stride, stride), (pad, pad)
            fwd_t = _time_torch(lambda: F.conv2d(tx, tw, tb, stride=stride, padding=pad, groups=groups))
            try:
                bwd = torch.ops.aten.convolution_backward
                mask = [need_dx, True, True]
                bwd_t = _time_torch(lambda: bwd(tdy, tx, tw, [K], s2, p2, (1, 1), False, (0, 0),
                                                groups, mask))
            except (AttributeError, RuntimeError):
                bwd_t = None
        for what, ours, theirs, flop in (("fwd", fwd_ours, fwd_t, 2 * macs),
                                         ("bwd" + ("" if need_dx else " (no dx)"), bwd_ours, bwd_t,
                                          2 * macs * (2 if need_dx else 1))):
            out.append({"workload": f"conv {what} {name}", "ours_ms": ours * 1e3,
                        "anchor": "cuDNN (torch)", "anchor_ms": None if theirs is None else theirs * 1e3,
                        "ratio": None if theirs is None else theirs / ours, "flop": flop,
                        "note": f"{flop / ours / 1e12:.1f} TFLOP/s ours"})
        del x, w, b, y, dy
    return out


def _pool_rows(cp, torch, quick):
    from bigmodel import ops
    rng = np.random.default_rng(1)
    out = []
    for name, op, xs, kw in POOL:
        if quick and op == "avg":
            continue
        x = cp.asarray(rng.standard_normal(xs, dtype=np.float32))
        if op == "max":
            y, idx = ops.max_pool2d(x, **kw)
            dy = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
            fwd = lambda: ops.max_pool2d(x, **kw)  # noqa: E731
            bwd = lambda: ops.max_pool2d_backward(dy, idx, xs, **kw)  # noqa: E731
        elif op == "avg":
            y = ops.avg_pool2d(x, **kw)
            dy = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
            fwd = lambda: ops.avg_pool2d(x, **kw)  # noqa: E731
            bwd = lambda: ops.avg_pool2d_backward(dy, xs, **kw)  # noqa: E731
        else:
            y = ops.global_avg_pool2d(x)
            dy = cp.asarray(rng.standard_normal(y.shape, dtype=np.float32))
            fwd = lambda: ops.global_avg_pool2d(x)  # noqa: E731
            bwd = lambda: ops.global_avg_pool2d_backward(dy, xs)  # noqa: E731
        times = {"fwd": (_time_cupy(fwd), None), "bwd": (_time_cupy(bwd), None)}
        if torch is not None:
            F = torch.nn.functional
            tx, tdy = torch.as_tensor(x, device="cuda"), torch.as_tensor(dy, device="cuda")
            k = kw.get("kernel_size")
            s = kw.get("stride", k)
            p = kw.get("padding", 0)
            try:
                if op == "max":
                    _, tidx = F.max_pool2d(tx, k, s, p, return_indices=True)
                    tf = lambda: F.max_pool2d(tx, k, s, p, return_indices=True)  # noqa: E731
                    tb = lambda: torch.ops.aten.max_pool2d_with_indices_backward(  # noqa: E731
                        tdy, tx, [k, k], [s, s], [p, p], [1, 1], False, tidx)
                elif op == "avg":
                    tf = lambda: F.avg_pool2d(tx, k, s, p)  # noqa: E731
                    tb = lambda: torch.ops.aten.avg_pool2d_backward(  # noqa: E731
                        tdy, tx, [k, k], [s, s], [p, p], False, True, None)
                else:
                    tf = lambda: F.adaptive_avg_pool2d(tx, 1)  # noqa: E731
                    tb = lambda: tdy.expand(tx.shape) / (xs[2] * xs[3])  # noqa: E731
                times = {"fwd": (times["fwd"][0], _time_torch(tf)),
                         "bwd": (times["bwd"][0], _time_torch(tb))}
            except (AttributeError, RuntimeError):
                pass
        nbytes = {"fwd": (x.nbytes + y.nbytes), "bwd": (dy.nbytes + x.nbytes)}
        for what, (ours, theirs) in times.items():
            out.append({"workload": f"{name} {what}", "ours_ms": ours * 1e3, "anchor": "torch (CUDA)",
                        "anchor_ms": None if theirs is None else theirs * 1e3,
                        "ratio": None if theirs is None else theirs / ours,
                        "note": f"{nbytes[what] / ours / 1e9:.0f} GB/s ours (x, y / dy, dx)"})
        del x, y, dy
    return out


def rows(quick=False):
    """Measurements as dicts (see the module docstring). ImportError without CuPy."""
    import cupy as cp
    torch = _torch()
    if torch is not None:
        torch.backends.cudnn.benchmark = True
    return _conv_rows(cp, torch, quick) + _pool_rows(cp, torch, quick)


def table(rs) -> str:
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### bigmodel GPU conv / pooling — {name} — {now}", "",
             "| workload | ours ms | anchor | anchor ms | anchor / ours | note |",
             "|---|---:|---|---:|---:|---|"]
    for r in rs:
        am = "—" if r["anchor_ms"] is None else f"{r['anchor_ms']:.3f}"
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['workload']} | {r['ours_ms']:.3f} | {r['anchor']} | {am} | {ratio} | "
                     f"{r['note']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two conv shapes, no avg pooling")
    print(table(rows(quick=ap.parse_args().quick)))
