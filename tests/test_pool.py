"""Pooling: max (values, indices, gradients), average (padding, ceil_mode, count_include_pad),
global average; against the float64 reference, torch when importable, every ISA path, finite
differences once, and bad input."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference
from conftest import rel_err

TOL = {np.float32: 1e-6, np.float64: 1e-13}

# (x shape, kernel_size, stride, padding, ceil_mode)
CASES = [
    ((3, 5, 24, 24), 2, None, 0, False),       # the CNN case (AVX-512 kernel)
    ((2, 3, 17, 35), 2, 2, 0, False),          # odd sizes: unused last row / column
    ((1, 1, 2, 2), 2, None, 0, False),
    ((1, 2, 1, 1), 1, 1, 0, False),
    ((2, 3, 7, 8), 3, 2, 1, True),
    ((2, 3, 8, 9), 2, 2, 0, True),
    ((1, 2, 9, 9), 3, 2, 1, False),
    ((2, 2, 6, 7), 3, 3, 1, True),
    ((1, 1, 5, 6), (2, 3), (1, 2), (1, 1), True),
    ((2, 3, 11, 13), (3, 2), (2, 3), (1, 0), False),
    ((1, 3, 5, 5), 5, 1, 2, False),            # padding = half the kernel
    ((2, 4, 31, 37), 2, 2, 0, False),          # prime sizes, 2x2 fast path with tails
    ((2, 3, 8, 10), 3, 2, 1, False),           # output = half the input, windows not 2x2
    ((1, 2, 6, 70), (2, 3), 2, (0, 1), False),  # half size, 2x3 windows: backward falls back
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,k,s,p,cm", CASES)
def test_max_pool2d_matches_reference(isa, rng, xs, k, s, p, cm, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    y, idx = ops.max_pool2d(x, k, s, p, cm)
    ry, ridx = reference.max_pool2d(x, k, s, p, cm)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(ops.max_pool2d(x, k, s, p, cm, return_indices=False), y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.max_pool2d_backward(dy, idx, x.shape)
    assert rel_err(dx, reference.max_pool2d_backward(dy, ridx, x.shape)) <= TOL[dtype]


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,k,s,p,cm", CASES)
def test_avg_pool2d_matches_reference(isa, rng, xs, k, s, p, cm, dtype, cip):
    x = rng.standard_normal(xs).astype(dtype)
    y = ops.avg_pool2d(x, k, s, p, cm, cip)
    ry = reference.avg_pool2d(x, k, s, p, cm, cip)
    assert y.dtype == dtype and y.shape == ry.shape
    assert rel_err(y, ry) <= TOL[dtype]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip)
    assert rel_err(dx, reference.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip)) <= TOL[dtype]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_avg_pool2d(isa, rng, dtype):
    x = rng.standard_normal((3, 5, 7, 11)).astype(dtype)
    y = ops.global_avg_pool2d(x)
    assert y.shape == (3, 5, 1, 1)
    assert rel_err(y, reference.global_avg_pool2d(x)) <= TOL[dtype]
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.global_avg_pool2d_backward(dy, x.shape)
    assert rel_err(dx, reference.global_avg_pool2d_backward(dy, x.shape)) <= TOL[dtype]


def test_max_pool2d_ties_and_nan(isa):
    x = np.zeros((1, 1, 4, 4), np.float32)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2, 3] = 5.0
    y, idx = ops.max_pool2d(x, 2)
    ry, ridx = reference.max_pool2d(x, 2)
    np.testing.assert_array_equal(idx, ridx)            # ties: first in scan order
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ry))
    assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5 and y[0, 0, 1, 1] == 5.0


def test_pool_matches_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for xs, k, s, p, cm in CASES:
        x = rng.standard_normal(xs)
        x[..., 0, 0] = np.nan if xs[2] > 3 else x[..., 0, 0]   # NaN propagation as torch
        tx = torch.tensor(x, requires_grad=True)
        ty, ti = F.max_pool2d(tx, k, s, p, ceil_mode=cm, return_indices=True)
        y, idx = ops.max_pool2d(x, k, s, p, cm)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(idx, ti.numpy())
        dy = rng.standard_normal(y.shape)
        ty.backward(torch.tensor(dy))
        np.testing.assert_allclose(ops.max_pool2d_backward(dy, idx, x.shape), tx.grad.numpy(),
                                   rtol=1e-12)
        x = rng.standard_normal(xs)
        for cip in (True, False):
            tx = torch.tensor(x, requires_grad=True)
            ty = F.avg_pool2d(tx, k, s, p, ceil_mode=cm, count_include_pad=cip)
            y = ops.avg_pool2d(x, k, s, p, cm, cip)
            np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
            ty.backward(torch.tensor(dy))
            np.testing.assert_allclose(ops.avg_pool2d_backward(dy, x.shape, k, s, p, cm, cip),
                                       tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((2, 3, 5, 7))
    np.testing.assert_allclose(ops.global_avg_pool2d(x),
                               F.adaptive_avg_pool2d(torch.tensor(x), 1).numpy(), rtol=1e-12)


def test_avg_pool2d_finite_differences(rng):
    x = rng.standard_normal((1, 2, 7, 6))
    args = (3, 2, 1, True, False)
    dy = rng.standard_normal(ops.avg_pool2d(x, *args).shape)
    dx = ops.avg_pool2d_backward(dy, x.shape, *args)
    h = 1e-6
    for idx in list(np.ndindex(x.shape))[::5]:
        old = x[idx]
        x[idx] = old + h
        fp = np.sum(ops.avg_pool2d(x, *args) * dy)
        x[idx] = old - h
        fm = np.sum(ops.avg_pool2d(x, *args) * dy)
        x[idx] = old
        assert abs((fp - fm) / (2 * h) - dx[idx]) <= 1e-7


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fn", [ops.max_pool2d, ops.avg_pool2d])
def test_pool_bad_arguments(fn):
    x = np.ones((2, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"kernel_size \(9, 9\) is larger than the padded input "
                                         r"\(8x8\) \(x.shape=\(2, 3, 8, 8\)"):
        fn(x, 9)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        fn(x, 2, 0)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        fn(x, 0)
    with pytest.raises(ValueError, match=r"padding \(2, 2\) must be at most half the kernel_size"):
        fn(x, 3, 1, 2)
    with pytest.raises(ValueError, match=r"x must be 4-D, got x.shape=\(3, 8, 8\)"):
        fn(x[0], 2)
    with pytest.raises(TypeError, match="x must be float32 or float64, got dtype int64"):
        fn(x.astype(np.int64), 2)
    with pytest.raises(TypeError, match="kernel_size must be an int or a pair"):
        fn(x, 2.0)


def test_pool_backward_bad_arguments():
    x = np.ones((2, 3, 8, 8), np.float32)
    y, idx = ops.max_pool2d(x, 2)
    with pytest.raises(TypeError, match="indices must be an int64"):
        ops.max_pool2d_backward(y, idx.astype(np.int32), x.shape)
    with pytest.raises(ValueError, match="must match"):
        ops.max_pool2d_backward(y, idx[:1], x.shape)
    with pytest.raises(ValueError, match="x_shape must be"):
        ops.max_pool2d_backward(y, idx, (2, 3, 8))
    bad = idx.copy()
    bad[0, 0, 0, 0] = 64
    with pytest.raises(ValueError, match="index 64 outside the plane of 64 pixels"):
        ops.max_pool2d_backward(y, bad, x.shape)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 4, 4\)"):
        ops.avg_pool2d_backward(np.ones((2, 3, 3, 3), np.float32), x.shape, 2)
    with pytest.raises(ValueError, match=r"dy must have shape \(2, 3, 1, 1\)"):
        ops.global_avg_pool2d_backward(np.ones((2, 3, 2, 1), np.float32), x.shape)
