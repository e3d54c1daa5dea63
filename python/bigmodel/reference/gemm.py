"""GEMM reference: C = alpha * op(A) @ op(B) + beta * C, computed in float64."""
from __future__ import annotations

import numpy as np


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if trans_a:
        a = np.swapaxes(a, -1, -2)
    if trans_b:
        b = np.swapaxes(b, -1, -2)
    out = alpha * np.matmul(a, b)
    if c is not None and beta != 0:
        out = out + beta * np.asarray(c, dtype=np.float64)
    return out


def matmul(a, b):
    return gemm(a, b)
