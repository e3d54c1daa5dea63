"""GEMM rows for compare.py: ours (fp32 and bf16) beside NumPy/OpenBLAS in the same run."""
from __future__ import annotations

import numpy as np

import bigmodel
from bigmodel import _core
from timing import interleaved

SQUARE = [256, 512, 1024, 2048, 4096]
LAYERS = [(64, 784, 128), (4096, 1024, 64), (64, 4096, 4096)]  # (M, K, N) as in BENCHMARKS.md
# Sizes that are no multiple of any tile or block, where a narrow last panel and an uneven
# split of the columns between threads show (NOTES.md GEMM item 16).
ODD = [(128, 128, 128), (777, 777, 777), (1000, 1000, 300), (2000, 500, 200), (200, 300, 80)]


def rows(quick: bool = False):
    rng = np.random.default_rng(0)
    out = []
    shapes = [(n, n, n) for n in (SQUARE[:4] if quick else SQUARE)] + LAYERS
    if not quick:
        shapes += ODD
    for M, K, N in shapes:
        a = rng.standard_normal((M, K), dtype=np.float32)
        b = rng.standard_normal((K, N), dtype=np.float32)
        c = np.empty((M, N), np.float32)
        fns = {"ours": lambda: bigmodel.ops.matmul(a, b, out=c),
               "numpy": lambda: np.matmul(a, b, out=c)}
        if _core.bf16_available():
            fns["ours_bf16"] = lambda: bigmodel.ops.gemm(a, b, out=c, precision="bf16")
        big = M * N * K >= 2048 ** 3
        t = interleaved(fns, reps=3 if big else 5, rounds=2 if big else 3)
        flop = 2.0 * M * N * K
        name = f"SGEMM {M}x{K}x{N}" if not (M == N == K) else f"SGEMM {M}³"
        out.append(dict(workload=name, ours_ms=t["ours"] * 1e3, anchor="NumPy (OpenBLAS)",
                        anchor_ms=t["numpy"] * 1e3, flop=flop))
        if "ours_bf16" in t:
            out.append(dict(workload=name + " bf16", ours_ms=t["ours_bf16"] * 1e3,
                            anchor="NumPy fp32", anchor_ms=t["numpy"] * 1e3, flop=flop,
                            note=f"{t['ours'] / t['ours_bf16']:.2f}x our fp32"))
    if not quick:
        out += _gram_rows(rng)
    return out


# Gram products X^T X of a tall, narrow X (a covariance, the SVD's A^T Q): NumPy recognises
# X.T @ X and calls syrk, which computes one triangle (half the FLOPs; GFLOP/s below count the
# whole product).
GRAM = [(100000, 20, np.float32), (100000, 20, np.float64), (10000, 64, np.float32),
        (1682, 20, np.float64)]


def _gram_rows(rng):
    out = []
    for K, M, dt in GRAM:
        x = rng.standard_normal((K, M)).astype(dt)
        c = np.empty((M, M), dt)
        t = interleaved({"ours": lambda: bigmodel.ops.gemm(x, x, trans_a=True, out=c),
                         "numpy": lambda: np.matmul(x.T, x, out=c)}, reps=5, rounds=3)
        kind = "SGEMM" if dt == np.float32 else "DGEMM"
        out.append(dict(workload=f"{kind} Gram XᵀX, X {K}x{M}", ours_ms=t["ours"] * 1e3,
                        anchor="NumPy (OpenBLAS syrk)", anchor_ms=t["numpy"] * 1e3,
                        flop=2.0 * K * M * M))
    return out
