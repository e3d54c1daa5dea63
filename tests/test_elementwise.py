"""Element-wise kernels and fused optimizer updates against their float64 references."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference

SIZES = [1, 7, 100, 65537 * 3 + 5]  # the last one runs multi-threaded


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_forward_backward(rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    np.testing.assert_array_equal(ops.relu(x), reference.relu(x).astype(dtype))
    np.testing.assert_array_equal(ops.relu_backward(dy, x), reference.relu_backward(dy, x).astype(dtype))
    x2 = rng.standard_normal((3, 5, 7)).astype(dtype)[:, ::2]  # non-contiguous view
    np.testing.assert_array_equal(ops.relu(x2), np.maximum(x2, 0))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kw", [dict(momentum=0.0, weight_decay=0.01),
                                dict(momentum=0.9, weight_decay=0.0),
                                dict(momentum=0.9, weight_decay=1e-3, nesterov=True)])
@pytest.mark.parametrize("first", [True, False])
def test_sgd_update(rng, n, kw, first):
    w, g, buf = (rng.standard_normal(n).astype(np.float32) for _ in range(3))
    rw, rbuf = reference.sgd_update(w, g, buf, lr=0.05, first_step=first, **kw)
    ops.sgd_update(w, g, buf, lr=0.05, first_step=first, **kw)
    np.testing.assert_allclose(w, rw, rtol=1e-6, atol=1e-6)
    if kw["momentum"]:
        np.testing.assert_allclose(buf, rbuf, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("decoupled", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update(rng, n, decoupled, dtype):
    w, g = (rng.standard_normal(n).astype(dtype) for _ in range(2))
    m = rng.standard_normal(n).astype(dtype) * 0.1
    v = np.abs(rng.standard_normal(n)).astype(dtype) * 0.01
    rw, rm, rv = reference.adam_update(w, g, m, v, lr=1e-3, weight_decay=0.1, decoupled=decoupled,
                                       step=3)
    ops.adam_update(w, g, m, v, lr=1e-3, weight_decay=0.1, decoupled=decoupled, step=3)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(w, rw, rtol=tol, atol=tol)
    np.testing.assert_allclose(m, rm, rtol=tol, atol=tol)
    np.testing.assert_allclose(v, rv, rtol=tol, atol=tol)


def test_bad_inputs():
    w = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="relu: x must be float32 or float64"):
        ops.relu(np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"relu_backward: dy \(shape \(3,\)"):
        ops.relu_backward(np.zeros(3, np.float32), w)
    with pytest.raises(ValueError, match="g .* must match w"):
        ops.sgd_update(w, np.zeros(4, np.float64), w, lr=0.1)
    with pytest.raises(ValueError, match="writeable C-contiguous"):
        ops.sgd_update(np.zeros(8, np.float32)[::2], w, w, lr=0.1)
    with pytest.raises(ValueError, match="step must be >= 1"):
        ops.adam_update(w, w.copy(), w.copy(), w.copy(), lr=0.1, step=0)
