"""softmax, log_softmax, cross_entropy, layer_norm: values and gradients against the float64
reference on every ISA path, odd sizes, torch semantics (when torch imports), finite
differences, bad inputs."""
from __future__ import annotations

import numpy as np
import pytest

from bigmodel import ops, reference as ref
from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}


@pytest.mark.parametrize("shape,axis", [((1, 1), -1), ((3, 7), -1), ((5, 1000), 1),
                                        ((2, 4097), -1), ((4, 33, 6), 1), ((6, 5, 3), 0)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax_matches_reference(isa, rng, shape, axis, log):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    f, rf = (ops.log_softmax, ref.log_softmax) if log else (ops.softmax, ref.softmax)
    b, rb = ((ops.log_softmax_backward, ref.log_softmax_backward) if log
             else (ops.softmax_backward, ref.softmax_backward))
    y = f(x, axis=axis)
    assert y.shape == x.shape and y.dtype == np.float32
    assert rel_err(y, rf(x, axis=axis)) <= TOL[np.float32]
    dy = rng.standard_normal(shape).astype(np.float32)
    dx = b(dy, y, axis=axis)
    assert rel_err(dx, rb(dy, rf(x, axis=axis), axis=axis)) <= 1e-4


def test_softmax_is_stable_and_float64(rng):
    x = rng.standard_normal((4, 50)) * 1e4  # would overflow without the max subtraction
    for f, rf in ((ops.softmax, ref.softmax), (ops.log_softmax, ref.log_softmax)):
        assert np.all(np.isfinite(f(x.astype(np.float32))))
        assert rel_err(f(x), rf(x)) <= TOL[np.float64]


def _ce_cases(rng):
    return [((8, 10), (8,)), ((1, 1), (1,)), ((5, 1001), (5,)), ((3, 7, 4, 2), (3, 4, 2)),
            ((6,), ())]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_matches_reference(isa, rng, reduction, smoothing):
    for xs, ts in _ce_cases(rng):
        C = xs[0] if len(xs) == 1 else xs[1]
        x = (rng.standard_normal(xs) * 3).astype(np.float32)
        t = rng.integers(0, C, size=ts)
        if t.size > 2:
            t.reshape(-1)[1] = -100
        kw = dict(reduction=reduction, label_smoothing=smoothing)
        loss = ops.cross_entropy(x, t, **kw)
        r = ref.cross_entropy(x, t, **kw)
        assert np.shape(loss) == np.shape(r)
        assert rel_err(loss, r) <= 1e-5
        g = (rng.standard_normal(np.shape(r)).astype(np.float32) if reduction == "none"
             else np.float32(1.7))
        dx = ops.cross_entropy_backward(g, x, t, **kw)
        assert dx.shape == x.shape
        np.testing.assert_allclose(dx, ref.cross_entropy_backward(g, x, t, **kw), rtol=1e-5,
                                   atol=1e-6)  # C = 1: the gradient is 0 up to roundoff


def test_cross_entropy_ignore_index(rng):
    x = rng.standard_normal((6, 5)).astype(np.float32)
    t = np.array([1, 7, 7, 0, 4, 7])
    loss = ops.cross_entropy(x, t, ignore_index=7, reduction="none")
    assert np.all(loss[[1, 2, 5]] == 0)
    mean = ops.cross_entropy(x, t, ignore_index=7)
    np.testing.assert_allclose(mean, loss.sum() / 3, rtol=1e-6)
    dx = ops.cross_entropy_backward(np.float32(1), x, t, ignore_index=7)
    assert not dx[[1, 2, 5]].any()
    assert np.isnan(ops.cross_entropy(x, np.full(6, 7), ignore_index=7))  # as torch


def test_nn_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((7, 4, 3)).astype(np.float32)
    tx = torch.from_numpy(x).requires_grad_()
    t = rng.integers(0, 4, size=(7, 3))
    t[0, 0] = -100
    for red in ("mean", "sum", "none"):
        tl = F.cross_entropy(tx, torch.from_numpy(t), label_smoothing=0.2, reduction=red)
        ours = ops.cross_entropy(x, t, label_smoothing=0.2, reduction=red)
        np.testing.assert_allclose(ours, tl.detach().numpy(), rtol=1e-5, atol=1e-6)
        g = np.full(tuple(tl.shape), 0.5, np.float32)
        tx.grad = None
        tl.backward(torch.from_numpy(g))
        dx = ops.cross_entropy_backward(g, x, t, label_smoothing=0.2, reduction=red)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ops.log_softmax(x, axis=1),
                               F.log_softmax(torch.from_numpy(x), dim=1).numpy(), rtol=1e-5, atol=1e-6)
    w = rng.standard_normal((4, 3)).astype(np.float32)
    b = rng.standard_normal((4, 3)).astype(np.float32)
    tw, tb = (torch.from_numpy(a).requires_grad_() for a in (w, b))
    tx.grad = None
    ty = F.layer_norm(tx, (4, 3), tw, tb, eps=1e-3)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    ty.backward(torch.from_numpy(dy))
    y = ops.layer_norm(x, (4, 3), w, b, eps=1e-3)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    dx, dw, db = ops.layer_norm_backward(dy, x, (4, 3), w, b, eps=1e-3)
    for ours, theirs in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape,ns", [((1, 1), 1), ((3, 7), 7), ((4, 5, 768), 768),
                                      ((2, 3, 4, 5), (4, 5)), ((17, 4099), (4099,))])
