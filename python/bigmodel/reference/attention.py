"""Scaled-dot-product attention reference in float64: the readable spec of ops.attention.

q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv). mask broadcasts to (B, H, Sq, Sk): boolean
(True = may attend, as torch SDPA) or additive float. causal: key j visible to query i iff
j <= i (top-left aligned when Sq != Sk, as torch). Rows with every key hidden give zeros (and
lse = -inf, zero gradients) instead of NaN.
"""
from __future__ import annotations

import numpy as np


def _scores(q, k, causal, mask, scale):
    """scale * q k^T + additive mask, -inf where a key is hidden; (B, H, Sq, Sk) float64."""
    s = np.matmul(q, np.swapaxes(k, -1, -2)) * scale
    sq, sk = s.shape[-2:]
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype == np.bool_:
            s = np.where(mask, s, -np.inf)
        else:
            s = s + mask.astype(np.float64)
    if causal:
        s = np.where(np.tril(np.ones((sq, sk), dtype=bool)), s, -np.inf)
    return s


def _default_scale(scale, D):
    """1/sqrt(D), and 1 for D = 0 (every score is 0 then)."""
    return (1.0 / np.sqrt(D) if D > 0 else 1.0) if scale is None else float(scale)


def attention(q, k, v, *, causal=False, mask=None, scale=None, return_lse=False):
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    scale = _default_scale(scale, q.shape[-1])
    s = _scores(q, k, causal, mask, scale)
    m = s.max(axis=-1, keepdims=True) if s.shape[-1] else np.full(s.shape[:-1] + (1,), -np.inf)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - m_safe)
    l = p.sum(axis=-1, keepdims=True)
    out = np.matmul(p, v) / np.where(l > 0, l, 1.0)
    with np.errstate(divide="ignore"):
        lse = (m_safe + np.log(l))[..., 0]
    lse = np.where(l[..., 0] > 0, lse, -np.inf)
    return (out, lse) if return_lse else out


def attention_backward(do, q, k, v, out, lse, *, causal=False, mask=None, scale=None):
    do, q, k, v, out, lse = (np.asarray(x, dtype=np.float64) for x in (do, q, k, v, out, lse))
    scale = _default_scale(scale, q.shape[-1])
    s = _scores(q, k, causal, mask, scale)
    fin = np.isfinite(lse)[..., None]
    p = np.where(fin, np.exp(s - np.where(fin, lse[..., None], 0.0)), 0.0)
    dv = np.matmul(np.swapaxes(p, -1, -2), do)
    dp = np.matmul(do, np.swapaxes(v, -1, -2))
    dd = (do * out).sum(axis=-1, keepdims=True)
    ds = p * (dp - dd)
    dq = scale * np.matmul(ds, k)
    dk = scale * np.matmul(np.swapaxes(ds, -1, -2), q)
    return dq, dk, dv
