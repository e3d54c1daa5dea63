"""_core.sym_eig_top (top-k eigenpairs of a small dense symmetric matrix) against numpy.linalg.eigh
on every ISA path: eigenvalues, residuals, orthonormality, order, determinism, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import _core

# Tolerances relative to ||A||_2 (float64), the contract in csrc/cpu/symeig.h.
EIG_TOL = 1e-12
RES_TOL = 1e-11
ORTH_TOL = 1e-12

SIZES = [1, 2, 3, 17, 64, 160, 333]


def _orth_basis(rng, n):
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


def _with_spectrum(rng, ev):
    q = _orth_basis(rng, len(ev))
    return (q * ev) @ q.T


def make(family, n, seed=0):
    rng = np.random.default_rng([seed, n, len(family)])
    if family == "random":
        a = rng.standard_normal((n, n))
        return (a + a.T) / 2
    if family == "gram_decay":  # PSD with geometric decay, condition 1e12
        return _with_spectrum(rng, np.logspace(0, -12, n))
    if family == "gram":  # B^T B of a column-scaled B, as in block Lanczos
        b = rng.standard_normal((3 * n, n)) * np.logspace(0, -6, n)
        return b.T @ b
    if family == "cluster":  # half the spectrum at 1 + 1e-10 j
        h = n // 2
        return _with_spectrum(rng, np.concatenate([1 + 1e-10 * np.arange(h),
                                                   rng.uniform(-1, 0.5, n - h)]))
    if family == "repeated":  # every eigenvalue exactly three times
        return _with_spectrum(rng, np.repeat(rng.standard_normal((n + 2) // 3), 3)[:n])
    if family == "low_rank":  # rank min(5, n - 1): the rest exactly 0
        b = rng.standard_normal((n, max(1, min(5, n - 1))))
        return b @ b.T
    if family == "negative_definite":
        b = rng.standard_normal((2 * n, n))
        return -(b.T @ b) / n - 1e-3 * np.eye(n)
    if family == "diagonal":
        return np.diag(rng.standard_normal(n))
    if family == "tridiagonal":
        t = np.diag(rng.standard_normal(n))
        if n > 1:
            off = rng.standard_normal(n - 1)
            t += np.diag(off, 1) + np.diag(off, -1)
        return t
    if family == "scaled_huge":
        a = rng.standard_normal((n, n))
        return (a + a.T) * 1e200
    if family == "scaled_tiny":
        a = rng.standard_normal((n, n))
        return (a + a.T) * 1e-200
    raise ValueError(family)


FAMILIES = ["random", "gram_decay", "gram", "cluster", "repeated", "low_rank",
            "negative_definite", "diagonal", "tridiagonal", "scaled_huge", "scaled_tiny"]


def _ks(n):
    return sorted({1, max(1, n // 3), n})


def check_pairs(a, k, w, z):
    n = a.shape[0]
    ref = np.linalg.eigvalsh(a)[::-1][:k]
    s = max(abs(np.linalg.eigvalsh(a)).max(), np.finfo(float).tiny)
    assert w.shape == (k,) and z.shape == (n, k)
    assert w.dtype == np.float64 and z.dtype == np.float64
    assert np.all(np.diff(w) <= 0), "eigenvalues not descending"
    eig_err = np.abs(w - ref).max() / s
    # Residual on a / s so that scaled_huge / scaled_tiny neither overflow nor underflow here.
    res = np.linalg.norm((a / s) @ z - z * (w / s), axis=0).max()
    orth = np.abs(z.T @ z - np.eye(k)).max()
    assert eig_err <= EIG_TOL, f"eigenvalue error {eig_err:.2e}"
    assert res <= RES_TOL, f"residual {res:.2e}"
    assert orth <= ORTH_TOL, f"orthonormality {orth:.2e}"


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("family", FAMILIES)
def test_sym_eig_top_matches_eigh(isa, family, n):
    a = make(family, n)
    for k in _ks(n):
        w, z = _core.sym_eig_top(a, k)
        check_pairs(a, k, w, z)


@pytest.mark.parametrize("n", [2, 17, 160])
def test_sym_eig_top_special(isa, n):
    rng = np.random.default_rng(7)
    cases = {
        "ones": np.ones((n, n)),  # rank 1, n-1 exact zeros
        "identity": np.eye(n),  # one eigenvalue of multiplicity n
        "two_values": _with_spectrum(rng, np.where(np.arange(n) % 2, 1.0, -1.0)),
        "path_graph": np.diag(np.ones(n - 1), 1) + np.diag(np.ones(n - 1), -1),
        "zero": np.zeros((n, n)),
    }
    for name, a in cases.items():
        for k in _ks(n):
            w, z = _core.sym_eig_top(a, k)
            try:
                check_pairs(a, k, w, z)
            except AssertionError as e:
                raise AssertionError(f"{name} n={n} k={k}: {e}") from None


def test_sym_eig_top_reads_lower_triangle_only(isa):
    rng = np.random.default_rng(3)
    a = make("random", 40)
    junk = np.tril(a) + np.triu(rng.standard_normal((40, 40)), 1)
    w, z = _core.sym_eig_top(a, 8)
    w2, z2 = _core.sym_eig_top(junk, 8)
    assert np.array_equal(w, w2) and np.array_equal(z, z2)


def test_sym_eig_top_deterministic_and_noncontiguous(isa):
    a = make("gram", 160)
    w1, z1 = _core.sym_eig_top(a, 36)
    w2, z2 = _core.sym_eig_top(a.copy(), 36)
    assert np.array_equal(w1, w2) and np.array_equal(z1, z2)
    big = np.zeros((320, 320))
    big[::2, ::2] = a
    w3, z3 = _core.sym_eig_top(big[::2, ::2], 36)  # strided view: copied by the binding
    w4, z4 = _core.sym_eig_top(np.asfortranarray(a), 36)
    assert np.array_equal(w1, w3) and np.array_equal(z1, z3)
    assert np.array_equal(w1, w4) and np.array_equal(z1, z4)


def test_sym_eig_top_bad_inputs():
    a = make("random", 5)
    with pytest.raises(TypeError, match="float64"):
        _core.sym_eig_top(a.astype(np.float32), 2)
    with pytest.raises(TypeError, match="float64"):
        _core.sym_eig_top(np.eye(3, dtype=np.int64), 1)
    with pytest.raises(ValueError, match=r"square.*\(5, 4\)"):
        _core.sym_eig_top(a[:, :4], 2)
    with pytest.raises(ValueError, match=r"2-D.*\(5,\)"):
        _core.sym_eig_top(a[0], 1)
    with pytest.raises(ValueError, match=r"k=0 for n=5"):
        _core.sym_eig_top(a, 0)
    with pytest.raises(ValueError, match=r"k=6 for n=5"):
        _core.sym_eig_top(a, 6)
    for bad in (np.nan, np.inf):
        b = a.copy()
        b[3, 1] = bad
        with pytest.raises(ValueError, match=r"non-finite entry at \(3, 1\)"):
            _core.sym_eig_top(b, 2)
    with pytest.raises(ValueError, match="square"):
        _core.sym_eig_top(np.zeros((0, 0)), 1)
