"""Differentiable functions on Tensors: each pairs a native op (bigmodel.ops) with its backward.

>>> import numpy as np, bigmodel as bm
>>> import bigmodel.functional as F
>>> x = bm.Tensor(np.ones((2, 3), np.float32), requires_grad=True)
>>> w = bm.Tensor(np.ones((4, 3), np.float32), requires_grad=True)
>>> F.linear(x, w).shape
(2, 4)
"""
from __future__ import annotations

import numpy as np

from . import ops
from .random import get_rng
from .tensor import Tensor, _scatter_add, _xp


def _device(a):
    return "cpu" if _xp(a) is np else "cuda"


def _array_like(x, like):
    """x as an array: a Tensor's data or an array as it is (a device mix is then named by the
    op), anything else (a list, a scalar) converted on like's device."""
    if isinstance(x, Tensor):
        return x.data
    if isinstance(x, np.ndarray) or _xp(x) is not np:
        return x
    return _xp(like).asarray(x)

__all__ = ["matmul", "linear", "conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool2d", "relu",
           "gelu", "tanh", "sigmoid", "exp", "log", "softmax", "log_softmax", "cross_entropy",
           "mse_loss", "dropout", "layer_norm", "batch_norm", "embedding", "attention", "flatten",
           "rnn", "lstm", "gru"]


def _t(x):
    return x if isinstance(x, Tensor) else Tensor(x)


# ---- linear algebra ---------------------------------------------------------------------------

