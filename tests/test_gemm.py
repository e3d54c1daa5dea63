"""GEMM: ops.gemm / ops.matmul against the float64 NumPy reference, on every ISA path."""
from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

import bigmodel
from bigmodel import _core, ops, reference
from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}

# (M, N, K): ones, primes, non-multiples of every tile (MR 4/6/12, NR 8/16/32, KC 256/384/768,
# NC 512/1024), a K crossing the KC block boundary, the layer shapes, and a small M with a B
# above 512 KB (packed in groups of panels, 8 k rows at a time, the next group prefetched).
SHAPES = [
    (1, 1, 1), (1, 7, 3), (5, 1, 9), (2, 3, 1), (13, 37, 29), (31, 17, 61), (12, 32, 8),
    (97, 101, 103), (100, 7, 300), (6, 16, 770), (64, 784, 128), (129, 513, 385),
    (257, 1025, 97), (3, 1030, 5), (20, 1301, 301),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_matmul_matches_reference(isa, rng, shape, dtype):
    M, N, K = shape
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    got = ops.matmul(a, b)
    assert got.dtype == dtype and got.shape == (M, N)
    assert rel_err(got, reference.matmul(a, b)) <= TOL[dtype]


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(45, 67, 89), (130, 1300, 70)], ids=["small", "blocks"])
def test_gemm_transposes_alpha_beta(isa, rng, trans_a, trans_b, dtype, shape):
    M, N, K = shape  # the second one gives each thread several column blocks
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    got = ops.gemm(a, b, c, alpha=-0.7, beta=1.3, trans_a=trans_a, trans_b=trans_b)
    ref = reference.gemm(a, b, c, alpha=-0.7, beta=1.3, trans_a=trans_a, trans_b=trans_b)
    assert rel_err(got, ref) <= TOL[dtype]


