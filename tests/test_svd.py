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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5, 13, 30, 33])
def test_spmm_csr_ignores_memory_past_the_view(isa, rng, dtype, k):
    # The AVX-512 forward kernel reads whole vectors of x's rows, past column k into what
    # follows (padding, or the next row); NaN there must not reach the result.
    a = _random_csr(rng, 41, 23, 0.3, dtype, empty_rows=(2,))
    big = np.full((23, k + 40), np.nan, dtype)
    big[:, 7:7 + k] = rng.standard_normal((23, k))
    x = big[:, 7:7 + k]
    np.testing.assert_allclose(ops.spmm_csr(a, x), reference.spmm_csr(a, x),
                               rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    xt = np.full((41, k + 3), np.nan, dtype)
    xt[:, :k] = rng.standard_normal((41, k))
    out = np.full((23, k + 5), np.nan, dtype)
    ops.spmm_csr(a, xt[:, :k], transpose=True, out=out[:, 1:1 + k])
    np.testing.assert_allclose(out[:, 1:1 + k], reference.spmm_csr(a, xt[:, :k], transpose=True),
                               rtol=TOL[dtype] * 10, atol=TOL[dtype] * 10)
    assert np.isnan(out[:, 0]).all() and np.isnan(out[:, 1 + k:]).all()


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


# ---- restarted Lanczos (tol) ---------------------------------------------------------------------
# The claim (svd.py, _lanczos): with tol, every returned σ_i is within tol * σ1 of the true σ_i,
# and the top-k subspaces are then within sin Θ <= sqrt(k) * tol * σ1² / (σ_k² - σ_{k+1}²)
# (Davis-Kahan on AᵀA: each Ritz pair's residual is <= tol * σ1 * σ_i <= tol * σ1²). float32 adds
# its rounding floor.

_AUTO_TOL = {np.float32: 1e-5, np.float64: 1e-10}
_FLOOR = {np.float32: (2e-6, 2e-4), np.float64: (1e-14, 1e-10)}  # (σ, angle) from rounding


def _lanczos_stats(monkeypatch):
    from bigmodel.ops import svd as svd_mod
    stats = []
    real = svd_mod._lanczos

    def spy(*args):
        stats.append({})
        return real(*args, stats=stats[-1])
    monkeypatch.setattr(svd_mod, "_lanczos", spy)
    return stats


def _cap(k, p=10):
    """The basis bound for n_iter='auto': 3 * keep + 2 * b, keep = k + max(p, 0.8 k)."""
    from bigmodel.ops import svd as svd_mod
    return 3 * (k + max(p, (4 * k) // 5)) + 2 * svd_mod._lanczos_block(k, p)


def _check_tol(a, k, dtype, tol, **kw):
    """ops vs the float64 SVD of a (dense or sparse) at the accuracy claimed for tol."""
    dense = a.toarray() if sp.issparse(a) else a
    u_ref, s_ref, vt_ref = np.linalg.svd(np.asarray(dense, np.float64), full_matrices=False)
    u, s, vt = ops.truncated_svd(a.astype(dtype), k, method="lanczos", tol=tol, random_state=0,
                                 **kw)
    assert u.shape == (a.shape[0], k) and s.shape == (k,) and vt.shape == (k, a.shape[1])
    assert u.dtype == dtype and s.dtype == dtype and vt.dtype == dtype
    eff = _AUTO_TOL[dtype] if tol is None else tol
    s_floor, angle_floor = _FLOOR[dtype]
    err = np.max(np.abs(s.astype(np.float64) - s_ref[:k])) / s_ref[0]
    assert err <= max(eff, s_floor), f"sigma rel err {err:.2e} > tol {eff:.0e}"
    assert np.all(np.diff(s.astype(np.float64)) <= 1e-6 * s[0])
    gap = (s_ref[k - 1] ** 2 - (s_ref[k] ** 2 if k < len(s_ref) else 0.0)) / s_ref[0] ** 2
    angle = max(np.sqrt(k) * eff / gap, angle_floor)
    if angle < 0.5:
        assert _sin_theta(u, u_ref[:, :k]) <= angle
        assert _sin_theta(vt.T, vt_ref[:k].T) <= angle
    eye_tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(u.T.astype(np.float64) @ u, np.eye(k), atol=eye_tol)
    np.testing.assert_allclose(vt.astype(np.float64) @ vt.T, np.eye(k), atol=eye_tol)
    idx = np.argmax(np.abs(u), axis=0)
    assert np.all(u[idx, np.arange(k)] > 0)  # the sign rule
    return s, s_ref


_SPECTRA = {
    "fast": lambda n: 0.7 ** np.arange(n),
    "slow": lambda n: 1.0 / np.sqrt(1.0 + np.arange(n)),
    "flat": lambda n: 1.0 + 0.2 * np.linspace(1.0, 0.0, n) ** 3,  # clustered top, tiny gaps
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tol", [1e-3, 1e-6, None], ids=["1e-3", "1e-6", "auto"])
@pytest.mark.parametrize("spectrum", list(_SPECTRA))
@pytest.mark.parametrize("shape", [(300, 170), (150, 330)], ids=["tall", "wide"])
def test_lanczos_restarted_known_spectra(rng, monkeypatch, dtype, tol, spectrum, shape):
    if dtype == np.float32 and tol == 1e-6:
        pytest.skip("below float32's rounding floor for this check")
    a = _with_spectrum(rng, *shape, _SPECTRA[spectrum](min(shape)))
    stats = _lanczos_stats(monkeypatch)
    _check_tol(a, 10, dtype, tol)
    if spectrum == "flat" and tol != 1e-3:
        assert stats[0]["restarts"] >= 1  # the restart path ran
    assert stats[0]["max_basis"] <= _cap(10) == 76


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lanczos_restarted_exact_low_rank(rng, dtype):
    s = np.linspace(3.0, 1.0, 30)
    a = _with_spectrum(rng, 400, 300, s)  # rank 30 < k: the Krylov space breaks down
    u, s_, vt = ops.truncated_svd(a.astype(dtype), 40, method="lanczos", tol=1e-8 if dtype ==
                                  np.float64 else 1e-4, random_state=3)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(s_[:30], s, rtol=tol * 10, atol=tol * 3)
    assert np.all(np.abs(s_[30:]) < tol * 3)
    np.testing.assert_allclose((u[:, :30] * s_[:30]) @ vt[:30], a, atol=tol * 30)


@pytest.mark.parametrize("tol", [1e-4, None], ids=["1e-4", "auto"])
def test_lanczos_restarted_k_extremes(rng, tol):
    a = _with_spectrum(rng, 260, 200, 1.0 / (1.0 + np.arange(200)) ** 0.25)
    _check_tol(a, 1, np.float64, tol)
    b = _with_spectrum(rng, 70, 50, 0.9 ** np.arange(50))
    _check_tol(b, 49, np.float64, tol)        # k = min(m, n) - 1: the whole space
    _check_tol(b.T.copy(), 49, np.float64, tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("tol", [1e-3, None], ids=["1e-3", "auto"])
def test_lanczos_restarted_sparse_flat(rng, monkeypatch, dtype, fmt, tol):
    # A sparse random matrix: the flat spectrum the restarts are for; empty rows and columns.
    a = _random_csr(rng, 900, 400, 0.03, np.float64, empty_rows=(0, 10, 11, 899)).tolil()
    a[:, [1, 200]] = 0
    a = sp.csr_matrix(a).asformat(fmt)
    stats = _lanczos_stats(monkeypatch)
    s, s_ref = _check_tol(a, 20, dtype, tol)
    assert stats[0]["restarts"] >= 1 and stats[0]["max_basis"] <= _cap(20)
    u, _, vt = ops.truncated_svd(a.astype(dtype), 20, method="lanczos", tol=tol, random_state=0)
    assert np.all(np.abs(u[[0, 10, 11, 899]]) < 1e-5)
    assert np.all(np.abs(vt[:, [1, 200]]) < 1e-5)
    # same algorithm, same random numbers on the dense copy
    ud, sd, vtd = ops.truncated_svd(a.toarray().astype(dtype), 20, method="lanczos", tol=tol,
                                    random_state=0)
    np.testing.assert_allclose(s, sd, rtol=1e-4 if dtype == np.float32 else 1e-9)


def test_lanczos_basis_stays_bounded(rng, monkeypatch):
    """Flat spectrum, auto: the basis is restarted, never grows, and every product is one block."""
    from bigmodel.ops import svd as svd_mod
    widths = []

    class Counting(svd_mod._Operator):
        def matmat(self, x):
            widths.append(("A", x.shape[1]))
            return super().matmat(x)

        def rmatmat(self, x):
            widths.append(("At", x.shape[1]))
            return super().rmatmat(x)
    monkeypatch.setattr(svd_mod, "_Operator", Counting)
    stats = _lanczos_stats(monkeypatch)
    a = _random_csr(rng, 3000, 1200, 0.01, np.float64)
    k, p = 30, 10
    s, s_ref = _check_tol(a, k, np.float64, None)
    st = stats[0]
    b = svd_mod._lanczos_block(k, p)
    assert b == 16
    assert st["max_basis"] <= _cap(k, p) < 1200
    assert st["restarts"] >= 2
    # m >= n: the basis lives on the n side; the start is Aᵀ·G, each block is A·V then
    # Aᵀ·(A·V), and one final A·V_k
    assert widths[0] == ("At", b) and widths[-1] == ("A", k)
    blocks = widths[1:-1]
    assert len(blocks) == 2 * st["blocks"]
    assert all(w == b for _, w in blocks)
    assert [side for side, _ in blocks] == ["A", "At"] * st["blocks"]
    assert st["columns"] == b * st["blocks"]


def test_lanczos_n_iter_is_fixed_work(rng, monkeypatch):
    a = _with_spectrum(rng, 300, 200, 1.0 / np.sqrt(1 + np.arange(200)))
    stats = _lanczos_stats(monkeypatch)
    ops.truncated_svd(a, 10, method="lanczos", n_iter=6, random_state=0)
    ops.truncated_svd(a, 10, method="lanczos", n_iter=60, tol=1e-3, random_state=0)
    ops.truncated_svd(a, 10, method="lanczos", n_iter=2, random_state=0)
    assert stats[0]["blocks"] == 7 and stats[0]["restarts"] >= 1  # 7 blocks of 20 > 3*20+2*20
    assert stats[0]["max_basis"] <= 5 * 20
    assert stats[1]["blocks"] < 61                                # tol met first
    assert stats[2]["blocks"] == 3 and stats[2]["restarts"] == 0


def test_lanczos_reproducible(rng):
    a = _random_csr(rng, 500, 300, 0.05, np.float64)
    r1 = ops.truncated_svd(a, 12, method="lanczos", tol=1e-6, random_state=5)
    r2 = ops.truncated_svd(a, 12, method="lanczos", tol=1e-6, random_state=5)
    for x, y in zip(r1, r2):
        np.testing.assert_array_equal(x, y)
    r3 = ops.truncated_svd(a, 12, method="lanczos", tol=1e-6,
                           random_state=np.random.RandomState(9))
    r4 = ops.truncated_svd(a, 12, method="lanczos", tol=1e-6,
                           random_state=np.random.RandomState(9))
    for x, y in zip(r3, r4):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_allclose(r1[1], r3[1], rtol=0, atol=2e-6 * r1[1][0])  # other seed: within tol


def test_lanczos_bad_tol(rng):
    a = rng.standard_normal((30, 20))
    for bad in (0, 0.0, -1e-3, 1.0, 2.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol"):
            ops.truncated_svd(a, 2, method="lanczos", tol=bad)
    for bad in ("1e-3", True, [1e-3]):
        with pytest.raises(TypeError, match="tol"):
            ops.truncated_svd(a, 2, method="lanczos", tol=bad)
    with pytest.raises(ValueError, match="tol"):
        ops.truncated_svd(a, 2, method="randomized", tol=1e-3)
    ops.truncated_svd(a, 2, method="lanczos", tol=np.float32(1e-4))  # numpy scalars are fine


def test_lanczos_restart_cap_warns(rng, monkeypatch):
    from bigmodel.ops import svd as svd_mod
    monkeypatch.setattr(svd_mod, "_LANCZOS_MAX_RESTARTS", 1)
    a = _random_csr(rng, 900, 400, 0.03, np.float64)
    with pytest.warns(RuntimeWarning, match="restarts"):
        u, s, vt = ops.truncated_svd(a, 20, method="lanczos", tol=1e-12, random_state=0)
    assert s.shape == (20,) and np.all(np.isfinite(s))  # the best triplets so far


@pytest.mark.parametrize("method", ["randomized", "lanczos"])
def test_small_factorizations_without_scipy_lapack(rng, monkeypatch, method):
    """Without scipy.linalg.lapack the l x l Cholesky and triangular inverse fall back to
    numpy.linalg: same triplets up to rounding (restarts included)."""
    from bigmodel.ops import svd as svd_mod
    a = rng.standard_normal((300, 120)) @ np.diag(0.9 ** np.arange(120)) @ \
        np.linalg.qr(rng.standard_normal((120, 120)))[0]
    kw = dict(method=method, random_state=3)
    if method == "lanczos":
        kw["tol"] = 1e-8
    u1, s1, vt1 = ops.truncated_svd(a, 7, **kw)
    monkeypatch.setattr(svd_mod, "_LAPACK", [None])
    u2, s2, vt2 = ops.truncated_svd(a, 7, **kw)
    np.testing.assert_allclose(s2, s1, rtol=1e-9)
    np.testing.assert_allclose(np.abs(u2.T @ u1), np.eye(7), atol=1e-6)
    np.testing.assert_allclose(np.abs(vt2 @ vt1.T), np.eye(7), atol=1e-6)


@pytest.mark.parametrize("cond", [1.5, 1e6])
def test_final_ritz_step_orthonormal_to_rounding(rng, cond):
    """The final Ritz step factors w = Aᵀq by CholeskyQR: one pass when w is well conditioned,
    a second one otherwise (one pass would leave |VᵀV - I| ~ eps cond(w)² here)."""
    from bigmodel.ops import svd as svd_mod
    m, n, l, k = 300, 200, 15, 10
    q = np.linalg.qr(rng.standard_normal((m, l)))[0]
    # w with correlated columns spread over cond: Q diag(σ) Wᵀ for random orthogonal Q, W
    w = (np.linalg.qr(rng.standard_normal((n, l)))[0] * np.geomspace(cond, 1.0, l)) @ \
        np.linalg.qr(rng.standard_normal((l, l)))[0].T
    u, s, vt = svd_mod._ritz(q, w, k, np.float64)
    np.testing.assert_allclose(s, np.geomspace(cond, 1.0, l)[:k], rtol=1e-10)
    assert np.abs(u.T @ u - np.eye(k)).max() <= 1e-13
    assert np.abs(vt @ vt.T - np.eye(k)).max() <= 1e-13
