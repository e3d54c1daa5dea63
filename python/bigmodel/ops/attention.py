"""Fused scaled-dot-product attention (FlashAttention-2 style) and its backward.

q (B, H, Sq, D), k (B, H, Sk, D), v (B, H, Sk, Dv), float32 or float64. The Sq x Sk score
matrix is never formed: memory beyond the inputs and outputs is O(S * D) per thread. CuPy
arrays run on bigmodel's CUDA kernels (csrc/cuda/attention.cu), NumPy arrays on the CPU.
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core
from ._checks import flag, float_array, real_number, same_dtype, shape


def _unit_last(x, xp=np):
    return x if x.shape[-1] <= 1 or x.strides[-1] == x.itemsize else xp.ascontiguousarray(x)


def _check_qkv(op, q, k, v):
    for name, x in (("q", q), ("k", k), ("v", v)):
        float_array(op, name, x, ndim=4)
    same_dtype(op, "q", q, k=k, v=v)
    B, H, Sq, D = shape(q)
    if shape(k)[:2] != (B, H) or shape(v)[:2] != (B, H) or k.shape[3] != D or v.shape[2] != k.shape[2]:
        raise ValueError(f"{op}: q, k, v must be (B, H, Sq, D), (B, H, Sk, D), (B, H, Sk, Dv); got "
                         f"q.shape={shape(q)}, k.shape={shape(k)}, v.shape={shape(v)}")
    return B, H, Sq, int(k.shape[2]), D, int(v.shape[3])


def _prepare_mask(op, mask, dtype, full, xp=np):
    """(mask view broadcast to full, kind): kind 0 none, 1 boolean (uint8 view), 2 additive."""
    if mask is None:
        return None, 0
    if not isinstance(mask, np.ndarray) and not _backend._is_cupy(mask):
        raise TypeError(f"{op}: mask must be a numpy.ndarray or None, got {type(mask).__name__}")
    if mask.dtype == np.bool_:
        kind = 1
    elif mask.dtype.kind == "f":
        kind = 2
        mask = mask.astype(dtype, copy=False)
    else:
        raise TypeError(f"{op}: mask must be boolean (True = may attend) or floating (added to the "
                        f"scores), got dtype {mask.dtype}")
    if mask.ndim > 4:
        raise ValueError(f"{op}: mask.shape={shape(mask)} has more than 4 dimensions")
    try:
        m = xp.broadcast_to(mask, full)
    except ValueError:
        raise ValueError(f"{op}: mask.shape={shape(mask)} does not broadcast to (B, H, Sq, Sk)="
                         f"{full}") from None
    if kind == 1:
        m = m.view(np.uint8)
    return m, kind


def _scale(op, scale, D):
    if scale is None:
        return 1.0 / np.sqrt(D) if D > 0 else 1.0
    return real_number(op, "scale", scale)


def attention(q, k, v, *, causal=False, mask=None, scale=None, return_lse=False):
    """softmax(q k^T * scale + mask) v, fused and tiled with an online softmax.

    mask broadcasts to (B, H, Sq, Sk): boolean (True = may attend, as torch SDPA) or additive
    float. causal: key j is visible to query i iff j <= i (top-left aligned when Sq != Sk, as
    torch); it may be combined with a mask. scale defaults to 1/sqrt(D). Rows whose keys are all
    hidden give zeros. return_lse also returns the row log-sum-exp (B, H, Sq) that
    attention_backward needs (-inf for fully hidden rows).

    >>> import numpy as np
    >>> from bigmodel.ops import attention
    >>> q = k = v = np.ones((1, 1, 3, 4), np.float32)
    >>> attention(q, k, v, causal=True)[0, 0, :, 0]
    array([1., 1., 1.], dtype=float32)
    """
    op = "attention"
    xp = _backend.array_module(op, q=q, k=k, v=v, mask=mask)
    B, H, Sq, Sk, D, Dv = _check_qkv(op, q, k, v)
    causal = flag(op, "causal", causal)
    flag(op, "return_lse", return_lse)
    scale = _scale(op, scale, D)
    m, kind = _prepare_mask(op, mask, q.dtype, (B, H, Sq, Sk), xp)
    out = xp.empty((B, H, Sq, Dv), dtype=q.dtype)
    lse = xp.empty((B, H, Sq), dtype=q.dtype)
    if xp is not np:
        _forward_cuda(_unit_last(q, xp), _unit_last(k, xp), _unit_last(v, xp), m, kind, causal,
                      scale, out, lse)
        return (out, lse) if return_lse else out
    _core.attention_forward(_unit_last(q), _unit_last(k), _unit_last(v), m, kind, causal, scale,
                            out, lse)
    return (out, lse) if return_lse else out


def attention_backward(do, q, k, v, out, lse, *, causal=False, mask=None, scale=None):
    """Gradients (dq, dk, dv) of attention given do = dL/d out, and the forward's out and lse.

    Scores are recomputed tile by tile from lse (FlashAttention-2 backward); causal, mask and
    scale must be those of the forward call.

    >>> import numpy as np
    >>> from bigmodel.ops import attention, attention_backward
    >>> q = k = v = np.ones((1, 1, 2, 4), np.float32)
    >>> o, lse = attention(q, k, v, return_lse=True)
    >>> [g.shape for g in attention_backward(np.ones_like(o), q, k, v, o, lse)]
    [(1, 1, 2, 4), (1, 1, 2, 4), (1, 1, 2, 4)]
    """
    op = "attention_backward"
    xp = _backend.array_module(op, do=do, q=q, k=k, v=v, out=out, lse=lse, mask=mask)
    B, H, Sq, Sk, D, Dv = _check_qkv(op, q, k, v)
    float_array(op, "do", do, ndim=4)
    float_array(op, "out", out, ndim=4)
    float_array(op, "lse", lse, ndim=3)
    same_dtype(op, "q", q, do=do, out=out, lse=lse)
    for name, x, want in (("do", do, (B, H, Sq, Dv)), ("out", out, (B, H, Sq, Dv)),
                          ("lse", lse, (B, H, Sq))):
        if shape(x) != want:
            raise ValueError(f"{op}: {name}.shape={shape(x)}, expected {want} "
                             f"(q.shape={shape(q)}, v.shape={shape(v)})")
    causal = flag(op, "causal", causal)
    scale = _scale(op, scale, D)
    m, kind = _prepare_mask(op, mask, q.dtype, (B, H, Sq, Sk), xp)
    if xp is not np:
        return _backward_cuda(xp.ascontiguousarray(do), _unit_last(q, xp), _unit_last(k, xp),
                              _unit_last(v, xp), xp.ascontiguousarray(out),
                              xp.ascontiguousarray(lse), m, kind, causal, scale)
    dq = np.zeros((B, H, Sq, D), dtype=q.dtype)
    dk = np.zeros((B, H, Sk, D), dtype=q.dtype)
    dv = np.zeros((B, H, Sk, Dv), dtype=q.dtype)
    _core.attention_backward(np.ascontiguousarray(do), _unit_last(q), _unit_last(k), _unit_last(v),
                             np.ascontiguousarray(out), np.ascontiguousarray(lse), m, kind, causal,
                             scale, dq, dk, dv)
    return dq, dk, dv


# ---- CUDA (CuPy arrays) -------------------------------------------------------------------------

def _elem_strides(x, n):
    """The first n element strides of x (the d stride is 1 after _unit_last)."""
    return [int(st) // x.itemsize for st in x.strides[:n]]


def _cuda_args(q, k, v, m, kind):
    """Pointers, sizes and strides shared by the forward and backward launches."""
    B, H, Sq, D = (int(s) for s in q.shape)
    Sk, Dv = int(k.shape[2]), int(v.shape[3])
    mask_ptr, mask_strides = (0, [0, 0, 0, 0]) if m is None else (m.data.ptr, _elem_strides(m, 4))
    return dict(q_ptr=q.data.ptr, k_ptr=k.data.ptr, v_ptr=v.data.ptr,
                sizes=[B, H, Sq, Sk, D, Dv], q_strides=_elem_strides(q, 3),
                k_strides=_elem_strides(k, 3), v_strides=_elem_strides(v, 3), mask_ptr=mask_ptr,
                mask_kind=kind, mask_strides=mask_strides, dtype=str(q.dtype))


def _forward_cuda(q, k, v, m, kind, causal, scale, out, lse):
    import cupy

    mod = _backend.cuda()
    mod.attention_forward(**_cuda_args(q, k, v, m, kind), causal=causal, scale=scale,
                          out_ptr=out.data.ptr, lse_ptr=lse.data.ptr,
                          stream_ptr=cupy.cuda.get_current_stream().ptr)


def _backward_cuda(do, q, k, v, out, lse, m, kind, causal, scale):
    """dq, dk, dv on the GPU; the kernels write every element (no zero fill), dd is workspace."""
    import cupy

    mod = _backend.cuda()
    dq = cupy.empty(q.shape, dtype=q.dtype)
    dk = cupy.empty(k.shape, dtype=q.dtype)
    dv = cupy.empty(v.shape, dtype=q.dtype)
    dd = cupy.empty(lse.shape, dtype=q.dtype)
    mod.attention_backward(dout_ptr=do.data.ptr, out_ptr=out.data.ptr, lse_ptr=lse.data.ptr,
                           **_cuda_args(q, k, v, m, kind), causal=causal, scale=scale,
                           dd_ptr=dd.data.ptr, dq_ptr=dq.data.ptr, dk_ptr=dk.data.ptr,
                           dv_ptr=dv.data.ptr, stream_ptr=cupy.cuda.get_current_stream().ptr)
    return dq, dk, dv