# Narrow outputs pick their own tiles (fp32 N <= 32: 12x32; fp64 16 < N <= 24: 8x24) and short
# edge panels a shorter tile (rows 1-4 / 5-8 / 9-12 of 12, 1-2 / 3-5 / 6-8 of 8); a transposed A
# and a narrow B are packed by masked vector row copies. Tall-skinny and long-K (Gram) shapes.
@pytest.mark.parametrize("shape", [(1682, 20, 20), (20, 20, 1682), (21, 17, 943), (5, 24, 300),
                                   (9, 33, 77), (101, 19, 257), (2, 23, 9), (13, 32, 5)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_narrow_outputs(isa, rng, shape, trans_a, dtype):
    M, N, K = shape
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    got = ops.gemm(a, b, c.copy(), alpha=1.5, beta=-0.5, trans_a=trans_a)
    ref = reference.gemm(a, b, c, alpha=1.5, beta=-0.5, trans_a=trans_a)
    assert rel_err(got, ref) <= TOL[dtype]


# A narrow last column panel runs only the SIMD vectors it needs (fp32 64-wide panels: N % 64 in
# 1-16, 17-32, 33-48, 49-63; fp64 16-wide: N % 16 in 1-8, 9-15), each under both drivers (M <= 96
# and M > 96), on one and two threads. On two threads N = 80 / 300 / 600 split the columns
# unevenly by whole blocks, so the large-M driver splits the rows instead; N = 1100 keeps whole
# column blocks per thread.
@pytest.mark.parametrize("N", [80, 100, 113, 127, 137, 300, 600, 1100])
@pytest.mark.parametrize("M", [37, 200])
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_narrow_last_panel_and_thread_split(rng, N, M, threads, dtype):
    K = 131
    a = rng.standard_normal((M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    before = bigmodel.get_num_threads()
    try:
        bigmodel.set_num_threads(threads)
        got = ops.gemm(a, b, c.copy(), alpha=0.75, beta=1.25)
    finally:
        bigmodel.set_num_threads(before)
    assert rel_err(got, reference.gemm(a, b, c, alpha=0.75, beta=1.25)) <= TOL[dtype]


# Long K with a small C (M <= 96, N up to one column panel) runs the direct driver: no packing,
# the kernel reads A (row-major, or transposed: Gram products X^T Y) and B's rows in place, K in
# fixed chunks whose partial products are summed in order. Shapes: one chunk and many (the chunk
# is 256-8192 rows, by M + N), tiles with edge rows and narrow vectors, B and C as strided views.
@pytest.mark.parametrize("shape", [(20, 20, 100003), (1, 5, 4099), (7, 33, 2048), (96, 64, 3001),
                                   (13, 16, 70001), (50, 17, 9999), (5, 24, 1024)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemm_long_k_small_c(isa, rng, shape, trans_a, dtype):
    M, N, K = shape
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    wide = rng.standard_normal((K, N + 3)).astype(dtype)
    b = wide[:, 1:N + 1]  # rows N + 3 apart
    c = rng.standard_normal((M, N)).astype(dtype)
    out = np.zeros((M, 2 * N), dtype)[:, ::2]
    ops.gemm(a, b, c, alpha=0.5, beta=-1.5, trans_a=trans_a, out=out)
    ref = reference.gemm(a, b, c, alpha=0.5, beta=-1.5, trans_a=trans_a)
    assert rel_err(out, ref) <= 3 * TOL[dtype]
    # The chunks are fixed by the shape, so the bits do not depend on the thread count.
    before = bigmodel.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            bigmodel.set_num_threads(threads)
            results.append(ops.gemm(a, b, trans_a=trans_a))
    finally:
        bigmodel.set_num_threads(before)
    assert np.array_equal(results[0], results[1])


@pytest.mark.parametrize("K", [1500, 50000])  # one chunk (the kernel stores), many (summed)
def test_gemm_long_k_beta_zero_ignores_nan_in_out(rng, K):
    x = rng.standard_normal((K, 12)).astype(np.float32)
    out = np.full((12, 12), np.nan, np.float32)
    ops.gemm(x, x, trans_a=True, out=out)
    assert rel_err(out, reference.matmul(x.T, x)) <= 1e-5


# bf16 panels are 32 columns (two vectors of 16): N % 32 in 1-16 runs one vector.
@pytest.mark.parametrize("N", [16, 48, 80, 113, 300])
@pytest.mark.parametrize("M", [37, 200])
def test_bf16_narrow_last_panel(rng, N, M):
    if not _core.bf16_available():
        pytest.skip("CPU has no AVX512_BF16")
    K = 130
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    got = ops.gemm(a.T.copy(), b, trans_a=True, precision="bf16")  # packed (k-major) A as well
    ar = (_core.bf16_round(a).astype(np.uint32) << 16).view(np.float32)
    br = (_core.bf16_round(b).astype(np.uint32) << 16).view(np.float32)
    assert rel_err(got, reference.matmul(ar, br)) <= 1e-5
    got = ops.gemm(a, b, precision="bf16")
    assert rel_err(got, reference.matmul(ar, br)) <= 1e-5


# One output row or column runs the matrix-vector path (csrc/cpu/gemv.h): row dots in groups of
# four, column-major sweeps in chunks, k in blocks of 16384 (partials in parallel for 1-3 rows).
GEMV_SHAPES = [(1, 1, 1), (1, 9, 1), (1, 5, 37), (1, 784, 128), (2, 33, 1), (7, 300, 1),
               (37, 4099, 1), (1, 40001, 3), (3, 40001, 1), (1, 20000, 17), (1, 7, 5000)]


@pytest.mark.parametrize("shape", GEMV_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_gemv_shapes(isa, rng, shape, trans, dtype):
    M, K, N = shape
    ta, tb = trans
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(dtype)
    c = rng.standard_normal((M, N)).astype(dtype)
    A, B = (a.T if ta else a), (b.T if tb else b)
    got = ops.gemm(a, b, c.copy(), alpha=0.7, beta=-0.3, trans_a=ta, trans_b=tb)
    assert rel_err(got, 0.7 * reference.matmul(A, B) - 0.3 * c) <= TOL[dtype]
    assert rel_err(ops.matmul(A[:, ::-1], B[::-1]), reference.matmul(A, B)) <= TOL[dtype]


@pytest.mark.parametrize("shape", [(1, 50001, 1), (2, 50001, 1), (9, 3000, 1), (1, 3000, 4099)],
                         ids=lambda s: "x".join(map(str, s)))
def test_gemv_bits_do_not_depend_on_threads(rng, shape):
    M, K, N = shape
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    before = bigmodel.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            bigmodel.set_num_threads(n)
            outs.append(ops.matmul(a, b))
    finally:
        bigmodel.set_num_threads(before)
    assert all(np.array_equal(outs[0], o) for o in outs[1:])
    assert rel_err(outs[0], reference.matmul(a, b)) <= TOL[np.float32]


def test_misaligned_arrays_reach_the_kernels_aligned(rng):
    """A float view at an odd byte offset (legal in NumPy, undefined behaviour as a float* in
    C++) is copied to an aligned buffer on the way in and, as an output, copied back."""
    def misaligned(x):
        buf = np.zeros(x.nbytes + 1, np.uint8)
        out = buf[1:].view(x.dtype).reshape(x.shape)
        out[...] = x
        assert not out.flags.aligned
        return out
    a = rng.standard_normal((13, 7)).astype(np.float32)
    b = rng.standard_normal((7, 5)).astype(np.float32)
    out = misaligned(np.zeros((13, 5), np.float32))
    got = ops.matmul(misaligned(a), misaligned(b), out=out)
    assert got is out and rel_err(out, reference.matmul(a, b)) <= TOL[np.float32]
    w = misaligned(rng.standard_normal(11).astype(np.float32))
    w0, g = w.copy(), rng.standard_normal(11).astype(np.float32)
    ops.sgd_update(w, g, w, lr=0.5)
    np.testing.assert_allclose(w, w0 - 0.5 * g, rtol=1e-6)


def test_strided_and_negative_views_without_copy(rng):
    big = rng.standard_normal((90, 120)).astype(np.float32)
    a = big[::3, 5:65:2]          # (30, 30) with row stride 360, col stride 2
    b = big[::-2, ::-3][:30, :17]  # negative strides
    assert not a.flags.c_contiguous and b.strides[0] < 0
    assert rel_err(ops.matmul(a, b), reference.matmul(a, b)) <= 1e-5
    # Fortran-ordered inputs are transposed views of C-ordered ones.
    af, bf = np.asfortranarray(a), np.asfortranarray(b)
    assert rel_err(ops.matmul(af, bf), reference.matmul(a, b)) <= 1e-5


def test_strided_out_and_in_place_beta(rng):
    a = rng.standard_normal((20, 30)).astype(np.float32)
    b = rng.standard_normal((30, 40)).astype(np.float32)
    store = rng.standard_normal((40, 80)).astype(np.float32)
    out = store.T[::2, :20].T      # (20, 40), non-contiguous
    c0 = out.copy()
    res = ops.gemm(a, b, out, alpha=2.0, beta=0.5, out=out)
    assert res is out
    assert rel_err(out, reference.gemm(a, b, c0, alpha=2.0, beta=0.5)) <= 1e-5


def test_beta_zero_ignores_nan_in_out(rng):
    a = rng.standard_normal((8, 9)).astype(np.float32)
    b = rng.standard_normal((9, 10)).astype(np.float32)
    out = np.full((8, 10), np.nan, np.float32)
    ops.gemm(a, b, out=out)
    assert np.isfinite(out).all()
    assert rel_err(out, reference.matmul(a, b)) <= 1e-5


def test_out_aliasing_an_input(rng):
    a = rng.standard_normal((16, 16)).astype(np.float32)
    b = rng.standard_normal((16, 16)).astype(np.float32)
    ref = reference.matmul(a, b)
    ops.matmul(a, b, out=a)        # written only after the product is complete
    assert rel_err(a, ref) <= 1e-5


@pytest.mark.parametrize("shapes", [((4, 13, 7), (4, 7, 11)), ((1, 13, 7), (5, 7, 11)),
                                    ((13, 7), (6, 7, 11)), ((3, 13, 7), (7, 11)),
                                    ((64, 2, 3), (64, 3, 5))])
def test_batched_broadcast(isa, rng, shapes):
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    got = ops.matmul(a, b)
    ref = reference.matmul(a, b)
    assert got.shape == ref.shape
    assert rel_err(got, ref) <= 1e-5


def test_batched_with_c_broadcast(rng):
    a = rng.standard_normal((3, 5, 6))
    b = rng.standard_normal((3, 6, 4))
    c = rng.standard_normal((4,))   # broadcasts along batch and rows, like a bias
    got = ops.gemm(a, b, c, beta=1.0)
    assert rel_err(got, reference.gemm(a, b, c, beta=1.0)) <= 1e-12


@pytest.mark.parametrize("shape", [(0, 5, 3), (4, 0, 3), (4, 5, 0)])
def test_zero_size(rng, shape):
    M, N, K = shape
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    got = ops.matmul(a, b)
    assert got.shape == (M, N)
    np.testing.assert_array_equal(got, np.zeros((M, N), np.float32))
    c = rng.standard_normal((M, N)).astype(np.float32)
    np.testing.assert_allclose(ops.gemm(a, b, c, beta=2.0), 2.0 * c, rtol=1e-6)


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True), (True, True)])
# (40, 700, 1101): small-M order with a 3 MB B (its next panels prefetched inside the kernel)
# and a 4-row last panel; (7, ...) an 8-row one. M > 96 with N <= 64 (row-major A): A read as
# float and converted inside the 6 x 64 kernel ((97, 45, 1537): odd K, two column panels;
# (150, 30, 77): one panel; (111, 64, 200): a 3-row last panel).
@pytest.mark.parametrize("shape", [(1, 1, 2), (7, 33, 65), (64, 784, 128), (130, 260, 1001),
                                   (97, 45, 1537), (100, 1500, 65), (40, 700, 1101),
                                   (150, 30, 77), (111, 64, 200)])
def test_bf16_matches_rounded_reference(rng, shape, trans):
    if not _core.bf16_available():
        pytest.skip("CPU has no AVX512_BF16")
    M, N, K = shape
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    ta, tb = trans
    got = ops.gemm(a.T.copy() if ta else a, b.T.copy() if tb else b, trans_a=ta, trans_b=tb,
                   precision="bf16")
    # Against the product of the bf16-rounded inputs the only error is fp32 accumulation.
    ar = (_core.bf16_round(a).astype(np.uint32) << 16).view(np.float32)
    br = (_core.bf16_round(b).astype(np.uint32) << 16).view(np.float32)
    assert rel_err(got, reference.matmul(ar, br)) <= 1e-5
    assert rel_err(got, reference.matmul(a, b)) <= 1e-2


@pytest.mark.parametrize("M", [150, 40])
def test_bf16_reads_nothing_past_the_row(rng, M):
    """A row-major A view with an odd K whose next column is NaN: the (k, k+1) pairs must not
    pick up the element past the row (0 x NaN would poison the result)."""
    if not _core.bf16_available():
        pytest.skip("CPU has no AVX512_BF16")
    K, N = 77, 40
    full = rng.standard_normal((M, K + 3)).astype(np.float32)
    full[:, K:] = np.nan
    a = full[:, :K]
    b = rng.standard_normal((K, N)).astype(np.float32)
    got = ops.gemm(a, b, precision="bf16")
    ar = (_core.bf16_round(np.ascontiguousarray(a)).astype(np.uint32) << 16).view(np.float32)
    br = (_core.bf16_round(b).astype(np.uint32) << 16).view(np.float32)
    assert np.isfinite(got).all()
    assert rel_err(got, reference.matmul(ar, br)) <= 1e-5


def test_bf16_rounding_is_nearest_even():
    x = np.array([1.0, 1.00390625, 1.005859375, -2.5, np.inf, -np.inf], np.float32)
    bits = _core.bf16_round(x)
    back = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(back, [1.0, 1.0, 1.0078125, -2.5, np.inf, -np.inf])
    assert np.isnan((_core.bf16_round(np.array([np.nan], np.float32)).astype(np.uint32) << 16)
                    .view(np.float32)).all()


def test_threads_setting_and_concurrent_callers(rng):
    a = rng.standard_normal((150, 170)).astype(np.float32)
    b = rng.standard_normal((170, 190)).astype(np.float32)
    serial = ops.matmul(a, b)
    before = bigmodel.get_num_threads()
    results, errors = [None] * 8, []

    def work(i):
        try:
            for _ in range(5):
                results[i] = ops.matmul(a, b)
                if i == 0:
                    bigmodel.set_num_threads(1 + (_ % 2))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bigmodel.set_num_threads(before)
    assert not errors
    for r in results:
        assert rel_err(r, serial) <= 1e-6


def test_every_isa_agrees(rng):
    a = rng.standard_normal((77, 91)).astype(np.float32)
    b = rng.standard_normal((91, 55)).astype(np.float32)
    before = _core.isa()
    outs = []
    try:
        from conftest import ISAS
        for name in ISAS:
            _core.set_isa(name)
            outs.append(ops.matmul(a, b))
    finally:
        _core.set_isa(before)
    for o in outs[1:]:
        assert rel_err(o, outs[0]) <= 1e-6


def test_isa_env_forces_lower_path():
    code = "import bigmodel; print(bigmodel.info()['isa'])"
    for want in ("portable", "avx2"):
        from conftest import ISAS
        if want not in ISAS:
            continue
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**__import__("os").environ, "BIGMODEL_ISA": want}, check=True)
        assert out.stdout.strip() == want


# ---- bad input --------------------------------------------------------------------------------

def test_bad_inner_dimensions():
    with pytest.raises(ValueError, match=r"inner dimensions.*a.shape=\(3, 4\).*b.shape=\(5, 6\)"):
        ops.matmul(np.ones((3, 4), np.float32), np.ones((5, 6), np.float32))


def test_bad_ndim():
    with pytest.raises(ValueError, match=r"a must be 2-D or 3-D.*\(3,\)"):
        ops.matmul(np.ones(3, np.float32), np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="b must be 2-D or 3-D"):
        ops.matmul(np.ones((3, 2), np.float32), np.ones((1, 1, 2, 2), np.float32))


@pytest.mark.parametrize("dtype", [np.int32, np.int64, object, bool, np.float16, np.complex64])
def test_bad_dtype(dtype):
    a = np.ones((3, 3), dtype=dtype)
    with pytest.raises(TypeError, match="a must be float32 or float64"):
        ops.matmul(a, np.ones((3, 3), np.float32))


def test_mixed_dtypes():
    with pytest.raises(TypeError, match="same dtype"):
        ops.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float64))