def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b (2-D or batched) on bigmodel's GEMM."""
    a, b = _t(a), _t(b)
    A, B = a.data, b.data
    out = ops.matmul(A, B)

    def bwd(g):
        ga = ops.matmul(g, np.swapaxes(B, -1, -2)) if a.requires_grad else None
        gb = ops.matmul(np.swapaxes(A, -1, -2), g) if b.requires_grad else None
        return ga, gb
    return Tensor._make(out, (a, b), bwd, "matmul")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias; x (..., in), weight (out, in) as torch.nn.Linear."""
    x, weight = _t(x), _t(weight)
    bias = None if bias is None else _t(bias)
    X, W = x.data, weight.data
    if W.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got "
                         f"weight.shape={W.shape}")
    if X.ndim == 0:
        raise ValueError(f"linear: x must have at least 1 dimension, got x.shape={X.shape}")
    if bias is not None and bias.shape != (W.shape[0],):
        raise ValueError(f"linear: bias.shape={bias.shape}, expected ({W.shape[0]},) for "
                         f"weight.shape={W.shape}")
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"linear: x has {X.shape[-1]} features but weight expects {W.shape[1]} "
                         f"(x.shape={X.shape}, weight.shape={W.shape})")
    lead = X.shape[:-1]
    X2 = X.reshape(int(np.prod(lead)), X.shape[-1])
    if bias is not None:
        out = ops.gemm(X2, W, np.broadcast_to(bias.data, (X2.shape[0], W.shape[0])), beta=1.0,
                       trans_b=True)
    else:
        out = ops.gemm(X2, W, trans_b=True)
    out = out.reshape(lead + (W.shape[0],))
    parents = (x, weight) if bias is None else (x, weight, bias)

    def bwd(g):
        g2 = g.reshape(X2.shape[0], W.shape[0])
        gx = ops.matmul(g2, W).reshape(X.shape) if x.requires_grad else None
        gw = ops.gemm(g2, X2, trans_a=True) if weight.requires_grad else None
        res = (gx, gw)
        if bias is not None:
            res += (g2.sum(axis=0) if bias.requires_grad else None,)
        return res
    return Tensor._make(out, parents, bwd, "linear")


# ---- convolution and pooling ------------------------------------------------------------------

def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    x, weight = _t(x), _t(weight)
    bias = None if bias is None else _t(bias)
    geo = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    X, W = x.data, weight.data
    out = ops.conv2d(X, W, None if bias is None else bias.data, **geo)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def bwd(g):
        dx, dw, db = ops.conv2d_backward(
            g, X, W, need_dx=x.requires_grad, need_dw=weight.requires_grad,
            need_db=bias is not None and bias.requires_grad, **geo)
        return (dx, dw) if bias is None else (dx, dw, db)
    return Tensor._make(out, parents, bwd, "conv2d")


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False) -> Tensor:
    x = _t(x)
    shape = x.shape
    y, idx = ops.max_pool2d(x.data, kernel_size, stride, padding, ceil_mode, return_indices=True)
    return Tensor._make(y, (x,), lambda g: (ops.max_pool2d_backward(
        _xp(g).ascontiguousarray(g), idx, shape),), "max_pool2d")


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False,
               count_include_pad=True) -> Tensor:
    x = _t(x)
    shape = x.shape
    y = ops.avg_pool2d(x.data, kernel_size, stride, padding, ceil_mode, count_include_pad)
    return Tensor._make(y, (x,), lambda g: (ops.avg_pool2d_backward(
        _xp(g).ascontiguousarray(g), shape, kernel_size, stride, padding, ceil_mode,
        count_include_pad),), "avg_pool2d")


def global_avg_pool2d(x) -> Tensor:
    x = _t(x)
    shape = x.shape
    y = ops.global_avg_pool2d(x.data)
    return Tensor._make(y, (x,), lambda g: (ops.global_avg_pool2d_backward(
        _xp(g).ascontiguousarray(g), shape),), "global_avg_pool2d")


def flatten(x, start_dim=1) -> Tensor:
    x = _t(x)
    if isinstance(start_dim, bool) or not isinstance(start_dim, (int, np.integer)):
        raise TypeError(f"flatten: start_dim must be an int, got {type(start_dim).__name__} "
                        f"(x.shape={x.shape})")
    if not -x.ndim <= start_dim < max(x.ndim, 1):
        raise ValueError(f"flatten: start_dim {start_dim} is out of range for x.shape={x.shape}")
    return x.flatten(int(start_dim) % max(x.ndim, 1))


# ---- elementwise ------------------------------------------------------------------------------

def relu(x) -> Tensor:
    x = _t(x)
    X = x.data
    if X.dtype in (np.float32, np.float64):  # the native kernel (CPU) or the CUDA one (CuPy)
        return Tensor._make(ops.relu(X), (x,), lambda g: (ops.relu_backward(g, X),), "relu")
    xp = _xp(X)
    return Tensor._make(xp.maximum(X, 0), (x,), lambda g: (g * (X > 0),), "relu")


def tanh(x) -> Tensor:
    x = _t(x)
    y = _xp(x.data).tanh(x.data)
    return Tensor._make(y, (x,), lambda g: (g * (1 - y * y),), "tanh")


def sigmoid(x) -> Tensor:
    x = _t(x)
    xp = _xp(x.data)
    y = 0.5 * (xp.tanh(0.5 * x.data) + 1)  # overflow-free logistic
    return Tensor._make(y.astype(x.dtype, copy=False), (x,), lambda g: (g * y * (1 - y),),
                        "sigmoid")


_ERF = {}


def _erf(xp):
    """Vectorised erf for xp's arrays: cupyx's on CuPy; SciPy's on NumPy when installed, else
    math.erf element by element (looked up once per module)."""
    if xp not in _ERF:
        if xp is not np:
            from cupyx.scipy.special import erf
        else:
            try:
                from scipy.special import erf
            except ImportError:
                from math import erf as scalar_erf
                erf = np.vectorize(scalar_erf, otypes=[np.float64])
        _ERF[xp] = erf
    return _ERF[xp]


def gelu(x) -> Tensor:
    """Exact (erf) GELU, as torch's default; computed in float64 on the data's device."""
    from math import pi, sqrt
    x = _t(x)
    xp = _xp(x.data)
    X = x.data.astype(np.float64)
    e = _erf(xp)(X / sqrt(2.0))
    y = (0.5 * X * (1 + e)).astype(x.dtype)
    pdf = xp.exp(-0.5 * X * X) / sqrt(2 * pi)

    def bwd(g):
        return ((g * (0.5 * (1 + e) + X * pdf)).astype(x.dtype),)
    return Tensor._make(y, (x,), bwd, "gelu")


def exp(x) -> Tensor:
    x = _t(x)
    y = _xp(x.data).exp(x.data)
    return Tensor._make(y, (x,), lambda g: (g * y,), "exp")


def log(x) -> Tensor:
    x = _t(x)
    X = x.data
    return Tensor._make(_xp(X).log(X), (x,), lambda g: (g / X,), "log")


def dropout(x, p=0.5, training=True) -> Tensor:
    x = _t(x)
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise TypeError(f"dropout: p must be a number in [0, 1), got {type(p).__name__}")
    if not 0 <= p < 1:
        raise ValueError(f"dropout: p must be in [0, 1), got {p}")
    if not training or p == 0:
        return x
    # The mask is drawn on the host from bigmodel's generator, so a seed gives the same mask on
    # either device, then moved to the data's device.
    keep = _xp(x.data).asarray((get_rng().random(x.shape) >= p).astype(x.dtype) / (1 - p))
    return Tensor._make(x.data * keep, (x,), lambda g: (g * keep,), "dropout")


# ---- softmax, losses, normalisation -----------------------------------------------------------

def softmax(x, axis=-1) -> Tensor:
    x = _t(x)
    y = ops.softmax(x.data, axis)
    return Tensor._make(y, (x,), lambda g: (ops.softmax_backward(g, y, axis),), "softmax")


def log_softmax(x, axis=-1) -> Tensor:
    x = _t(x)
    y = ops.log_softmax(x.data, axis)
    return Tensor._make(y, (x,), lambda g: (ops.log_softmax_backward(g, y, axis),),
                        "log_softmax")


def cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.0,
                  reduction="mean") -> Tensor:
    """torch.nn.functional.cross_entropy: logits (N, C), integer targets (N,)."""
    logits = _t(logits)
    t = _array_like(targets, logits.data)
    if t.dtype.kind not in "iu":
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}")
    if logits.ndim == 0:
        raise ValueError("cross_entropy: logits must be (C,), (N, C) or (N, C, d1, ...), got a "
                         "scalar")
    C = logits.shape[1] if logits.ndim > 1 else logits.shape[0]
    valid = t[t != ignore_index]
    if valid.size and (valid.min() < 0 or valid.max() >= C):
        raise ValueError(f"cross_entropy: target {int(valid.max() if valid.max() >= C else valid.min())}"
                         f" is out of range for {C} classes (logits.shape={logits.shape})")
    kw = dict(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    L = logits.data
    loss = ops.cross_entropy(L, t, **kw)
    return Tensor._make(_xp(loss).asarray(loss), (logits,),
                        lambda g: (ops.cross_entropy_backward(g, L, t, **kw),), "cross_entropy")


def mse_loss(pred, target, reduction="mean") -> Tensor:
    pred = _t(pred)
    target = _t(target)
    if pred.shape != target.shape:  # broadcasting here is almost always a bug (torch warns)
        raise ValueError(f"mse_loss: pred.shape={pred.shape} and target.shape={target.shape} "
                         f"differ")
    d = pred - target
    sq = d * d
    if reduction == "mean":
        return sq.mean()
    if reduction == "sum":
        return sq.sum()
    if reduction == "none":
        return sq
    raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5) -> Tensor:
    x = _t(x)
    weight = None if weight is None else _t(weight)
    bias = None if bias is None else _t(bias)
    W = None if weight is None else weight.data
    B = None if bias is None else bias.data
    y, mean, rstd = ops.layer_norm(x.data, normalized_shape, W, B, eps, return_stats=True)
    X = x.data
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def bwd(g):
        dx, dw, db = ops.layer_norm_backward(g, X, normalized_shape, W, B, eps, mean=mean,
                                             rstd=rstd)
        return tuple(v for v, p in ((dx, x), (dw, weight), (db, bias)) if p is not None)
    return Tensor._make(y, parents, bwd, "layer_norm")


def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=True,
               momentum=0.1, eps=1e-5) -> Tensor:
    """Batch normalisation over all axes but 1 (N, C, ...), updating the running stats in
    place when training (unbiased variance for the running estimate, as torch)."""
    x = _t(x)
    X = x.data
    if X.ndim < 2:
        raise ValueError(f"batch_norm: x must be (N, C, ...), got x.shape={X.shape}")
    C = X.shape[1]
    for name, a in (("running_mean", running_mean), ("running_var", running_var)):
        if not (isinstance(a, np.ndarray) or _xp(a) is not np):
            raise TypeError(f"batch_norm: {name} must be a numpy.ndarray, got {type(a).__name__}")
        if _xp(a) is not _xp(X):
            raise ValueError(f"batch_norm: {name} is on {_device(a)} but x {X.shape} is on "
                             f"{_device(X)}")
        if a.shape != (C,):
            raise ValueError(f"batch_norm: {name}.shape={a.shape}, expected ({C},) for "
                             f"x.shape={X.shape}")
    weight = None if weight is None else _t(weight)
    bias = None if bias is None else _t(bias)
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and p.shape != (C,):
            raise ValueError(f"batch_norm: {name}.shape={p.shape}, expected ({C},) for "
                             f"x.shape={X.shape}")
    if training and X.size // max(C, 1) <= 1:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                         f"got x.shape={X.shape}")
    axes = (0,) + tuple(range(2, X.ndim))
    shape = [1] * X.ndim
    shape[1] = X.shape[1]
    if training:
        mean = X.mean(axis=axes)
        var = X.var(axis=axes)
        n = X.size // X.shape[1]
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * n / max(n - 1, 1)
    else:
        mean, var = running_mean, running_var
    rstd = 1.0 / _xp(X).sqrt(var + eps)
    xhat = (X - mean.reshape(shape)) * rstd.reshape(shape)
    y = xhat
    if weight is not None:
        y = y * weight.data.reshape(shape)
    if bias is not None:
        y = y + bias.data.reshape(shape)
    parents = tuple(p for p in (x, weight, bias) if p is not None)

    def bwd(g):
        gw = (g * xhat).sum(axis=axes) if weight is not None else None
        gb = g.sum(axis=axes) if bias is not None else None
        gx_hat = g * (weight.data.reshape(shape) if weight is not None else 1)
        if training:
            m = X.size // X.shape[1]
            gx = (rstd.reshape(shape) / m) * (m * gx_hat - gx_hat.sum(axis=axes, keepdims=True)
                                              - xhat * (gx_hat * xhat).sum(axis=axes, keepdims=True))
        else:
            gx = gx_hat * rstd.reshape(shape)
        return tuple(v for v, p in ((gx, x), (gw, weight), (gb, bias)) if p is not None)
    return Tensor._make(y.astype(X.dtype, copy=False), parents, bwd, "batch_norm")


def embedding(indices, weight) -> Tensor:
    """weight[indices]; the gradient scatters (adds) back into the used rows."""
    weight = _t(weight)
    idx = _array_like(indices, weight.data)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got "
                         f"weight.shape={weight.shape}")
    V = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        raise ValueError(f"embedding: index {int(idx.max() if idx.max() >= V else idx.min())} is "
                         f"out of range for {V} rows (weight.shape={weight.shape})")
    W = weight.data

    if _xp(W) is not _xp(idx):
        raise ValueError(f"embedding: indices are on {_device(idx)} but weight "
                         f"{weight.shape} is on {_device(W)}")

    def bwd(g):
        gw = _xp(W).zeros_like(W)
        _scatter_add(gw, idx.reshape(-1), g.reshape(idx.size, W.shape[1]))
        return (gw,)
    return Tensor._make(W[idx], (weight,), bwd, "embedding")


def attention(q, k, v, causal=False, mask=None, scale=None) -> Tensor:
    """Fused softmax(q kᵀ · scale + mask) v on (B, H, S, D) tensors."""
    q, k, v = _t(q), _t(k), _t(v)
    Q, K, V = q.data, k.data, v.data
    M = mask.data if isinstance(mask, Tensor) else mask
    out, lse = ops.attention(Q, K, V, causal=causal, mask=M, scale=scale, return_lse=True)

    def bwd(g):
        return ops.attention_backward(_xp(g).ascontiguousarray(g), Q, K, V, out, lse, causal=causal,
                                      mask=M, scale=scale)
    return Tensor._make(out, (q, k, v), bwd, "attention")


# ---- recurrent networks -----------------------------------------------------------------------

def _recurrent(mode, x, weights, h0, c0, lengths, batch_first, bidirectional, nonlinearity):
    """One autograd node for a whole multi-layer (bi)directional sequence op. Its outputs (out,
    h_n[, c_n]) are views of one flat array, so their gradients meet in a single backward call."""
    x = _t(x)
    if not isinstance(weights, (list, tuple)) or not weights:
        raise TypeError(f"{mode}: weights must be a non-empty list of (w_ih, w_hh, b_ih, b_hh) "
                        f"tuples, got {type(weights).__name__}")
    if isinstance(weights, (list, tuple)):
        weights = [tuple(None if w is None else _t(w) for w in tup)
                   if isinstance(tup, (list, tuple)) else tup for tup in weights]
    flat_w = [w for tup in weights for w in tup if w is not None]
    W = [tuple(None if w is None else w.data for w in tup) for tup in weights]
    H0 = None if h0 is None else _t(h0).data
    C0 = None if c0 is None else _t(c0).data
    L = lengths.data if isinstance(lengths, Tensor) else lengths  # NumPy, CuPy or a list: ops checks
    kw = dict(lengths=L, batch_first=batch_first, bidirectional=bidirectional,
              training=any(t.requires_grad for t in [x] + flat_w))
    if mode == "lstm":
        out, hn, cn, state = ops.lstm(x.data, W, H0, C0, **kw)
        parts = [out, hn, cn]
    elif mode == "gru":
        out, hn, state = ops.gru(x.data, W, H0, **kw)
        parts = [out, hn]
    else:
        out, hn, state = ops.rnn(x.data, W, H0, nonlinearity=nonlinearity, **kw)
        parts = [out, hn]
    sizes = [p.size for p in parts]
    offsets = np.cumsum([0] + sizes)
    flat = np.concatenate([p.reshape(-1) for p in parts])
    parents = [x] + flat_w + [t for t in (h0, c0) if isinstance(t, Tensor)]

    def bwd(g):
        gs = [g[offsets[i]:offsets[i + 1]].reshape(parts[i].shape) for i in range(len(parts))]
        if mode == "lstm":
            dx, dh0, dc0, dw = ops.lstm_backward(state, gs[0], gs[1], gs[2])
        elif mode == "gru":
            dx, dh0, dw = ops.gru_backward(state, gs[0], gs[1])
            dc0 = None
        else:
            dx, dh0, dw = ops.rnn_backward(state, gs[0], gs[1])
            dc0 = None
        res = [dx]
        for tup, dtup in zip(weights, dw):
            res += [d for w, d in zip(tup, dtup) if w is not None]
        if isinstance(h0, Tensor):
            res.append(dh0)
        if isinstance(c0, Tensor):
            res.append(dc0)
        return tuple(res)
    anchor = Tensor._make(flat, tuple(parents), bwd, mode)
    outs = []
    for i, p in enumerate(parts):
        lo, hi, shp = offsets[i], offsets[i + 1], p.shape

        def view_bwd(g, lo=lo, hi=hi):
            full = _xp(flat).zeros_like(flat)
            full[lo:hi] = g.reshape(-1)
            return (full,)
        outs.append(Tensor._make(flat[lo:hi].reshape(shp), (anchor,), view_bwd, mode + "_out"))
    return outs


def lstm(x, weights, h0=None, c0=None, lengths=None, batch_first=True, bidirectional=False):
    """Multi-layer LSTM (torch layout: weights = [(w_ih, w_hh, b_ih, b_hh), ...] per layer and
    direction) -> (output, h_n, c_n) Tensors."""
    return tuple(_recurrent("lstm", x, weights, h0, c0, lengths, batch_first, bidirectional, None))


def gru(x, weights, h0=None, lengths=None, batch_first=True, bidirectional=False):
    """Multi-layer GRU -> (output, h_n)."""
    return tuple(_recurrent("gru", x, weights, h0, None, lengths, batch_first, bidirectional, None))


def rnn(x, weights, h0=None, lengths=None, batch_first=True, bidirectional=False,
        nonlinearity="tanh"):
    """Multi-layer Elman RNN -> (output, h_n)."""
    return tuple(_recurrent("rnn", x, weights, h0, None, lengths, batch_first, bidirectional,
                            nonlinearity))
