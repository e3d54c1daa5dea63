"""CUDA GEMM (bigmodel._cuda through bigmodel.ops.gemm on CuPy arrays) against the float64 NumPy
reference. Every GPU test is marked `cuda` (skipped with a reason when there is no CUDA module,
GPU or CuPy); cupy is imported inside the tests so collection works on any machine.
"""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import ops, reference
from bigmodel.ops import _backend

from conftest import rel_err

TOL_FP32 = 1e-5      # fp32 SIMT kernel, K up to a few thousand
TOL_FP64 = 1e-12
TOL_TF32 = 5e-3      # tensor cores against the exact product
TOL_16BIT = 1e-2     # bf16 / fp16 products against the exact product
TOL_ROUNDED = 1e-4   # tensor cores against the reference on identically rounded inputs

# (M, N, K): ones, primes, exact tiles, non-multiples of every tile (128 / 64 / 16 / 32), long K.
SHAPES = [(1, 1, 1), (37, 53, 29), (128, 128, 16), (129, 127, 17), (255, 257, 33), (64, 96, 80),
          (1, 300, 7), (300, 1, 7), (17, 19, 1000), (200, 130, 3)]
ZERO_SHAPES = [(0, 5, 7), (5, 0, 7), (5, 7, 0), (0, 0, 0)]


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


def randn(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


def round_bf16(x):
    """float32 -> bfloat16 (round to nearest even) -> float32, as the kernel stages inputs."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)


def round_tf32(x):
    """float32 -> tf32 (cvt.rna: round to nearest, ties away from zero) -> float32."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x1000) & 0xFFFFE000
    return u.astype(np.uint32).view(np.float32)


def round_fp16(x):
    return np.asarray(x, dtype=np.float32).astype(np.float16).astype(np.float32)


ROUND = {"tf32": round_tf32, "bf16": round_bf16, "fp16": round_fp16}
TOL_PREC = {"tf32": TOL_TF32, "bf16": TOL_16BIT, "fp16": TOL_16BIT}


# ---- module import without a GPU (runs everywhere) ----------------------------------------------

def test_cuda_module_imports_without_gpu():
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    n = _cuda.device_count()  # must not raise without a driver or device
    assert n >= 0
    info = bigmodel.info()
    assert info["cuda_built"] is True
    if n == 0:
        assert info["gpu_present"] is False and info["gpu_name"] is None
        with pytest.raises(ValueError):
            _cuda.device_name(0)


def test_cuda_binding_rejects_bad_arguments_before_touching_the_gpu():
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    good = dict(a_ptr=0, b_ptr=0, c_ptr=0, batch=1, M=4, N=4, K=4, a_strides=[0, 4, 1],
                b_strides=[0, 4, 1], c_strides=[0, 4, 1], in_dtype="float32",
                out_dtype="float32", alpha=1.0, beta=0.0, precision="native", stream_ptr=0)
    bad = [dict(a_strides=[4, 1]), dict(in_dtype="int8"), dict(out_dtype="float64"),
           dict(precision="int4"), dict(in_dtype="float64", out_dtype="float64", precision="bf16"),
           dict(in_dtype="float16", out_dtype="float16", precision="tf32"), dict(M=-1),
           dict(K=2**31), dict(batch=2, c_strides=[0, 4, 1]), dict(c_ptr=0)]
    for change in bad:
        with pytest.raises(ValueError):
            _cuda.gemm(**{**good, **change})


# ---- fp32 / fp64 on the GPU ---------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", SHAPES)
def test_gemm_cuda_fp32_matches_reference(cp, rng, M, N, K):
    a, b = randn(rng, (M, K)), randn(rng, (K, N))
    out = ops.gemm(cp.asarray(a), cp.asarray(b))
    assert isinstance(out, cp.ndarray) and out.dtype == cp.float32 and out.shape == (M, N)
    assert rel_err(cp.asnumpy(out), reference.gemm(a, b)) <= TOL_FP32


@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", ZERO_SHAPES)
def test_gemm_cuda_zero_sizes(cp, rng, M, N, K):
    a, b = randn(rng, (M, K)), randn(rng, (K, N))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b)))
    assert out.shape == (M, N)
    np.testing.assert_array_equal(out, np.zeros((M, N), np.float32))