def test_bad_out():
    a, b = np.ones((3, 4), np.float32), np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"out.shape=\(3, 4\), expected \(3, 5\)"):
        ops.matmul(a, b, out=np.empty((3, 4), np.float32))
    with pytest.raises(TypeError, match="out must have dtype float32"):
        ops.matmul(a, b, out=np.empty((3, 5), np.float64))
    ro = np.empty((3, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ops.matmul(a, b, out=ro)


def test_bad_batch_and_c():
    with pytest.raises(ValueError, match="batch dimensions do not broadcast"):
        ops.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"c.shape=\(2, 2\) does not broadcast"):
        ops.gemm(np.ones((3, 4), np.float32), np.ones((4, 5), np.float32),
                 np.ones((2, 2), np.float32), beta=1.0)


def test_bad_non_array_and_precision():
    with pytest.raises(TypeError, match="a must be a numpy.ndarray"):
        ops.matmul([[1.0]], np.ones((1, 1), np.float32))
    with pytest.raises(ValueError, match="precision"):
        ops.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), precision="fp8")
    with pytest.raises(TypeError, match="alpha"):
        ops.gemm(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), alpha="2")


def test_native_checks_again():
    # The binding re-checks what ops/ validated: called directly with bad shapes it raises.
    with pytest.raises(ValueError, match="inner dimensions"):
        _core.gemm(np.ones((1, 2, 3), np.float32), np.ones((1, 4, 2), np.float32),
                   np.ones((1, 2, 2), np.float32))
    with pytest.raises(TypeError):
        _core.gemm(np.ones((1, 2, 3), np.int32), np.ones((1, 3, 2), np.int32),
                   np.ones((1, 2, 2), np.int32))


