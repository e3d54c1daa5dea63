"""conv2d reference (NCHW, float64): the readable specification of ops.conv2d / conv2d_backward.

x (N, C, H, W), w (K, C/groups, R, S), b (K,) -> y (N, K, P, Q) with
    y[n, k, p, q] = b[k] + sum_{c, r, s} w[k, c, r, s] * xpad[n, g*C/groups + c, p*sh + r*dh, q*sw + s*dw]
where g = k // (K/groups) and xpad is x zero-padded by (top, bottom, left, right).
padding: int, (ph, pw), 'valid' (0) or 'same' (stride 1; total d*(k-1), the extra pixel at the
bottom/right, as torch). Semantics identical to torch.nn.functional.conv2d.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def conv_padding(padding, R, S, dilation):
    """(top, bottom, left, right) for an int, pair, 'valid' or 'same' padding."""
    dh, dw = _pair(dilation)
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        th, tw = dh * (R - 1), dw * (S - 1)
        return th // 2, th - th // 2, tw // 2, tw - tw // 2
    ph, pw = _pair(padding)
    return ph, ph, pw, pw


def _taps(x, R, S, stride, pads, dilation):
    """xpad views: cols[r, s] = (N, C, P, Q) input pixels seen by tap (r, s)."""
    sh, sw = _pair(stride)
    dh, dw = _pair(dilation)
    pt, pb, pl, pr = pads
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    Hp, Wp = xp.shape[2:]
    P = (Hp - dh * (R - 1) - 1) // sh + 1
    Q = (Wp - dw * (S - 1) - 1) // sw + 1
    return xp, P, Q, sh, sw, dh, dw


def conv2d(x, w, b=None, *, stride=1, padding=0, dilation=1, groups=1):
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    G = groups
    Kg = K // G
    pads = conv_padding(padding, R, S, dilation)
    xp, P, Q, sh, sw, dh, dw = _taps(x, R, S, stride, pads, dilation)
    y = np.zeros((N, K, P, Q))
    for g in range(G):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Kg:(g + 1) * Kg]
        for r in range(R):
            for s in range(S):
                patch = xg[:, :, r * dh: r * dh + sh * (P - 1) + 1: sh,
                           s * dw: s * dw + sw * (Q - 1) + 1: sw]          # (N, Cg, P, Q)
                y[:, g * Kg:(g + 1) * Kg] += np.einsum("kc,ncpq->nkpq", wg[:, :, r, s], patch)
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv2d_backward(dy, x, w, *, stride=1, padding=0, dilation=1, groups=1, need_dx=True,
                    need_dw=True, need_db=True):
    """(dx, dw, db) of conv2d for the upstream gradient dy (N, K, P, Q); None where not needed."""
    dy = np.asarray(dy, np.float64)
    x = np.asarray(x, np.float64)
    w = np.asarray(w, np.float64)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    G = groups
    Kg = K // G
    pads = conv_padding(padding, R, S, dilation)
    xp, P, Q, sh, sw, dh, dw_ = _taps(x, R, S, stride, pads, dilation)
    dxp = np.zeros_like(xp) if need_dx else None
    dw = np.zeros_like(w) if need_dw else None
    for g in range(G):
        dyg = dy[:, g * Kg:(g + 1) * Kg]
        wg = w[g * Kg:(g + 1) * Kg]
        for r in range(R):
            for s in range(S):
                sl = (slice(None), slice(g * Cg, (g + 1) * Cg),
                      slice(r * dh, r * dh + sh * (P - 1) + 1, sh),
                      slice(s * dw_, s * dw_ + sw * (Q - 1) + 1, sw))
                if need_dw:
                    dw[g * Kg:(g + 1) * Kg, :, r, s] = np.einsum("nkpq,ncpq->kc", dyg, xp[sl])
                if need_dx:
                    dxp[sl] += np.einsum("kc,nkpq->ncpq", wg[:, :, r, s], dyg)
    dx = None
    if need_dx:
        pt, pb, pl, pr = pads
        dx = dxp[:, :, pt:pt + H, pl:pl + W]
    db = dy.sum(axis=(0, 2, 3)) if need_db else None
    return dx, dw, db
