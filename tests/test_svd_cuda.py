"""CUDA truncated SVD and CSR SpMM (bigmodel._cuda through bigmodel.ops.truncated_svd /
spmm_csr on CuPy arrays and cupyx.scipy.sparse matrices) against NumPy / SciPy in float64.

Every GPU test is marked `cuda` (skipped with a reason when there is no CUDA module, GPU or CuPy);
cupy is imported inside the tests so collection works on any machine. Tests named `*large*` (also
marked `large`) are GPU-only sizes; the CPU emulator (tools/cuda_emu/run.sh) deselects them.
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference
from bigmodel.ops import _backend

sp = pytest.importorskip("scipy.sparse")

TOL_S = {np.float32: 1e-5, np.float64: 1e-10}       # sigma error / sigma_1, fast-decaying spectra
TOL_ORTH = {np.float32: 1e-4, np.float64: 1e-10}    # |U^T U - I|
TOL_SPMM = {np.float32: 1e-5, np.float64: 1e-12}    # relative to the sum of |terms|
SEED = 0


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


@pytest.fixture
def cpsp(cp):
    return pytest.importorskip("cupyx.scipy.sparse")


# ---- data ---------------------------------------------------------------------------------------

def _with_spectrum(rng, m, n, s):
    u = np.linalg.qr(rng.standard_normal((m, len(s))))[0]
    v = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    return (u * s) @ v.T


def _low_rank_plus_noise(rng, m, n, rank=8, noise=1e-3):
    """Rank-`rank` signal with decaying singular values 10 * 0.6^i plus a small dense noise."""
    s = 10.0 * 0.6 ** np.arange(rank)
    return _with_spectrum(rng, m, n, s) + noise * rng.standard_normal((m, n))


def _skewed_csr(rng, m, n, density, dtype, heavy_rows=(3,), heavy_len=700, empty_rows=(0, 7),
                empty_cols=(1,)):
    """Random CSR with some empty rows and columns and a few long rows (heavy_len <= n entries:
    above 256 a row spans several warps of the merge-path split), sorted int32 indices."""
    a = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    rows = [r for r in heavy_rows if r < m]
    if rows:
        cols = np.concatenate([rng.choice(n, size=min(heavy_len, n), replace=False) for _ in rows])
        rr = np.repeat(rows, min(heavy_len, n))
        a = a + sp.csr_matrix((rng.standard_normal(len(rr)), (rr, cols)), shape=(m, n))
    keep_r, keep_c = np.ones(m), np.ones(n)
    keep_r[[r for r in empty_rows if r < m]] = 0
    keep_c[[c for c in empty_cols if c < n]] = 0
    a = sp.csr_matrix(sp.diags(keep_r) @ a @ sp.diags(keep_c)).astype(dtype)
    a.eliminate_zeros()
    a.sort_indices()
    a.indptr = a.indptr.astype(np.int32)
    a.indices = a.indices.astype(np.int32)
    return a


def _spmm_ref(a, x, transpose=False):
    d = sp.csr_matrix(a).astype(np.float64)
    return np.asarray((d.T if transpose else d) @ np.asarray(x, np.float64))


def _spmm_scale(a, x, transpose=False):
    """Sum of |terms| per output element: the scale a rounding error is relative to."""
    d = abs(sp.csr_matrix(a).astype(np.float64))
    return np.asarray((d.T if transpose else d) @ np.abs(np.asarray(x, np.float64)))


def _assert_spmm_close(got, a, x, transpose, dtype):
    ref = _spmm_ref(a, x, transpose)
    scale = _spmm_scale(a, x, transpose)
    err = np.abs(np.asarray(got, np.float64) - ref)
    assert np.all(err <= TOL_SPMM[dtype] * (scale + 1e-30)), float(np.max(err / (scale + 1e-30)))


def _check_svd(cp, a_host, a_dev, k, dtype, s_tol=None, **kw):
    """Runs ops.truncated_svd on the device input and checks it against LAPACK in float64."""
    u, s, vt = ops.truncated_svd(a_dev, k, random_state=SEED, **kw)
    for x in (u, s, vt):
        assert isinstance(x, cp.ndarray) and x.dtype == dtype
    m, n = a_host.shape
    assert u.shape == (m, k) and s.shape == (k,) and vt.shape == (k, n)
    u, s, vt = cp.asnumpy(u), cp.asnumpy(s), cp.asnumpy(vt)
    dense = a_host.toarray() if sp.issparse(a_host) else a_host
    dense = np.asarray(dense, np.float64)
    s_ref = np.linalg.svd(dense, compute_uv=False)
    assert np.all(np.diff(s.astype(np.float64)) <= 1e-6 * s_ref[0])  # descending
    err = np.max(np.abs(s - s_ref[:k])) / s_ref[0]
    assert err <= (s_tol if s_tol is not None else TOL_S[dtype]), f"sigma err {err:.2e}"
    eye = TOL_ORTH[dtype]
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, np.eye(k), atol=eye)
    np.testing.assert_allclose(vt.astype(np.float64) @ vt.T, np.eye(k), atol=eye)
    # Reconstruction: as good as the best rank-k approximation (Eckart-Young), up to rounding.
    best = np.sqrt(np.sum(s_ref[k:] ** 2))
    rec = np.linalg.norm(dense - (u.astype(np.float64) * s) @ vt)
    assert rec <= best * (1 + 1e-2) + 10 * eye * s_ref[0], (rec, best)
    # Signs: the largest-|.| entry of each column of U is positive (the CPU op's convention).
    idx = np.argmax(np.abs(u), axis=0)
    assert np.all(u[idx, np.arange(k)] > 0)
    return u, s, vt


# ---- binding contract (runs wherever the CUDA module is built) ----------------------------------

def test_cuda_svd_binding_rejects_bad_sizes_before_touching_the_gpu():
    if not _backend.cuda_built():
        pytest.skip("no CUDA module built")
    from bigmodel import _cuda
    good = dict(indptr_ptr=0, indptr_len=5, indices_ptr=0, indices_len=6, data_ptr=0, data_len=6,
                rows=4, cols=3, index_dtype="int32", dtype="float32", x_ptr=0, x_shape=[3, 2],
                ldx=2, y_ptr=0, y_shape=[4, 2], ldy=2, work_ptr=0, work_bytes=1 << 20,
                stream_ptr=0)
    bad = [dict(indptr_len=4), dict(data_len=5), dict(rows=-1), dict(x_shape=[4, 2]),
           dict(y_shape=[4, 3]), dict(ldx=1), dict(ldy=1), dict(x_shape=[3]), dict(work_bytes=8),
           dict()]  # the last: everything right but null pointers
    for change in bad:
        with pytest.raises(ValueError):
            _cuda.spmm_csr(**{**good, **change})
    for change in (dict(index_dtype="int16"), dict(dtype="float16")):
        with pytest.raises(TypeError):
            _cuda.spmm_csr(**{**good, **change})
    tgood = {k: v for k, v in good.items() if not k.startswith(("x_", "y_", "ld"))}
    tgood.update(out_indptr_ptr=0, out_indptr_len=4, out_indices_ptr=0, out_indices_len=6,
                 out_data_ptr=0, out_data_len=6)
    for change in (dict(out_indptr_len=5), dict(out_indices_len=5), dict(out_data_len=7), dict()):
        with pytest.raises(ValueError):
            _cuda.csr_transpose(**{**tgood, **change})
    assert _cuda.spmm_csr_workspace_bytes(100, 1000, 64, "float32") > 0
    assert _cuda.csr_transpose_workspace_bytes(100, 50, 1000, "int32") > 0


# ---- SpMM kernels alone -------------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 7, 32, 33, 64, 65, 130])
def test_spmm_csr_cuda_matches_scipy(cp, cpsp, rng, dtype, k):
    # Rows 3 and 4 hold 400 entries each: carried across warps, and one warp ends row 3 and
    # starts row 4.
    a = _skewed_csr(rng, 120, 400, 0.02, dtype, heavy_rows=(3, 4), heavy_len=400)
    x = rng.standard_normal((400, k)).astype(dtype)
    xt = rng.standard_normal((120, k)).astype(dtype)
    ad = cpsp.csr_matrix(a)
    y = ops.spmm_csr(ad, cp.asarray(x))
    assert isinstance(y, cp.ndarray) and y.dtype == dtype and y.shape == (120, k)
    _assert_spmm_close(cp.asnumpy(y), a, x, False, dtype)
    yt = ops.spmm_csr(ad, cp.asarray(xt), transpose=True)
    assert yt.shape == (400, k)
    _assert_spmm_close(cp.asnumpy(yt), a, xt, True, dtype)
    assert np.all(cp.asnumpy(y)[[0, 7]] == 0)      # empty rows
    assert np.all(cp.asnumpy(yt)[1] == 0)          # empty column


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (257, 131), (600, 40)])
def test_spmm_csr_cuda_shapes_and_csc(cp, cpsp, rng, shape):
    a = _skewed_csr(rng, *shape, 0.05, np.float64, heavy_len=min(shape[1], 300),
                    empty_rows=(0, 3) if shape[0] > 3 else (), empty_cols=())
    x = rng.standard_normal((shape[1], 19))
    xt = rng.standard_normal((shape[0], 19))
    for dev in (cpsp.csr_matrix(a), cpsp.csc_matrix(a.tocsc())):
        _assert_spmm_close(cp.asnumpy(ops.spmm_csr(dev, cp.asarray(x))), a, x, False, np.float64)
        _assert_spmm_close(cp.asnumpy(ops.spmm_csr(dev, cp.asarray(xt), transpose=True)), a, xt,
                           True, np.float64)


@pytest.mark.cuda
def test_spmm_csr_cuda_unsorted_duplicates_views(cp, cpsp, rng):
    # Unsorted indices with duplicates (summed); x a column view of a wider array; out a view.
    data, indices, indptr = [1.0, 2.0, 3.0, 4.0], [2, 0, 2, 1], [0, 3, 3, 4]
    a = sp.csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=(3, 3))
    ad = cpsp.csr_matrix((cp.asarray(np.array(data)), cp.asarray(np.array(indices, np.int32)),
                          cp.asarray(np.array(indptr, np.int32))), shape=(3, 3))
    big = rng.standard_normal((3, 20))
    x = cp.asarray(big)[:, 3:8]
    out_big = cp.full((3, 9), 7.0, cp.float64)
    ops.spmm_csr(ad, x, out=out_big[:, 2:7])
    got = cp.asnumpy(out_big)
    np.testing.assert_allclose(got[:, 2:7], a.toarray() @ big[:, 3:8], atol=1e-12)
    assert (got[:, :2] == 7).all() and (got[:, 7:] == 7).all()  # nothing past the view
    yt = ops.spmm_csr(ad, cp.asarray(big[:, :4]), transpose=True)
    np.testing.assert_allclose(cp.asnumpy(yt), a.toarray().T @ big[:, :4], atol=1e-12)
    # x in float32 is cast to a's dtype, as on the CPU
    y32 = ops.spmm_csr(ad, cp.asarray(big[:, :4].astype(np.float32)))
    assert y32.dtype == cp.float64


@pytest.mark.cuda
def test_spmm_csr_cuda_is_deterministic(cp, cpsp, rng):
    a = _skewed_csr(rng, 200, 300, 0.03, np.float32, heavy_rows=(3, 4, 150), heavy_len=300)
    ad = cpsp.csr_matrix(a)
    x = cp.asarray(rng.standard_normal((300, 40)).astype(np.float32))
    xt = cp.asarray(rng.standard_normal((200, 40)).astype(np.float32))
    for _ in range(2):
        np.testing.assert_array_equal(cp.asnumpy(ops.spmm_csr(ad, x)),
                                      cp.asnumpy(ops.spmm_csr(ad, x)))
        np.testing.assert_array_equal(cp.asnumpy(ops.spmm_csr(ad, xt, transpose=True)),
                                      cp.asnumpy(ops.spmm_csr(ad, xt, transpose=True)))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_spmm_csr_cuda_binding_int64_indices(cp, rng, dtype):
    # cupyx matrices carry int32 indices; the kernels also take int64 (and the transpose kernel).
    from bigmodel import _cuda
    a = _skewed_csr(rng, 70, 50, 0.1, dtype, heavy_len=50)
    ip, ix, d = (cp.asarray(a.indptr.astype(np.int64)), cp.asarray(a.indices.astype(np.int64)),
                 cp.asarray(a.data))
    x = rng.standard_normal((50, 9)).astype(dtype)
    xd, y = cp.asarray(x), cp.empty((70, 9), dtype)
    stream = cp.cuda.get_current_stream().ptr
    nb = _cuda.spmm_csr_workspace_bytes(70, ix.size, 9, np.dtype(dtype).name)
    work = cp.empty(nb, np.uint8)
    args = (ip.data.ptr, ip.size, ix.data.ptr, ix.size, d.data.ptr, d.size, 70, 50, "int64",
            np.dtype(dtype).name)
    _cuda.spmm_csr(*args, xd.data.ptr, [50, 9], 9, y.data.ptr, [70, 9], 9, work.data.ptr,
                   work.size, stream)
    _assert_spmm_close(cp.asnumpy(y), a, x, False, dtype)
    tip, tix, td = cp.empty(51, np.int64), cp.empty(ix.size, np.int64), cp.empty(ix.size, dtype)
    tw = cp.empty(_cuda.csr_transpose_workspace_bytes(70, 50, ix.size, "int64"), np.uint8)
    _cuda.csr_transpose(*args, tip.data.ptr, tip.size, tix.data.ptr, tix.size, td.data.ptr,
                        td.size, tw.data.ptr, tw.size, stream)
    at = a.T.tocsr()  # SciPy's transpose: sorted rows within each column, as our stable sort
    np.testing.assert_array_equal(cp.asnumpy(tip), at.indptr)
    np.testing.assert_array_equal(cp.asnumpy(tix), at.indices)
    np.testing.assert_array_equal(cp.asnumpy(td), at.data)


@pytest.mark.cuda
def test_spmm_csr_cuda_bad_input(cp, cpsp, rng):
    a = _skewed_csr(rng, 10, 8, 0.3, np.float64, heavy_rows=(), empty_rows=(), empty_cols=())
    ad = cpsp.csr_matrix(a)
    with pytest.raises(ValueError, match="x has"):
        ops.spmm_csr(ad, cp.ones((9, 2)))
    with pytest.raises(ValueError, match="different devices"):
        ops.spmm_csr(ad, np.ones((8, 2)))             # cupyx matrix, NumPy x
    with pytest.raises(ValueError, match="different devices"):
        ops.spmm_csr(a, cp.ones((8, 2)))              # SciPy matrix, CuPy x
    with pytest.raises(ValueError, match="different devices"):
        ops.spmm_csr(ad, cp.ones((8, 2)), out=np.empty((10, 2)))
    with pytest.raises(TypeError, match="CSR/CSC"):
        ops.spmm_csr(cpsp.coo_matrix(a), cp.ones((8, 2)))
    with pytest.raises(ValueError, match="out must be"):
        ops.spmm_csr(ad, cp.ones((8, 2)), out=cp.empty((10, 3)))
    bad = cpsp.csr_matrix(a)
    bad.data[2] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.spmm_csr(bad, cp.ones((8, 2)))
    for col in (99, -1):  # out of range: must raise, not read wild memory
        bad = cpsp.csr_matrix(a)
        bad.indices[0] = col
        with pytest.raises(ValueError, match="outside"):
            ops.spmm_csr(bad, cp.ones((8, 2)))
        with pytest.raises(ValueError, match="outside"):
            ops.spmm_csr(bad, cp.ones((10, 2)), transpose=True)
    bad = cpsp.csr_matrix(a)
    bad.indptr[-1] = 10 ** 6
    with pytest.raises(ValueError, match="indptr"):
        ops.spmm_csr(bad, cp.ones((8, 2)))
    bad = cpsp.csr_matrix(a)
    ip = a.indptr.copy()
    ip[3], ip[4] = ip[4] + 1, ip[3]
    bad.indptr[...] = cp.asarray(ip)
    with pytest.raises(ValueError, match="non-decreasing"):
        ops.spmm_csr(bad, cp.ones((8, 2)))


# ---- split-K products (the SVD's Gram matrices and Qᵀ·A on the GPU) -----------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("M,N,K,trans_a", [(5, 7, 800, True), (40, 40, 1000, True),
                                           (300, 9, 512, False), (3, 200, 1030, True)])
def test_svd_split_k_product_matches_numpy(cp, rng, dtype, M, N, K, trans_a):
    from bigmodel.ops.svd import _mm
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((K, N)).astype(dtype)
    ref = (a.T if trans_a else a).astype(np.float64) @ b
    got = cp.asnumpy(_mm(cp.asarray(a), cp.asarray(b), trans_a=trans_a))
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert np.linalg.norm(got - ref) <= tol * np.linalg.norm(ref)
    out_big = cp.zeros((N + 3, M + 2), dtype)  # out a transposed view inside a larger array
    _mm(cp.asarray(a), cp.asarray(b), trans_a=trans_a, out=out_big[1:N + 1, 2:].T)
    got = cp.asnumpy(out_big)
    assert np.linalg.norm(got[1:N + 1, 2:].T - ref) <= tol * np.linalg.norm(ref)
    assert np.all(got[0] == 0) and np.all(got[N + 1:] == 0) and np.all(got[:, :2] == 0)


# ---- truncated SVD, dense -----------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,k", [((300, 120), 6), ((100, 260), 6), ((150, 150), 6),
                                     ((6, 4), 2), ((90, 70), 1), ((40, 30), 29), ((900, 50), 4)],
                         ids=["tall", "wide", "square", "tiny", "k1", "k_near_min", "split_k"])
def test_truncated_svd_cuda_dense(cp, rng, dtype, shape, k):
    m, n = shape
    if k >= min(m, n) - 1:  # k close to min(m, n): a full-rank matrix with a decaying spectrum
        a = _with_spectrum(rng, m, n, 0.8 ** np.arange(min(m, n)))
    else:
        a = _low_rank_plus_noise(rng, m, n, rank=min(8, min(m, n)), noise=1e-4)
    a = a.astype(dtype)
    # tiny / k_near_min: the range finder has (almost) the whole space; else a gap after k.
    s_tol = None if k < 8 or k >= min(m, n) - 2 else 1e-3
    _check_svd(cp, a, cp.asarray(a), k, dtype, s_tol=s_tol)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_svd_cuda_matches_cpu_same_seed(cp, rng, dtype):
    # Same algorithm, same random test matrix (drawn on the host): same result up to rounding.
    a = _with_spectrum(rng, 160, 90, 0.7 ** np.arange(90)).astype(dtype)
    u, s, vt = ops.truncated_svd(a, 5, n_iter=3, random_state=7)
    ug, sg, vtg = (cp.asnumpy(x) for x in ops.truncated_svd(cp.asarray(a), 5, n_iter=3,
                                                              random_state=7))
    tol = 1e-5 if dtype == np.float32 else 1e-11
    np.testing.assert_allclose(sg, s, rtol=tol * 10)
    np.testing.assert_allclose(ug, u, atol=tol * 100)
    np.testing.assert_allclose(vtg, vt, atol=tol * 100)


@pytest.mark.cuda
def test_truncated_svd_cuda_strided_and_fortran_input(cp, rng):
    a = _low_rank_plus_noise(rng, 80, 60)
    ref = np.linalg.svd(a, compute_uv=False)[:4]
    wide = np.zeros((80, 120))
    wide[:, ::2] = a
    for dev in (cp.asarray(np.asfortranarray(a)), cp.asarray(np.ascontiguousarray(a.T)).T,
                cp.asarray(wide)[:, ::2]):
        u, s, vt = ops.truncated_svd(dev, 4, n_iter=2, random_state=0)
        np.testing.assert_allclose(cp.asnumpy(s), ref, rtol=1e-10)


@pytest.mark.cuda
def test_truncated_svd_cuda_exact_low_rank(cp, rng):
    # rank 5 < k + p: rank-deficient blocks take the Gram-eigenvector completion path.
    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    a = _with_spectrum(rng, 90, 60, s)
    u, s_, vt = (cp.asnumpy(x) for x in ops.truncated_svd(cp.asarray(a), 8, n_iter=2,
                                                             random_state=1))
    np.testing.assert_allclose(s_[:5], s, rtol=1e-12)
    assert np.all(np.abs(s_[5:]) < 1e-12)
    np.testing.assert_allclose((u[:, :5] * s_[:5]) @ vt[:5], a, atol=1e-12)


@pytest.mark.cuda
def test_truncated_svd_cuda_lanczos(cp, rng):
    a = _with_spectrum(rng, 120, 80, 1.0 / np.sqrt(1 + np.arange(80)))
    u, s, vt = ops.truncated_svd(cp.asarray(a), 5, method="lanczos", n_iter=4, random_state=0)
    uc, sc, vtc = ops.truncated_svd(a, 5, method="lanczos", n_iter=4, random_state=0)
    np.testing.assert_allclose(cp.asnumpy(s), sc, rtol=1e-10)
    np.testing.assert_allclose(cp.asnumpy(u), uc, atol=1e-8)


@pytest.mark.cuda
@pytest.mark.parametrize("shape", [(200, 130), (110, 240)], ids=["tall", "wide"])
def test_truncated_svd_cuda_lanczos_restarted(cp, cpsp, rng, shape):
    # tol and n_iter='auto': thick restarts (the basis is bounded at 76 < min(m, n) columns),
    # the same steps on the device as on the host, so the CPU's result up to rounding.
    a = _with_spectrum(rng, *shape, 1.0 + 0.2 * np.linspace(1.0, 0.0, min(shape)) ** 3)
    ref = np.linalg.svd(a, compute_uv=False)[:10]
    for dev, host in ((cp.asarray(a), a), (cpsp.csr_matrix(sp.csr_matrix(a)), sp.csr_matrix(a))):
        u, s, vt = (cp.asnumpy(x) for x in ops.truncated_svd(dev, 10, method="lanczos",
                                                               tol=1e-8, random_state=0))
        uc, sc, vtc = ops.truncated_svd(host, 10, method="lanczos", tol=1e-8, random_state=0)
        assert np.max(np.abs(s - ref)) <= 1e-8 * ref[0]
        np.testing.assert_allclose(s, sc, rtol=1e-10)
        np.testing.assert_allclose(u, uc, atol=1e-6)
        np.testing.assert_allclose(vt, vtc, atol=1e-6)


# ---- truncated SVD, sparse ----------------------------------------------------------------------

@pytest.mark.cuda
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_svd_cuda_sparse(cp, cpsp, rng, fmt, dtype):
    a = _skewed_csr(rng, 200, 120, 0.05, np.float64, heavy_rows=(3, 100), heavy_len=110,
                    empty_rows=(0, 10, 11, 199), empty_cols=(1, 60))
    a = sp.csr_matrix(a + a.multiply(_with_spectrum(rng, 200, 120, 3 * 0.5 ** np.arange(120))))
    a = a.astype(dtype)
    dev = cpsp.csr_matrix(a) if fmt == "csr" else cpsp.csc_matrix(a.tocsc())
    u, s, vt = _check_svd(cp, a, dev, 5, dtype, s_tol=5e-3, n_iter=4)
    assert np.all(np.abs(u[[0, 10, 11, 199]]) < 1e-5)   # empty rows: no left singular mass
    assert np.all(np.abs(vt[:, [1, 60]]) < 1e-5)        # empty columns: no right singular mass
    # The CPU op on the same matrix and seed: same algorithm, same random numbers.
    uc, sc, vtc = ops.truncated_svd(a if fmt == "csr" else a.tocsc(), 5, n_iter=4,
                                    random_state=SEED)
    same = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(s, sc, rtol=same)
    np.testing.assert_allclose(u, uc, atol=same * 10)


@pytest.mark.cuda
def test_truncated_svd_cuda_sparse_is_deterministic(cp, cpsp, rng):
    a = cpsp.csr_matrix(_skewed_csr(rng, 150, 70, 0.08, np.float32, heavy_len=70))
    r1 = ops.truncated_svd(a, 4, n_iter=2, random_state=3)
    r2 = ops.truncated_svd(a, 4, n_iter=2, random_state=3)
    for x, y in zip(r1, r2):
        np.testing.assert_array_equal(cp.asnumpy(x), cp.asnumpy(y))


# ---- bad inputs ---------------------------------------------------------------------------------

@pytest.mark.cuda
def test_truncated_svd_cuda_bad_input(cp, cpsp, rng):
    a = rng.standard_normal((20, 10))
    ad = cp.asarray(a)
    with pytest.raises(ValueError, match="k must"):
        ops.truncated_svd(ad, 0)
    with pytest.raises(ValueError, match="k must"):
        ops.truncated_svd(ad, 10)
    bad = a.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.truncated_svd(cp.asarray(bad), 2)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.truncated_svd(cpsp.csr_matrix(sp.csr_matrix(bad)), 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.truncated_svd(cp.asarray(a.astype(np.int64)), 2)
    with pytest.raises(ValueError, match="2-D"):
        ops.truncated_svd(cp.ones((2, 3, 4)), 1)
    with pytest.raises(TypeError, match="CSR/CSC"):
        ops.truncated_svd(cpsp.coo_matrix(sp.csr_matrix(a)), 2)
    csr = cpsp.csr_matrix(sp.csr_matrix(a))
    csr.indices[5] = 10  # == cols: out of range
    with pytest.raises(ValueError, match="outside"):
        ops.truncated_svd(csr, 2)


@pytest.mark.cuda
def test_truncated_svd_cuda_without_usable_gpu_is_a_clear_error(cp, cpsp, rng, monkeypatch):
    a = rng.standard_normal((20, 10))
    dev, sdev = cp.asarray(a), cpsp.csr_matrix(sp.csr_matrix(a))
    monkeypatch.setattr(_backend, "cuda_available", lambda: False)
    for x in (dev, sdev):
        with pytest.raises(RuntimeError, match="no GPU"):
            ops.truncated_svd(x, 2)
    with pytest.raises(RuntimeError, match="no GPU"):
        ops.spmm_csr(sdev, cp.ones((10, 2)))


# ---- GPU-only sizes (deselected in the emulator) ------------------------------------------------

@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_svd_cuda_dense_large(cp, rng, dtype):
    m, n, k = 3000, 1200, 40
    a = (_with_spectrum(rng, m, n, 1.0 + 20.0 * 0.9 ** np.arange(60))
         + 1e-3 * rng.standard_normal((m, n))).astype(dtype)
    _check_svd(cp, a, cp.asarray(a), k, dtype, s_tol=1e-4 if dtype == np.float32 else 1e-8)


@pytest.mark.cuda
@pytest.mark.large
def test_truncated_svd_cuda_sparse_large(cp, cpsp, rng):
    a = _skewed_csr(rng, 10000, 2000, 3e-3, np.float32, heavy_rows=(5, 6, 7), heavy_len=2000,
                    empty_rows=tuple(range(0, 10000, 97)), empty_cols=tuple(range(0, 2000, 31)))
    u, s, vt = ops.truncated_svd(cpsp.csr_matrix(a), 20, random_state=0)
    uc, sc, vtc = ops.truncated_svd(a, 20, random_state=0)
    np.testing.assert_allclose(cp.asnumpy(s), sc, rtol=1e-3)
    s_ref = np.linalg.svd(a.toarray().astype(np.float64), compute_uv=False)[:20]
    assert np.max(np.abs(cp.asnumpy(s) - s_ref)) / s_ref[0] <= 5e-2  # flat spectrum, as the CPU


@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("k", [64, 200])
def test_spmm_csr_cuda_large(cp, cpsp, rng, k):
    a = _skewed_csr(rng, 30000, 5000, 1e-3, np.float32, heavy_rows=(11, 12), heavy_len=5000,
                    empty_rows=tuple(range(0, 30000, 53)), empty_cols=tuple(range(0, 5000, 17)))
    ad = cpsp.csr_matrix(a)
    x = rng.standard_normal((5000, k)).astype(np.float32)
    xt = rng.standard_normal((30000, k)).astype(np.float32)
    _assert_spmm_close(cp.asnumpy(ops.spmm_csr(ad, cp.asarray(x))), a, x, False, np.float32)
    _assert_spmm_close(cp.asnumpy(ops.spmm_csr(ad, cp.asarray(xt), transpose=True)), a, xt, True,
                       np.float32)
