"""GPU GEMM throughput: bigmodel's CUDA kernels beside cuBLAS (CuPy) and torch, same run.

Prints a markdown table (device and date in the header). `rows()` returns the measurements as
dicts so other scripts (benchmarks/compare.py) can merge them.

    python3 benchmarks/compare_gpu.py            # on a machine with a GPU, CuPy and torch

Timing: CUDA events around `reps` back-to-back calls after `warmup` calls, median of `trials`
such measurements; TFLOP/s = 2*M*N*K / time. cuBLAS runs with TF32 off (CUPY_TF32=0, torch
allow_tf32=False) so the fp32 rows compare like with like.
"""
from __future__ import annotations

import datetime
import os
import statistics

os.environ["CUPY_TF32"] = "0"  # read by CuPy at import: fp32 matmul stays fp32

import numpy as np  # noqa: E402


def _time_cupy(fn, warmup=3, reps=10, trials=5):
    """Median seconds per call of fn() on CuPy's current stream."""
    import cupy as cp
    for _ in range(warmup):
        fn()
    cp.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(trials):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3 / reps)
    return statistics.median(times)


def _time_torch(fn, warmup=3, reps=10, trials=5):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(trials):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(reps):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3 / reps)
    return statistics.median(times)


def _tflops(n, seconds):
    return 2.0 * n**3 / seconds / 1e12 if seconds else float("nan")


def _torch():
    try:
        import torch
        if not torch.cuda.is_available():
            return None
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch
    except ImportError:
        return None


def rows(sizes_fp32=(1024, 2048, 4096), sizes_bf16=(4096, 8192), sizes_fp16=(4096, 8192)):
    """Measurements as dicts: op, size, ours / cuBLAS / torch TFLOP/s, ratio ours/cuBLAS."""
    import cupy as cp
    from bigmodel import ops
    torch = _torch()
    rng = np.random.default_rng(0)
    out = []

    def row(op, n, ours, cublas=None, tch=None, anchor="cuBLAS"):
        ref = cublas if cublas is not None else tch
        out.append({"op": op, "size": n, "ours_tflops": ours, "cublas_tflops": cublas,
                    "torch_tflops": tch, "anchor": anchor,
                    "ratio": (ours / ref) if ref else None})

    for n in sizes_fp32:
        a = cp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        b = cp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        c = cp.empty((n, n), cp.float32)
        ours = _tflops(n, _time_cupy(lambda: ops.gemm(a, b, out=c)))
        cub = _tflops(n, _time_cupy(lambda: cp.matmul(a, b, out=c)))
        tch = None
        if torch is not None:
            ta, tb = torch.as_tensor(a, device="cuda"), torch.as_tensor(b, device="cuda")
            tch = _tflops(n, _time_torch(lambda: torch.matmul(ta, tb)))
        row("sgemm fp32", n, ours, cub, tch)
        del a, b, c

    for n in sizes_bf16:
        a = cp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        b = cp.asarray(rng.standard_normal((n, n), dtype=np.float32))
        c = cp.empty((n, n), cp.float32)
        ours = _tflops(n, _time_cupy(lambda: ops.gemm(a, b, out=c, precision="bf16")))
        tch = None
        if torch is not None:
            ta = torch.as_tensor(a, device="cuda").bfloat16()
            tb = torch.as_tensor(b, device="cuda").bfloat16()
            tch = _tflops(n, _time_torch(lambda: torch.matmul(ta, tb)))
        row("gemm bf16 (fp32 in/out)", n, ours, None, tch, anchor="torch bf16")
        del a, b, c

    for n in sizes_fp16:
        a = cp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(cp.float16)
        b = cp.asarray(rng.standard_normal((n, n), dtype=np.float32)).astype(cp.float16)
        c = cp.empty((n, n), cp.float16)
        ours = _tflops(n, _time_cupy(lambda: ops.gemm(a, b, out=c)))
        cub = _tflops(n, _time_cupy(lambda: cp.matmul(a, b, out=c)))
        row("gemm fp16 (cupy fp16)", n, ours, cub, None)
        del a, b, c
    return out


def _fmt(x):
    return "—" if x is None else f"{x:.1f}"


def table(rs) -> str:
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### bigmodel GPU GEMM — {name} — {now}", "",
             "| op | M=N=K | ours TFLOP/s | cuBLAS (CuPy) TFLOP/s | torch TFLOP/s | ours / anchor | anchor |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in rs:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['op']} | {r['size']} | {_fmt(r['ours_tflops'])} | "
                     f"{_fmt(r['cublas_tflops'])} | {_fmt(r['torch_tflops'])} | {ratio} | {r['anchor']} |")
    return "\n".join(lines)


def family_tables(quick=False):
    """The other GPU families: every benchmarks/compare_gpu_<family>.py exposes rows(quick)
    returning dicts; each becomes a markdown table (columns from the dicts' keys). A family whose
    script fails is reported and the rest still run."""
    import glob
    import importlib
    import sys
    import traceback
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, here)
    out = []
    for path in sorted(glob.glob(os.path.join(here, "compare_gpu_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            rs = importlib.import_module(name).rows(quick=quick)
        except Exception:
            out.append(f"### {name}: FAILED\n\n```\n{traceback.format_exc()[-2000:]}\n```")
            continue
        if not rs:
            out.append(f"### {name}: no rows")
            continue
        cols = list(dict.fromkeys(k for r in rs for k in r))
        cell = lambda v: "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))
        lines = [f"### {name}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + " | ".join(cell(r.get(c)) for c in cols) + " |" for r in rs]
        out.append("\n".join(lines))
    return "\n\n".join(out)


if __name__ == "__main__":
    print(table(rows()))
    print()
    print(family_tables())
