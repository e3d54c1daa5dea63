"""Truncated-SVD reference: the exact SVD in float64 (LAPACK), cut to k, fixed signs.

Sign convention (shared with bigmodel.ops.truncated_svd): the entry of largest magnitude in each
column of U is positive (the first such entry on ties); the matching row of Vt flips with it.
"""
from __future__ import annotations

import numpy as np


def fix_signs(u, vt):
    """Flip column j of u and row j of vt so that u's largest-|.| entry in column j is > 0."""
    idx = np.argmax(np.abs(u), axis=0)
    s = np.sign(u[idx, np.arange(u.shape[1])])
    s[s == 0] = 1
    return u * s, vt * s[:, None]


def truncated_svd(a, k, **ignored):
    """Top-k (U, S, Vt) of a dense array or SciPy sparse matrix, exactly, in float64."""
    if hasattr(a, "toarray"):
        a = a.toarray()
    a = np.asarray(a, dtype=np.float64)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    u, vt = fix_signs(u[:, :k], vt[:k])
    return u, s[:k], vt


def spmm_csr(a, x, *, transpose=False):
    """A @ x (or A.T @ x) for a SciPy sparse matrix, in float64."""
    d = np.asarray(a.toarray(), dtype=np.float64)
    return (d.T if transpose else d) @ np.asarray(x, dtype=np.float64)