def test_set_num_threads_validation():
    with pytest.raises(ValueError):
        bigmodel.set_num_threads(0)
    with pytest.raises(TypeError):
        bigmodel.set_num_threads(1.5)


def test_info_fields():
    info = bigmodel.info()
    assert info["isa"] in ("avx512", "avx2", "portable")
    assert info["threads"] >= 1
    assert isinstance(info["cuda_built"], bool) and isinstance(info["gpu_present"], bool)


def test_numpy_mixed_with_cupy_is_rejected():
    class FakeCupyArray:  # stands in for cupy.ndarray: detection is by module, before any import
        __module__ = "cupy._core.core"
        dtype = np.dtype(np.float32)
        ndim = 2
        shape = (2, 2)
    with pytest.raises(ValueError, match="different devices: a on CPU.*b on GPU"):
        ops.matmul(np.ones((2, 2), np.float32), FakeCupyArray())


@pytest.mark.parametrize("trans", [(False, False), (True, False), (False, True)])
# Even K at small M: A is read in place; (40, 700, 1100): B packed by the vector interleave.
@pytest.mark.parametrize("shape", [(1, 1, 1), (37, 29, 65), (70, 300, 1001), (3, 5, 4),
                                   (40, 700, 1100), (200, 64, 300)])
def test_bfloat16_input_arrays(rng, shape, trans):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    if not _core.bf16_available():
        pytest.skip("CPU has no AVX512_BF16")
    M, N, K = shape
    a = rng.standard_normal((M, K)).astype(ml_dtypes.bfloat16)
    b = rng.standard_normal((K, N)).astype(ml_dtypes.bfloat16)
    ta, tb = trans
    got = ops.gemm(a.T.copy() if ta else a, b.T.copy() if tb else b, trans_a=ta, trans_b=tb)
    assert got.dtype == np.float32
    assert rel_err(got, reference.matmul(a.astype(np.float64), b.astype(np.float64))) <= 1e-5
    batched = ops.matmul(np.stack([a, a]), b)
    assert batched.shape == (2, M, N) and rel_err(batched[1], got if not (ta or tb) else
                                                   reference.matmul(a.astype(np.float64),
                                                                    b.astype(np.float64))) <= 1e-5
