"""GEMM: ``gemm`` (C = alpha * op(A) @ op(B) + beta * C) and ``matmul``.

2-D and batched (3-D, batch broadcast) float32/float64 operands. Transposed and strided views are
passed to the kernel as strides, never copied. CuPy arrays run on bigmodel's CUDA kernels.
"""
from __future__ import annotations

import numpy as np

from . import _backend
from ._backend import _core

_PRECISIONS_CPU = ("native", "bf16")
_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))
_PRECISIONS_GPU = ("native", "tf32", "bf16", "fp16")


def _shape(x):
    return tuple(int(s) for s in x.shape)


def matmul(a, b, *, out=None, precision="native"):
    """a @ b for 2-D or batched 3-D float arrays, on bigmodel's kernels.

    >>> import numpy as np
    >>> from bigmodel.ops import matmul
    >>> matmul(np.eye(2, dtype=np.float32), np.arange(4, dtype=np.float32).reshape(2, 2))
    array([[0., 1.],
           [2., 3.]], dtype=float32)
    """
    return gemm(a, b, out=out, precision=precision)


def gemm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, out=None,
         precision="native"):
    """General matrix product: ``alpha * op(a) @ op(b) + beta * c``.

    a: (M, K) or (batch, M, K) (or (K, M) with ``trans_a``); b: (K, N) or (batch, K, N) (or (N, K)
    with ``trans_b``); a batch of 1 (or a 2-D operand) broadcasts against the other. c, when
    given, broadcasts to the result and is scaled by beta; ``out`` receives the result (it may be
    ``c`` itself for an in-place update). precision: 'native' (fp32/fp64), or on the CPU 'bf16'
    (inputs rounded to bfloat16, fp32 accumulation, AVX512_BF16 needed); on the GPU also 'tf32'
    and 'fp16' (tensor cores, fp32 accumulation).

    >>> import numpy as np
    >>> from bigmodel.ops import gemm
    >>> a = np.ones((2, 3), np.float32); b = np.ones((2, 3), np.float32)
    >>> gemm(a, b, trans_b=True, alpha=2.0)
    array([[6., 6.],
           [6., 6.]], dtype=float32)
    """
    xp = _backend.array_module("gemm", a=a, b=b, c=c, out=out)
    # ml_dtypes.bfloat16 arrays (CPU): bf16 products, fp32 accumulation, float32 result.
    bf16_in = xp is np and a.dtype not in _NATIVE and a.dtype.name == "bfloat16"
    for name, x in (("a", a), ("b", b)):
        ok = x.dtype in _NATIVE or (xp is not np and x.dtype == np.float16)
        if not ok and not (bf16_in and x.dtype.name == "bfloat16"):
            raise TypeError(f"gemm: {name} must be float32 or float64, got dtype {x.dtype} "
                            f"({name}.shape={_shape(x)})")
        if x.ndim not in (2, 3):
            raise ValueError(f"gemm: {name} must be 2-D or 3-D, got {name}.shape={_shape(x)}")
    if a.dtype != b.dtype:
        raise TypeError(f"gemm: a and b must have the same dtype, got {a.dtype} and {b.dtype}")
    allowed = _PRECISIONS_CPU if xp is np else _PRECISIONS_GPU
    if precision not in allowed:
        raise ValueError(f"gemm: precision must be one of {allowed}, got {precision!r}")
    for name, v in (("alpha", alpha), ("beta", beta)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
            raise TypeError(f"gemm: {name} must be a real number, got {type(v).__name__}")
    for name, v in (("trans_a", trans_a), ("trans_b", trans_b)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"gemm: {name} must be a bool, got {type(v).__name__}")

    a_op = xp.swapaxes(a, -1, -2) if trans_a else a
    b_op = xp.swapaxes(b, -1, -2) if trans_b else b
    M, K = a_op.shape[-2:]
    K2, N = b_op.shape[-2:]
    if K != K2:
        raise ValueError(f"gemm: inner dimensions differ: op(a) is {M}x{K}, op(b) is {K2}x{N} "
                         f"(a.shape={_shape(a)}, b.shape={_shape(b)}, trans_a={trans_a}, "
                         f"trans_b={trans_b})")
    ba = tuple(a_op.shape[:-2])
    bb = tuple(b_op.shape[:-2])
    try:
        batch = np.broadcast_shapes(ba, bb) if ba or bb else ()  # (2 us: not for 2-D operands)
    except ValueError:
        raise ValueError(f"gemm: batch dimensions do not broadcast: a.shape={_shape(a)}, "
                         f"b.shape={_shape(b)}") from None
    res_shape = batch + (M, N)
    out_dtype = np.dtype(np.float32) if bf16_in else a.dtype

    if c is not None:
        if c.dtype != out_dtype:
            raise TypeError(f"gemm: c must have dtype {out_dtype}, got {c.dtype}")
        try:
            np.broadcast_shapes(_shape(c), res_shape)
            ok = np.broadcast_shapes(_shape(c), res_shape) == res_shape
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"gemm: c.shape={_shape(c)} does not broadcast to the result shape "
                             f"{res_shape}")
    if out is not None:
        if tuple(out.shape) != res_shape:
            raise ValueError(f"gemm: out.shape={_shape(out)}, expected {res_shape} "
                             f"(a.shape={_shape(a)}, b.shape={_shape(b)})")
        if out.dtype != out_dtype:
            raise TypeError(f"gemm: out must have dtype {out_dtype}, got {out.dtype}")
        if xp is np and not out.flags.writeable:
            raise ValueError("gemm: out is read-only")

    # Where the product goes: `out`, unless it overlaps an input (then a temporary, copied back).
    use_beta = c is not None and beta != 0
    target = out
    if target is None or xp.may_share_memory(target, a) or xp.may_share_memory(target, b):
        target = xp.empty(res_shape, dtype=out_dtype)
    if use_beta and not (target is c):
        target[...] = c
    kbeta = float(beta) if use_beta else 0.0

    # 3-D views (not reshape(-1, ...): ambiguous when M, N or K is 0)
    a3 = a_op if len(ba) == 1 else a_op[None]
    b3 = b_op if len(bb) == 1 else b_op[None]
    t3 = target if batch else target[None]
    if target.size:
        if bf16_in:
            if not _core.bf16_available():
                raise RuntimeError("gemm: bfloat16 inputs need a CPU with AVX512_BF16")
            _core.gemm(a3.view(np.uint16), b3.view(np.uint16), t3, float(alpha), kbeta, "native")
        elif xp is np:
            _core.gemm(a3, b3, t3, float(alpha), kbeta, precision)
        else:
            _gemm_cuda(a3, b3, t3, float(alpha), kbeta, precision)
    if out is not None and target is not out:
        out[...] = target
        return out
    return target


def _gemm_cuda(a3, b3, t3, alpha, beta, precision):
    """Launch bigmodel's CUDA GEMM on CuPy arrays (3-D views, element strides, current stream)."""
    import cupy

    mod = _backend.cuda()
    item = a3.dtype.itemsize

    def strides(x):
        s = [st // item for st in x.strides]
        if x.shape[0] == 1:
            s[0] = 0
        return s

    batch, M, N = (int(s) for s in t3.shape)
    K = int(a3.shape[2])
    mod.gemm(a3.data.ptr, b3.data.ptr, t3.data.ptr, batch, M, N, K, strides(a3), strides(b3),
             [st // t3.dtype.itemsize for st in t3.strides], str(a3.dtype), str(t3.dtype),
             alpha, beta, precision, cupy.cuda.get_current_stream().ptr)
