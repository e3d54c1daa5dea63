"""pytest-benchmark: top-k eigenpairs of a small dense symmetric matrix (the block Lanczos
projected Gram matrix), ours beside LAPACK dsyevr(range="I") through SciPy and numpy.linalg.eigh
(all eigenpairs); one group per (n, k). Ours is single-threaded; for a one-core comparison run

    OPENBLAS_NUM_THREADS=1 pytest benchmarks/bench_symeig.py --benchmark-only --benchmark-group-by=group
"""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import _core

lapack = pytest.importorskip("scipy.linalg.lapack")


def gram(n, seed=0):
    # B^T B with decaying column scales: PSD, condition ~1e12, like the Lanczos Gram matrices.
    b = np.random.default_rng(seed).standard_normal((3 * n, n)) * np.logspace(0, -6, n)
    return b.T @ b


@pytest.mark.parametrize("impl", ["ours", "dsyevr", "eigh"])
@pytest.mark.parametrize("n,k", [(160, 20), (160, 36), (400, 50)])
def test_sym_eig_top(benchmark, n, k, impl):
    a = gram(n)
    benchmark.group = f"sym_eig_top n={n} k={k}"
    fn = {"ours": lambda: _core.sym_eig_top(a, k),
          "dsyevr": lambda: lapack.dsyevr(a, compute_v=1, range="I", il=n - k + 1, iu=n),
          "eigh": lambda: np.linalg.eigh(a)}[impl]
    w = fn()[0]
    ref = np.linalg.eigvalsh(a)[::-1][:k]
    got = np.sort(w)[::-1][:k] if impl != "eigh" else w[::-1][:k]
    assert np.allclose(got, ref, rtol=0, atol=1e-12 * ref[0])
    benchmark(fn)
