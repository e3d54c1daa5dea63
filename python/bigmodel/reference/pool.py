"""Pooling references (NCHW, float64): the readable specification of ops.max_pool2d & co.

Semantics identical to torch.nn.functional.max_pool2d / avg_pool2d / adaptive_avg_pool2d(x, 1):
output size  P = floor_or_ceil((H + 2*ph - kh) / sh) + 1, and with ceil_mode the last window
must start inside the input or the left padding ((P-1)*sh < H + ph), else P -= 1.
max: padded pixels are -inf; indices are flat offsets ih*W + iw in the (H, W) plane of the
first maximum in scan order (a NaN wins, the last NaN as in torch; a window of -inf gives its
first input pixel). avg: window clipped to the
padded input (H + ph at the end); the divisor counts padding when count_include_pad, else only the input pixels.
"""
from __future__ import annotations

import numpy as np


def _pair(v):
    if isinstance(v, (tuple, list)):
        return int(v[0]), int(v[1])
    return int(v), int(v)


def pool_out_size(H, k, s, p, ceil_mode):
    num = H + 2 * p - k
    out = (num + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= H + p:
        out -= 1
    return out


def _geometry(x_shape, kernel_size, stride, padding, ceil_mode):
    N, C, H, W = x_shape
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    P = pool_out_size(H, kh, sh, ph, ceil_mode)
    Q = pool_out_size(W, kw, sw, pw, ceil_mode)
    return N, C, H, W, kh, kw, sh, sw, ph, pw, P, Q


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, return_indices=True):
    x = np.asarray(x, np.float64)
    N, C, H, W, kh, kw, sh, sw, ph, pw, P, Q = _geometry(x.shape, kernel_size, stride, padding,
                                                         ceil_mode)
    y = np.full((N, C, P, Q), -np.inf)
    idx = np.zeros((N, C, P, Q), np.int64)
    for p in range(P):
        for q in range(Q):
            first = True  # the window's first input pixel is the answer until one beats it
            for r in range(kh):
                for s in range(kw):
                    ih, iw = p * sh - ph + r, q * sw - pw + s
                    if 0 <= ih < H and 0 <= iw < W:
                        v = x[:, :, ih, iw]
                        better = (v > y[:, :, p, q]) | np.isnan(v) | first
                        first = False
                        y[:, :, p, q] = np.where(better, v, y[:, :, p, q])
                        idx[:, :, p, q] = np.where(better, ih * W + iw, idx[:, :, p, q])
    return (y, idx) if return_indices else y


def max_pool2d_backward(dy, indices, x_shape):
    dy = np.asarray(dy, np.float64)
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W))
    flat_dy = dy.reshape(N * C, -1)
    flat_idx = np.asarray(indices).reshape(N * C, -1)
    for i in range(N * C):
        np.add.at(dx[i], flat_idx[i], flat_dy[i])
    return dx.reshape(N, C, H, W)


def _avg_windows(H, W, kh, kw, sh, sw, ph, pw, P, Q, count_include_pad):
    """[(p, q, h0, h1, w0, w1, divisor)] with [h0, h1) x [w0, w1) inside the input."""
    out = []
    for p in range(P):
        for q in range(Q):
            h0, w0 = p * sh - ph, q * sw - pw
            h1, w1 = min(h0 + kh, H + ph), min(w0 + kw, W + pw)
            pool = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            div = pool if count_include_pad else (h1 - h0) * (w1 - w0)
            out.append((p, q, h0, h1, w0, w1, div))
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = np.asarray(x, np.float64)
    N, C, H, W, kh, kw, sh, sw, ph, pw, P, Q = _geometry(x.shape, kernel_size, stride, padding,
                                                         ceil_mode)
    y = np.zeros((N, C, P, Q))
    for p, q, h0, h1, w0, w1, div in _avg_windows(H, W, kh, kw, sh, sw, ph, pw, P, Q,
                                                  count_include_pad):
        y[:, :, p, q] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / div
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False,
                        count_include_pad=True):
    dy = np.asarray(dy, np.float64)
    N, C, H, W, kh, kw, sh, sw, ph, pw, P, Q = _geometry(x_shape, kernel_size, stride, padding,
                                                         ceil_mode)
    dx = np.zeros((N, C, H, W))
    for p, q, h0, h1, w0, w1, div in _avg_windows(H, W, kh, kw, sh, sw, ph, pw, P, Q,
                                                  count_include_pad):
        dx[:, :, h0:h1, w0:w1] += (dy[:, :, p, q] / div)[:, :, None, None]
    return dx


def global_avg_pool2d(x):
    """(N, C, H, W) -> (N, C, 1, 1): the mean over each plane."""
    return np.asarray(x, np.float64).mean(axis=(2, 3), keepdims=True)


def global_avg_pool2d_backward(dy, x_shape):
    N, C, H, W = x_shape
    dy = np.asarray(dy, np.float64).reshape(N, C, 1, 1)
    return np.broadcast_to(dy / (H * W), (N, C, H, W)).copy()