@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", [(37, 53, 29), (64, 96, 80), (130, 260, 50)])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16", "fp16"])
def test_gemm_cuda_transposes(cp, rng, M, N, K, trans_a, trans_b, precision):
    a = randn(rng, (K, M) if trans_a else (M, K))
    b = randn(rng, (N, K) if trans_b else (K, N))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), trans_a=trans_a, trans_b=trans_b,
                              precision=precision))
    ref = reference.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    if precision == "native":
        assert rel_err(out, ref) <= TOL_FP32
    else:
        r = ROUND[precision]
        assert rel_err(out, ref) <= TOL_PREC[precision]
        assert rel_err(out, reference.gemm(r(a), r(b), trans_a=trans_a, trans_b=trans_b)) <= TOL_ROUNDED


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16", "fp16"])
def test_gemm_cuda_strided_misaligned_and_negative_views(cp, rng, precision):
    # Non-unit strides on both axes, a 1-element offset (no 16-byte alignment) and a reversed
    # axis: all take the scalar loader path.
    base_a, base_b = randn(rng, (80, 90)), randn(rng, (70, 60))
    views = [
        (lambda x: x[::2, ::3], lambda x: x[::3, ::2]),
        (lambda x: x[1:, 1:], lambda x: x[1:, 1:]),
        (lambda x: x[::-1, :], lambda x: x[:, ::-1]),
    ]
    for va, vb in views:
        a_np, b_np = va(base_a), vb(base_b)
        K = min(a_np.shape[1], b_np.shape[0])
        a_np, b_np = a_np[:, :K], b_np[:K, :]
        a_cp, b_cp = va(cp.asarray(base_a))[:, :K], vb(cp.asarray(base_b))[:K, :]
        out = cp.asnumpy(ops.gemm(a_cp, b_cp, precision=precision))
        if precision == "native":
            assert rel_err(out, reference.gemm(a_np, b_np)) <= TOL_FP32
        else:
            r = ROUND[precision]
            assert rel_err(out, reference.gemm(r(a_np), r(b_np))) <= TOL_ROUNDED


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16"])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (-1.5, 0.0), (0.0, 3.0)])
def test_gemm_cuda_alpha_beta(cp, rng, precision, alpha, beta):
    M, N, K = 131, 67, 45
    a, b, c = randn(rng, (M, K)), randn(rng, (K, N)), randn(rng, (M, N))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), cp.asarray(c), alpha=alpha, beta=beta,
                              precision=precision))
    r = ROUND.get(precision, lambda x: x)
    ref = reference.gemm(r(a), r(b), c, alpha=alpha, beta=beta)
    assert rel_err(out, ref) <= (TOL_FP32 if precision == "native" else TOL_ROUNDED)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "bf16"])
def test_gemm_cuda_in_place_and_broadcast_c(cp, rng, precision):
    M, N, K = 70, 140, 33
    a, b, c = randn(rng, (M, K)), randn(rng, (K, N)), randn(rng, (M, N))
    c_gpu = cp.asarray(c)
    res = ops.gemm(cp.asarray(a), cp.asarray(b), c_gpu, alpha=2.0, beta=0.5, out=c_gpu,
                   precision=precision)
    assert res is c_gpu
    r = ROUND.get(precision, lambda x: x)
    ref = reference.gemm(r(a), r(b), c, alpha=2.0, beta=0.5)
    tol = TOL_FP32 if precision == "native" else TOL_ROUNDED
    assert rel_err(cp.asnumpy(c_gpu), ref) <= tol
    bias = randn(rng, (N,))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), cp.asarray(bias), beta=1.0,
                              precision=precision))
    assert rel_err(out, reference.gemm(r(a), r(b), bias, beta=1.0)) <= tol


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16"])
def test_gemm_cuda_beta_zero_does_not_read_out(cp, rng, precision):
    a, b = randn(rng, (33, 20)), randn(rng, (20, 130))
    out = cp.full((33, 130), cp.nan, dtype=cp.float32)
    ops.gemm(cp.asarray(a), cp.asarray(b), out=out, precision=precision)
    assert bool(cp.isfinite(out).all())


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16", "fp16"])
@pytest.mark.parametrize("sa,sb", [((4, 37, 29), (4, 29, 53)), ((4, 37, 29), (29, 53)),
                                   ((37, 29), (3, 29, 53)), ((1, 130, 64), (5, 64, 66))])
def test_gemm_cuda_batched_broadcast(cp, rng, precision, sa, sb):
    a, b = randn(rng, sa), randn(rng, sb)
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), precision=precision))
    r = ROUND.get(precision, lambda x: x)
    ref = reference.gemm(r(a), r(b))
    assert out.shape == ref.shape
    assert rel_err(out, ref) <= (TOL_FP32 if precision == "native" else TOL_ROUNDED)


@pytest.mark.cuda
def test_gemm_cuda_batched_transposed(cp, rng):
    a, b = randn(rng, (3, 29, 37)), randn(rng, (3, 53, 29))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), trans_a=True, trans_b=True))
    assert rel_err(out, reference.gemm(a, b, trans_a=True, trans_b=True)) <= TOL_FP32


