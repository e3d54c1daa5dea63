"""Truncated SVD (randomized and block Lanczos) and the CSR SpMM kernel under it, against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference

sp = pytest.importorskip("scipy.sparse")

TOL = {np.float32: 2e-5, np.float64: 1e-12}


# ---- SpMM ---------------------------------------------------------------------------------------

def _random_csr(rng, m, n, density, dtype, index_dtype=np.int32, empty_rows=(0,)):
    a = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    a = a.tolil()
    for r in empty_rows:
        if r < m:
            a[r, :] = 0
    a = a.tocsr().astype(dtype)
    a.eliminate_zeros()
    a.indptr = a.indptr.astype(index_dtype)
    a.indices = a.indices.astype(index_dtype)
    return a


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 8, 13, 17, 31, 60, 64, 67, 130])
def test_spmm_csr_matches_reference(isa, rng, dtype, k):
    a = _random_csr(rng, 37, 29, 0.15, dtype, empty_rows=(0, 7, 36))
    x = rng.standard_normal((29, k)).astype(dtype)
    xt = rng.standard_normal((37, k)).astype(dtype)
    tol = TOL[dtype] * 10
    np.testing.assert_allclose(ops.spmm_csr(a, x), reference.spmm_csr(a, x), rtol=tol, atol=tol)
    np.testing.assert_allclose(ops.spmm_csr(a, xt, transpose=True),
                               reference.spmm_csr(a, xt, transpose=True), rtol=tol, atol=tol)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (50, 1), (257, 131), (3000, 70)])
def test_spmm_csr_shapes_formats(isa, rng, shape, index_dtype):
    a = _random_csr(rng, *shape, 0.05, np.float64, index_dtype, empty_rows=(0, 3))
    for fmt in (a, a.tocsc()):
        x = rng.standard_normal((shape[1], 19))
        xt = rng.standard_normal((shape[0], 19))
        np.testing.assert_allclose(ops.spmm_csr(fmt, x), reference.spmm_csr(a, x), atol=1e-12)
        np.testing.assert_allclose(ops.spmm_csr(fmt, xt, transpose=True),
                                   reference.spmm_csr(a, xt, transpose=True), atol=1e-12)


def test_spmm_csr_views_and_duplicates(rng):
    # Unsorted indices with duplicates (summed); x a column view of a wider array; out a view.
    a = sp.csr_matrix((np.array([1.0, 2.0, 3.0, 4.0]), np.array([2, 0, 2, 1]),
                       np.array([0, 3, 3, 4])), shape=(3, 3))
    big = rng.standard_normal((3, 20))
    x = big[:, 3:8]
    out_big = np.full((3, 9), 7.0)
    ops.spmm_csr(a, x, out=out_big[:, 2:7])
    np.testing.assert_allclose(out_big[:, 2:7], a.toarray() @ x, atol=1e-12)
    assert (out_big[:, :2] == 7).all() and (out_big[:, 7:] == 7).all()  # nothing past the view


def test_spmm_csr_bad_input(rng):
    a = _random_csr(rng, 10, 8, 0.3, np.float64)
    with pytest.raises(ValueError, match="x has"):
        ops.spmm_csr(a, np.ones((9, 2)))
    with pytest.raises(TypeError, match="CSR/CSC"):
        ops.spmm_csr(a.tocoo(), np.ones((8, 2)))
    with pytest.raises(TypeError, match="dense"):
        ops.spmm_csr(np.ones((10, 8)), np.ones((8, 2)))
    bad = a.copy()
    bad.indices = bad.indices.copy()
    bad.indices[0] = 99  # out of range: must raise, not crash
    with pytest.raises(ValueError, match="outside"):
        ops.spmm_csr(bad, np.ones((8, 2)))
    with pytest.raises(ValueError, match="outside"):
        ops.spmm_csr(bad, np.ones((10, 2)), transpose=True)
    from bigmodel import _core
    ip = a.indptr.copy()
    ip[-1] = 10 ** 6
    with pytest.raises(ValueError, match="indptr"):
        _core.spmm_csr(ip, a.indices, a.data, np.ones((8, 2)), np.empty((10, 2)), 10, 8)
    ip = a.indptr.copy()
    ip[3], ip[4] = ip[4] + 1, ip[3]
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.spmm_csr(ip, a.indices, a.data, np.ones((8, 2)), np.empty((10, 2)), 10, 8)


# ---- truncated SVD ------------------------------------------------------------------------------

def _with_spectrum(rng, m, n, s):
    u = np.linalg.qr(rng.standard_normal((m, len(s))))[0]
    v = np.linalg.qr(rng.standard_normal((n, len(s))))[0]
    return (u * s) @ v.T


def _sin_theta(u, u_ref):
    """Largest principal-angle sine between span(u) and span(u_ref) (orthonormal columns)."""
    u = np.asarray(u, np.float64)
    return float(np.linalg.norm(u_ref - u @ (u.T @ u_ref), 2))


def _check(a, k, dtype, method, s_tol, angle_tol, **kw):
    a_t = a.astype(dtype)
    u, s, vt = ops.truncated_svd(a_t, k, method=method, random_state=0, **kw)
    ur, sr, vtr = reference.truncated_svd(a, k)
    assert u.shape == (a.shape[0], k) and s.shape == (k,) and vt.shape == (k, a.shape[1])
    assert u.dtype == dtype and s.dtype == dtype and vt.dtype == dtype
    assert np.all(np.diff(s.astype(np.float64)) <= 1e-6 * s[0])  # descending
    err = np.max(np.abs(s - sr) / sr[0])
    assert err <= s_tol, f"sigma rel err {err:.2e} > {s_tol:.0e}"
    if angle_tol is not None:
        assert _sin_theta(u, ur) <= angle_tol and _sin_theta(vt.T, vtr.T) <= angle_tol
    # orthonormal factors
    eye_tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, np.eye(k), atol=eye_tol)
    return u, s, vt, ur, sr, vtr


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("method", ["randomized", "lanczos"])
@pytest.mark.parametrize("shape", [(200, 120), (90, 260)], ids=["tall", "wide"])
def test_truncated_svd_fast_decay(rng, dtype, method, shape):
    s = 0.7 ** np.arange(min(shape))
    a = _with_spectrum(rng, *shape, s)
    u, s_, vt, ur, sr, vtr = _check(a, 10, dtype, method, s_tol=1e-5 if dtype == np.float32
                                    else 1e-10, angle_tol=1e-3 if dtype == np.float32 else 1e-7)
    # fixed signs: same as the reference's convention, so the vectors themselves match
    np.testing.assert_allclose(u[:, :5], ur[:, :5], atol=1e-3 if dtype == np.float32 else 1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_svd_slow_decay(rng, dtype):
    a = _with_spectrum(rng, 300, 200, 1.0 / np.sqrt(1 + np.arange(200)))
    # randomized with sklearn's defaults: accurate to a few 1e-2 on a flat spectrum (as sklearn)
    _check(a, 10, dtype, "randomized", s_tol=5e-2, angle_tol=None)
    # block Lanczos: machine precision in sigma
    _check(a, 10, dtype, "lanczos", s_tol=1e-5 if dtype == np.float32 else 1e-11, angle_tol=None)


def test_truncated_svd_lanczos_machine_precision(rng):
    s = np.concatenate([np.linspace(10, 5, 20), 4.0 / (1 + np.arange(180)) ** 0.3])
    a = _with_spectrum(rng, 400, 200, s)
    _check(a, 20, np.float64, "lanczos", s_tol=1e-13, angle_tol=1e-8)


@pytest.mark.parametrize("method", ["randomized", "lanczos"])
def test_truncated_svd_exact_low_rank(rng, method):
    s = np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    a = _with_spectrum(rng, 120, 80, s)  # rank 5, k + p = 18 > rank: rank-deficient blocks
    u, s_, vt = ops.truncated_svd(a, 8, method=method, random_state=1)
    np.testing.assert_allclose(s_[:5], s, rtol=1e-12)
    assert np.all(np.abs(s_[5:]) < 1e-12)
    np.testing.assert_allclose((u[:, :5] * s_[:5]) @ vt[:5], a, atol=1e-12)


@pytest.mark.parametrize("method", ["randomized", "lanczos"])
def test_truncated_svd_k_extremes(rng, method):
    a = _with_spectrum(rng, 60, 40, 0.8 ** np.arange(40))
    _check(a, 1, np.float64, method, s_tol=1e-12, angle_tol=1e-6)
    _check(a, 39, np.float64, method, s_tol=1e-12, angle_tol=None)


@pytest.mark.parametrize("method", ["randomized", "lanczos"])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_truncated_svd_sparse(rng, method, fmt, dtype):
    a = _random_csr(rng, 400, 150, 0.05, np.float64, empty_rows=(0, 10, 11, 399))
    a = sp.csr_matrix(a + a.multiply(_with_spectrum(rng, 400, 150, 3 * 0.5 ** np.arange(150))))
    a = a.asformat(fmt).astype(dtype)
    ur, sr, vtr = reference.truncated_svd(a, 5)
    u, s, vt = ops.truncated_svd(a, 5, method=method, random_state=0)
    # The sparse path runs the same algorithm as the dense one (same random numbers).
    ud, sd, vtd = ops.truncated_svd(a.toarray(), 5, method=method, random_state=0)
    same = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(s, sd, rtol=same)
    np.testing.assert_allclose(u, ud, atol=same * 10)
    tol = {"randomized": 5e-3, "lanczos": 1e-5 if dtype == np.float32 else 1e-10}[method]
    assert np.max(np.abs(s - sr) / sr[0]) <= tol
    assert np.all(np.abs(u[[0, 10, 11, 399]]) < 1e-5)  # empty rows have no left singular mass


def test_truncated_svd_reproducible_and_signs(rng):
    a = _with_spectrum(rng, 150, 100, 0.9 ** np.arange(100))
    r1 = ops.truncated_svd(a, 7, random_state=42)
    r2 = ops.truncated_svd(a, 7, random_state=42)
    r3 = ops.truncated_svd(a, 7, random_state=np.random.default_rng(7))
    for x, y in zip(r1, r2):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(r1[0][:, :3], r3[0][:, :3], atol=1e-6)  # signs fixed, not random
    u = r1[0]
    idx = np.argmax(np.abs(u), axis=0)
    assert np.all(u[idx, np.arange(7)] > 0)


def test_truncated_svd_n_iter_auto_matches_sklearn_rule(rng, monkeypatch):
    from bigmodel.ops import svd as svd_mod
    seen = []
    real = svd_mod._randomized
    monkeypatch.setattr(svd_mod, "_randomized", lambda op, k, p, q, r: seen.append(q) or real(op, k, p, q, r))
    a = rng.standard_normal((120, 100))
    ops.truncated_svd(a, 5)   # 5 < 0.1 * 100 -> 7
    ops.truncated_svd(a, 20)  # else 4
    assert seen == [7, 4]


def test_truncated_svd_bad_input(rng):
    a = rng.standard_normal((20, 10))
    with pytest.raises(ValueError, match="k must"):
        ops.truncated_svd(a, 0)
    with pytest.raises(ValueError, match="k must"):
        ops.truncated_svd(a, 10)
    with pytest.raises(TypeError, match="k must"):
        ops.truncated_svd(a, 2.0)
    bad = a.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.truncated_svd(bad, 2)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="NaN or Inf"):
        ops.truncated_svd(sp.csr_matrix(bad), 2)
    with pytest.raises(TypeError, match="CSR/CSC"):
        ops.truncated_svd(sp.coo_matrix(a), 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.truncated_svd(a.astype(np.int64), 2)
    with pytest.raises(TypeError, match="float32 or float64"):
        ops.truncated_svd(sp.csr_matrix(a.astype(np.complex128)), 2)
    with pytest.raises(ValueError, match="2-D"):
        ops.truncated_svd(np.ones((2, 3, 4)), 1)
    with pytest.raises(TypeError, match="NumPy array"):
        ops.truncated_svd([[1.0, 2.0], [3.0, 4.0]], 1)
    with pytest.raises(ValueError, match="method"):
        ops.truncated_svd(a, 2, method="arpack")
    with pytest.raises(ValueError, match="n_iter"):
        ops.truncated_svd(a, 2, n_iter="fast")
    with pytest.raises(ValueError, match="n_oversamples"):
        ops.truncated_svd(a, 2, n_oversamples=-1)
    with pytest.raises(TypeError, match="random_state"):
        ops.truncated_svd(a, 2, random_state="x")
