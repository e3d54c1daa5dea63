"""Row-wise Transformer pieces in float64, same signatures as bigmodel.ops (torch semantics):
softmax, log_softmax, cross_entropy, layer_norm, and their backward."""
from __future__ import annotations

import numpy as np


def softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def softmax_backward(dy, y, axis=-1):
    dy, y = np.asarray(dy, np.float64), np.asarray(y, np.float64)
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def log_softmax_backward(dy, y, axis=-1):
    dy, y = np.asarray(dy, np.float64), np.asarray(y, np.float64)
    return dy - np.exp(y) * dy.sum(axis=axis, keepdims=True)


def _ce_rows(logits, targets):
    """(N, C) logits and (N,) targets from (N, C, d1, ...) / (C,) inputs, classes on axis 1."""
    x = np.asarray(logits, dtype=np.float64)
    t = np.asarray(targets)
    if x.ndim == 1:
        return x[None], t.reshape(1), ()
    rest = x.shape[2:]
    return np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]), t.reshape(-1), (x.shape[0],) + rest


def cross_entropy(logits, targets, *, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    x, t, out_shape = _ce_rows(logits, targets)
    n, c = x.shape
    valid = t != ignore_index
    logp = log_softmax(x)
    tt = np.where(valid, t, 0)
    nll = np.where(valid, -logp[np.arange(n), tt], 0.0)
    smooth = np.where(valid, -logp.sum(axis=1), 0.0)
    loss = (1 - label_smoothing) * nll
    if label_smoothing:  # (not 0 * inf = NaN for a -inf logit when there is no smoothing)
        loss = loss + label_smoothing / c * smooth
    if reduction == "none":
        return loss.reshape(out_shape)
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return loss.sum() / valid.sum()


def cross_entropy_backward(grad, logits, targets, *, ignore_index=-100, label_smoothing=0.0,
                           reduction="mean"):
    x, t, _ = _ce_rows(logits, targets)
    n, c = x.shape
    valid = t != ignore_index
    g = np.asarray(grad, dtype=np.float64)
    if reduction == "none":
        w = g.reshape(-1)
    elif reduction == "sum":
        w = np.full(n, float(g))
    else:
        w = np.full(n, float(g) / valid.sum())
    onehot = np.zeros_like(x)
    onehot[np.arange(n), np.where(valid, t, 0)] = 1.0
    d = softmax(x) - (1 - label_smoothing) * onehot - label_smoothing / c
    d = np.where(valid[:, None], d * w[:, None], 0.0)
    logits = np.asarray(logits)
    if logits.ndim == 1:
        return d[0]
    shp = (logits.shape[0],) + logits.shape[2:] + (logits.shape[1],)
    return np.moveaxis(d.reshape(shp), -1, 1)


def _norm_axes(x, normalized_shape):
    ns = (normalized_shape,) if np.isscalar(normalized_shape) else tuple(normalized_shape)
    return tuple(range(x.ndim - len(ns), x.ndim))


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    x = np.asarray(x, dtype=np.float64)
    ax = _norm_axes(x, normalized_shape)
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    y = (x - mu) / np.sqrt(var + eps)
    if weight is not None:
        y = y * np.asarray(weight, np.float64)
    if bias is not None:
        y = y + np.asarray(bias, np.float64)
    return y


def layer_norm_backward(dy, x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """(dx, dweight, dbias); dweight / dbias are None when weight / bias are."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    ax = _norm_axes(x, normalized_shape)
    lead = tuple(range(x.ndim - len(ax)))
    mu = x.mean(axis=ax, keepdims=True)
    rstd = 1.0 / np.sqrt(((x - mu) ** 2).mean(axis=ax, keepdims=True) + eps)
    xhat = (x - mu) * rstd
    g = dy * (np.asarray(weight, np.float64) if weight is not None else 1.0)
    dx = rstd * (g - g.mean(axis=ax, keepdims=True) - xhat * (g * xhat).mean(axis=ax, keepdims=True))
    dw = (dy * xhat).sum(axis=lead) if weight is not None else None
    db = dy.sum(axis=lead) if bias is not None else None
    return dx, dw, db