@pytest.mark.parametrize("affine", ["both", "weight", "bias", "none"])
def test_layer_norm_matches_reference(isa, rng, shape, ns, affine):
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    nsh = (ns,) if isinstance(ns, int) else ns
    w = rng.standard_normal(nsh).astype(np.float32) if affine in ("both", "weight") else None
    b = rng.standard_normal(nsh).astype(np.float32) if affine in ("both", "bias") else None
    y, mean, rstd = ops.layer_norm(x, ns, w, b, eps=1e-5, return_stats=True)
    assert rel_err(y, ref.layer_norm(x, ns, w, b, eps=1e-5)) <= 1e-5
    dy = rng.standard_normal(shape).astype(np.float32)
    got = ops.layer_norm_backward(dy, x, ns, w, b, eps=1e-5, mean=mean, rstd=rstd)
    again = ops.layer_norm_backward(dy, x, ns, w, b, eps=1e-5)
    want = ref.layer_norm_backward(dy, x, ns, w, b, eps=1e-5)
    for g, a, r in zip(got, again, want):
        assert (g is None) == (r is None)
        if r is not None:
            assert rel_err(g, r) <= 1e-4
            np.testing.assert_array_equal(g, a)


def test_gradients_finite_differences(rng):
    h = 1e-6
    x = rng.standard_normal((3, 5))
    t = np.array([0, 4, -100])
    w = rng.standard_normal(5)
    b = rng.standard_normal(5)
    dy = rng.standard_normal((3, 5))

    def numgrad(f, a):
        g = np.zeros_like(a)
        for pos in np.ndindex(*a.shape):
            a[pos] += h
            up = f()
            a[pos] -= 2 * h
            g[pos] = (up - f()) / (2 * h)
            a[pos] += h
        return g

    ce = lambda: float(ops.cross_entropy(x, t, label_smoothing=0.1))  # noqa: E731
    np.testing.assert_allclose(ops.cross_entropy_backward(1.0, x, t, label_smoothing=0.1),
                               numgrad(ce, x), rtol=1e-6, atol=1e-8)
    ln = lambda: float((ops.layer_norm(x, 5, w, b) * dy).sum())  # noqa: E731
    dx, dw, db = ops.layer_norm_backward(dy, x, 5, w, b)
    for g, a in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(g, numgrad(ln, a), rtol=1e-5, atol=1e-7)
    sm = lambda: float((ops.log_softmax(x, axis=0) * dy).sum())  # noqa: E731
    np.testing.assert_allclose(ops.log_softmax_backward(dy, ops.log_softmax(x, axis=0), axis=0),
                               numgrad(sm, x), rtol=1e-6, atol=1e-8)


def test_nn_bad_inputs(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match=r"axis 2 is out of range for x.shape=\(4, 5\)"):
        ops.softmax(x, axis=2)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.softmax(x.astype(np.int32))
    with pytest.raises(ValueError, match=r"dy.shape=\(4, 4\) must equal y.shape=\(4, 5\)"):
        ops.softmax_backward(x[:, :4], x)
    with pytest.raises(TypeError, match="targets must be integer"):
        ops.cross_entropy(x, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"targets.shape=\(3,\), expected \(4,\)"):
        ops.cross_entropy(x, np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"targets must be in \[0, 5\)"):
        ops.cross_entropy(x, np.array([0, 1, 5, 2]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        ops.cross_entropy(x, np.zeros(4, np.int64), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing must be in"):
        ops.cross_entropy(x, np.zeros(4, np.int64), label_smoothing=1.5)
    with pytest.raises(ValueError, match="grad must be a scalar"):
        ops.cross_entropy_backward(np.ones(4, np.float32), x, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"normalized_shape=\(4,\) must match.*x.shape=\(4, 5\)"):
        ops.layer_norm(x, 4)
    with pytest.raises(ValueError, match=r"weight.shape=\(4,\), expected normalized_shape=\(5,\)"):
        ops.layer_norm(x, 5, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="weight has dtype float64"):
        ops.layer_norm(x, 5, np.ones(5))
    with pytest.raises(ValueError, match="dy.shape"):
        ops.layer_norm_backward(x[:2], x, 5)