@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", [(1, 1, 1), (37, 53, 29), (65, 63, 17), (100, 200, 300)])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_cuda_fp64(cp, rng, M, N, K, trans_b):
    a = randn(rng, (M, K), np.float64)
    b = randn(rng, (N, K) if trans_b else (K, N), np.float64)
    c = randn(rng, (M, N), np.float64)
    out = ops.gemm(cp.asarray(a), cp.asarray(b), cp.asarray(c), alpha=1.5, beta=-0.5,
                   trans_b=trans_b)
    assert out.dtype == cp.float64
    ref = reference.gemm(a, b, c, alpha=1.5, beta=-0.5, trans_b=trans_b)
    assert rel_err(cp.asnumpy(out), ref) <= TOL_FP64


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["native", "tf32", "bf16", "fp16"])
def test_gemm_cuda_large(cp, rng, precision):
    M, N, K = 1024, 768, 1030
    a, b = randn(rng, (M, K)), randn(rng, (K, N))
    out = cp.asnumpy(ops.gemm(cp.asarray(a), cp.asarray(b), precision=precision))
    ref = reference.gemm(a, b)
    assert rel_err(out, ref) <= (TOL_FP32 if precision == "native" else TOL_PREC[precision])


@pytest.mark.cuda
@pytest.mark.parametrize("M,N,K", [(37, 53, 29), (128, 256, 64), (200, 130, 70)])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_cuda_fp16_inputs(cp, rng, M, N, K, trans_b):
    a = randn(rng, (M, K), np.float16)
    b = randn(rng, (N, K) if trans_b else (K, N), np.float16)
    out = ops.gemm(cp.asarray(a), cp.asarray(b), trans_b=trans_b)
    assert out.dtype == cp.float16  # the output keeps the input dtype
    ref = reference.gemm(a, b, trans_b=trans_b)
    assert rel_err(cp.asnumpy(out), ref) <= 1e-3  # only the fp16 output rounding remains
    c = randn(rng, (M, N), np.float16)
    out = ops.gemm(cp.asarray(a), cp.asarray(b), cp.asarray(c), alpha=0.5, beta=2.0,
                   trans_b=trans_b)
    ref = reference.gemm(a, b, c, alpha=0.5, beta=2.0, trans_b=trans_b)
    assert rel_err(cp.asnumpy(out), ref) <= 1e-3


@pytest.mark.cuda
def test_gemm_cuda_fp16_inputs_fp32_output_binding(cp, rng):
    from bigmodel import _cuda
    M, N, K = 70, 90, 50
    a, b = cp.asarray(randn(rng, (M, K), np.float16)), cp.asarray(randn(rng, (K, N), np.float16))
    c = cp.zeros((M, N), cp.float32)
    _cuda.gemm(a.data.ptr, b.data.ptr, c.data.ptr, 1, M, N, K, [0, K, 1], [0, N, 1], [0, N, 1],
               "float16", "float32", 1.0, 0.0, "native", cp.cuda.get_current_stream().ptr)
    ref = reference.gemm(cp.asnumpy(a), cp.asnumpy(b))
    assert rel_err(cp.asnumpy(c), ref) <= TOL_ROUNDED


@pytest.mark.cuda
def test_gemm_cuda_runs_on_current_stream(cp, rng):
    a, b = randn(rng, (300, 200)), randn(rng, (200, 100))
    s = cp.cuda.Stream(non_blocking=True)
    with s:
        out = ops.gemm(cp.asarray(a), cp.asarray(b))
    s.synchronize()
    assert rel_err(cp.asnumpy(out), reference.gemm(a, b)) <= TOL_FP32


@pytest.mark.cuda
def test_gemm_cuda_bad_inputs(cp, rng):
    a, b = randn(rng, (4, 5)), randn(rng, (5, 6))
    with pytest.raises(ValueError, match="different devices"):
        ops.gemm(cp.asarray(a), b)
    with pytest.raises(ValueError, match="different devices"):
        ops.gemm(a, cp.asarray(b))
    with pytest.raises(ValueError, match="different devices"):
        ops.gemm(cp.asarray(a), cp.asarray(b), out=np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="inner dimensions"):
        ops.gemm(cp.asarray(a), cp.asarray(a))
    with pytest.raises(ValueError, match="precision"):
        ops.gemm(cp.asarray(a), cp.asarray(b), precision="int8")
    with pytest.raises(ValueError):  # no fp64 tensor-core path
        ops.gemm(cp.asarray(a, np.float64), cp.asarray(b, np.float64), precision="bf16")
    from bigmodel import _cuda
    host = np.zeros((4, 6), np.float32)  # a host pointer is refused, not dereferenced
    a_gpu, b_gpu = cp.asarray(a), cp.asarray(b)
    with pytest.raises(ValueError, match="not memory the GPU"):
        _cuda.gemm(a_gpu.data.ptr, b_gpu.data.ptr, host.ctypes.data, 1, 4, 6, 5, [0, 5, 1],
                   [0, 6, 1], [0, 6, 1], "float32", "float32", 1.0, 0.0, "native", 0)
