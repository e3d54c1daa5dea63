"""Shared fixtures: seeded RNG, every instruction-set path this CPU supports, the cuda marker."""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel
from bigmodel import _core
from bigmodel.ops import _backend

_ORDER = ["portable", "avx2", "avx512"]
ISAS = _ORDER[: _ORDER.index(_core.best_isa()) + 1]


@pytest.fixture(params=ISAS)
def isa(request):
    """Runs the test once per instruction-set path (portable, avx2, avx512 as supported)."""
    before = _core.isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_collection_modifyitems(config, items):
    if _backend.cuda_available():
        return
    why = ("no CUDA module built" if not _backend.cuda_built()
           else "CUDA module built but no GPU/CuPy available")
    skip = pytest.mark.skip(reason=f"cuda: {why}")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


def rel_err(x, ref):
    """Relative Frobenius error of x against a float64 reference."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    denom = np.linalg.norm(ref)
    return float(np.linalg.norm(x - ref) / (denom if denom > 0 else 1.0))


__all__ = ["ISAS", "rel_err", "bigmodel"]
