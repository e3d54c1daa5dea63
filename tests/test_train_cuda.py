"""Training on the GPU: the CUDA element-wise kernels (relu, relu_backward, the fused SGD and
Adam/AdamW updates) against their NumPy references, then whole models moved with
`.to("cuda")` -- an MNIST-style CNN, an LSTM text classifier and a Transformer encoder layer --
trained for a few steps beside the same model on the CPU (same weights, same data): the losses
and the final parameters must agree, and `Model.fit` must run an epoch on CuPy data.

Marked `cuda` (skipped with a reason without a CUDA module, GPU or CuPy); cupy is imported inside
the tests. tools/cuda_emu/run.sh runs this file on the CPU emulation (E2E=1), where every CUDA
thread is a host thread: keep the models tiny.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest

import bigmodel as bm
from bigmodel import nn, ops, optim, reference as ref

from conftest import rel_err

TOL = {np.float32: 1e-5, np.float64: 1e-12}
SIZES = [1, 7, 1000, 70001]  # a single element, odd, a few blocks, more than one grid-stride pass


@pytest.fixture
def cp():
    return pytest.importorskip("cupy")


def _gpu(cp, a):
    return cp.asarray(a)


def _host(a):
    return a.get() if hasattr(a, "get") else np.asarray(a)


# ---- the element-wise kernels ----

@pytest.mark.cuda
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_cuda_matches_reference(cp, rng, n, dtype):
    x = rng.standard_normal(n).astype(dtype)
    x[::5] = np.nan if n > 5 else x[::5]
    dy = rng.standard_normal(n).astype(dtype)
    y = ops.relu(_gpu(cp, x))
    assert type(y).__module__.split(".")[0] == "cupy" and y.dtype == dtype
    np.testing.assert_array_equal(_host(y), ref.relu(x))  # exact, NaN where x is NaN
    dx = ops.relu_backward(_gpu(cp, dy), _gpu(cp, x))
    np.testing.assert_array_equal(_host(dx), ref.relu_backward(dy, x))  # NaN x: 0


@pytest.mark.cuda
def test_relu_cuda_keeps_shape_and_reads_views(cp, rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    xt = _gpu(cp, x).transpose(2, 0, 1)  # not contiguous: copied on the device
    y = ops.relu(xt)
    assert y.shape == (5, 3, 4)
    np.testing.assert_array_equal(_host(y), ref.relu(x.transpose(2, 0, 1)))
    assert ops.relu(_gpu(cp, np.zeros((0, 3), np.float32))).shape == (0, 3)


@pytest.mark.cuda
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(lr=0.1), dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
                                dict(lr=0.05, momentum=0.9, nesterov=True, first_step=True),
                                dict(lr=0.2, momentum=0.5, nesterov=True, weight_decay=0.1)],
                         ids=["plain", "momentum_wd", "nesterov_first", "nesterov_wd"])
def test_sgd_update_cuda_matches_reference(cp, rng, n, dtype, kw):
    w, g, buf = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    rw, rbuf = ref.sgd_update(w, g, buf, **kw)
    gw, gbuf = _gpu(cp, w), _gpu(cp, buf)
    ops.sgd_update(gw, _gpu(cp, g), gbuf, **kw)
    assert rel_err(_host(gw), rw) <= TOL[dtype]
    if kw.get("momentum"):
        assert rel_err(_host(gbuf), rbuf) <= TOL[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decoupled", [False, True], ids=["adam", "adamw"])
def test_adam_update_cuda_matches_reference(cp, rng, n, dtype, decoupled):
    w, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    m = (rng.standard_normal(n) * 0.1).astype(dtype)
    v = rng.random(n).astype(dtype)
    kw = dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, decoupled=decoupled, step=3)
    rw, rm, rv = ref.adam_update(w, g, m, v, **kw)
    gw, gm, gv = _gpu(cp, w), _gpu(cp, m), _gpu(cp, v)
    ops.adam_update(gw, _gpu(cp, g), gm, gv, **kw)
    for got, want in ((gw, rw), (gm, rm), (gv, rv)):
        assert rel_err(_host(got), want) <= 10 * TOL[dtype]


@pytest.mark.cuda
def test_elementwise_cuda_bad_inputs(cp):
    w = _gpu(cp, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="different devices"):
        ops.sgd_update(w, np.ones(4, np.float32), w, lr=0.1)
    with pytest.raises(ValueError, match=r"adam_update: g \(shape \(3,\)"):
        ops.adam_update(w, _gpu(cp, np.ones(3, np.float32)), _gpu(cp, np.zeros(4, np.float32)),
                        _gpu(cp, np.zeros(4, np.float32)), lr=0.1, step=1)
    with pytest.raises(ValueError, match="w must be a writeable C-contiguous array"):
        ops.sgd_update(_gpu(cp, np.ones(8, np.float32))[::2], w, w, lr=0.1)
    with pytest.raises(TypeError, match="relu: x must be float32 or float64"):
        ops.relu(_gpu(cp, np.ones(3, np.int32)))


# ---- whole models: the same training on the CPU and on the GPU ----

class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        return self.fc(bm.functional.flatten(self.pool(bm.functional.relu(self.conv(x)))))


class _LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 5)
        self.lstm = nn.LSTM(5, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, tokens):
        out, (h, c) = self.lstm(self.emb(tokens))
        return self.fc(h[-1])


class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.layer(x).mean(axis=1))


def _data(kind, rng):
    if kind == "cnn":
        return rng.standard_normal((4, 1, 8, 8)).astype(np.float32), np.array([0, 2, 1, 2])
    if kind == "lstm":
        return rng.integers(0, 11, size=(3, 5)), np.array([1, 0, 1])
    return rng.standard_normal((2, 5, 8)).astype(np.float32), np.array([1, 0])


MODELS = {"cnn": _CNN, "lstm": _LSTMClassifier, "transformer": _Encoder}
OPTIMIZERS = {
    "sgd_nesterov_wd": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True,
                                           weight_decay=1e-3),
    "adam": lambda p: optim.Adam(p, lr=1e-2),
    "adamw": lambda p: optim.AdamW(p, lr=1e-2, weight_decay=0.1),
}


def _train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = bm.functional.cross_entropy(model(x), y)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.cuda
@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_model_trains_the_same_on_cuda(cp, rng, kind, opt):
    bm.manual_seed(0)
    cpu = MODELS[kind]()
    gpu = copy.deepcopy(cpu).to("cuda")
    assert all(p.device == "cuda" for p in gpu.parameters())
    x, y = _data(kind, rng)
    lc = _train(cpu, OPTIMIZERS[opt](cpu.parameters()), bm.Tensor(x), y, 3)
    lg = _train(gpu, OPTIMIZERS[opt](gpu.parameters()), bm.Tensor(x).to("cuda"), cp.asarray(y), 3)
    np.testing.assert_allclose(lg, lc, rtol=2e-4, atol=1e-5)
    assert lc[-1] < lc[0]  # it trains
    for (name, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert pg.device == "cuda", name
        if name.endswith("k_proj.bias"):
            # Its gradient is exactly 0 in exact arithmetic (softmax ignores a shift shared by
            # all keys): rounding noise of ~1e-10, which Adam normalises to steps of ~lr.
            continue
        assert rel_err(pg.to("cpu").numpy(), pc.numpy()) <= 1e-4, name


@pytest.mark.cuda
def test_fit_runs_an_epoch_on_cuda(cp, rng):
    bm.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to("cuda")
    model.compile(optimizer=optim.Adam(model.parameters(), lr=1e-2), loss="cross_entropy",
                  metrics=["accuracy"])
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    hist = model.fit(cp.asarray(x), cp.asarray(y), epochs=3, batch_size=8, verbose=0)
    loss = hist.history["loss"]
    assert len(loss) == 3 and np.all(np.isfinite(loss)) and loss[-1] < loss[0]
    pred = model.predict(cp.asarray(x))
    assert pred.shape == (32, 3)
    assert all(p.device == "cuda" for p in model.parameters())
