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


@pytest.mark.cuda
@pytest.mark.large
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_cuda_grid_stride_passes(cp, rng, dtype):
    # The grid is capped at 8192 blocks of 256 threads: 2**22 + 5 elements make every thread loop
    # twice and a few a third time.
    n = 2 * 8192 * 256 + 5
    x, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    np.testing.assert_array_equal(_host(ops.relu(_gpu(cp, x))), ref.relu(x))
    np.testing.assert_array_equal(_host(ops.relu_backward(_gpu(cp, g), _gpu(cp, x))),
                                  ref.relu_backward(g, x))
    rw, _ = ref.sgd_update(x, g, m, lr=0.1, momentum=0.9)
    gw = _gpu(cp, x)
    ops.sgd_update(gw, _gpu(cp, g), _gpu(cp, m), lr=0.1, momentum=0.9)
    assert rel_err(_host(gw), rw) <= TOL[dtype]
    rw, rm, rv = ref.adam_update(x, g, m, v, lr=1e-2, step=3)
    gw, gm, gv = _gpu(cp, x), _gpu(cp, m), _gpu(cp, v)
    ops.adam_update(gw, _gpu(cp, g), gm, gv, lr=1e-2, step=3)
    for got, want in ((gw, rw), (gm, rm), (gv, rv)):
        assert rel_err(_host(got), want) <= 10 * TOL[dtype]


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


class _BatchNormCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 3 * 3, 3)

    def forward(self, x):
        h = bm.functional.max_pool2d(bm.functional.relu(self.bn(self.conv(x))), 2)
        return self.fc(bm.functional.flatten(h))


class _GeluDropoutEncoder(nn.Module):
    """GELU (erf on the device) and dropout (a host-drawn mask moved to the device)."""

    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.2,
                                                activation="gelu")
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(self.layer(x).mean(axis=1))


def _data(kind, rng):
    if kind in ("cnn", "bn_cnn"):
        return rng.standard_normal((4, 1, 8, 8)).astype(np.float32), np.array([0, 2, 1, 2])
    if kind == "lstm":
        return rng.integers(0, 11, size=(3, 5)), np.array([1, 0, 1])
    return rng.standard_normal((2, 5, 8)).astype(np.float32), np.array([1, 0])


MODELS = {"cnn": _CNN, "bn_cnn": _BatchNormCNN, "lstm": _LSTMClassifier,
          "transformer": _Encoder, "gelu_dropout_transformer": _GeluDropoutEncoder}
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
    bm.manual_seed(1)  # the same dropout masks on both sides (drawn on the host)
    lc = _train(cpu, OPTIMIZERS[opt](cpu.parameters()), bm.Tensor(x), y, 3)
    bm.manual_seed(1)
    lg = _train(gpu, OPTIMIZERS[opt](gpu.parameters()), bm.Tensor(x).to("cuda"), cp.asarray(y), 3)
    np.testing.assert_allclose(lg, lc, rtol=2e-4, atol=1e-5)
    assert lc[-1] < lc[0]  # it trains
    _assert_same_parameters(cpu, gpu)


# A parameter whose gradient is exactly 0 in exact arithmetic: softmax ignores a shift shared by
# all keys. Its gradient is rounding noise (~1e-10) that Adam normalises to steps of ~lr,
# different on each device. (Likewise a conv bias before BatchNorm: _BatchNormCNN has none.)
_NULL_GRADIENT = ("k_proj.bias",)


def _assert_same_parameters(cpu, gpu):
    assert all(p.device == "cuda" for p in gpu.parameters())
    cs, gs = cpu.state_dict(), gpu.state_dict()  # BatchNorm's running statistics too
    assert cs.keys() == gs.keys()
    for k in cs:
        if not k.endswith(_NULL_GRADIENT):
            assert rel_err(np.asarray(gs[k]), np.asarray(cs[k])) <= 1e-4, k


@pytest.mark.cuda
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_optimizer_state_follows_the_model_to_cuda(cp, rng, opt):
    # The optimizer is built, and has taken a step (creating its buffers), while the model is on
    # the CPU; then the model moves: the buffers must follow, and the run must match an all-CPU one.
    bm.manual_seed(0)
    cpu = _CNN()
    moved = copy.deepcopy(cpu)
    x, y = _data("cnn", rng)
    lc = _train(cpu, OPTIMIZERS[opt](cpu.parameters()), bm.Tensor(x), y, 3)
    o = OPTIMIZERS[opt](moved.parameters())
    lm = _train(moved, o, bm.Tensor(x), y, 1)
    moved.to("cuda")
    lm += _train(moved, o, bm.Tensor(x).to("cuda"), cp.asarray(y), 2)
    np.testing.assert_allclose(lm, lc, rtol=2e-4, atol=1e-5)
    _assert_same_parameters(cpu, moved)
    for st in o.state:
        for k, v in st.items():
            if v.dtype.kind == "f":
                assert type(v).__module__.split(".")[0] == "cupy", k


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


@pytest.mark.cuda
def test_fit_on_host_data_with_a_model_on_cuda(cp, rng):
    # The common case: a NumPy dataset and a model moved to the GPU; the Trainer moves each batch.
    bm.manual_seed(0)
    host = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
    dev = copy.deepcopy(host).to("cuda")
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    hist = {}
    for name, model in (("cpu", host), ("cuda", dev)):
        model.compile(optimizer=optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                      loss="cross_entropy", metrics=["accuracy"])
        bm.manual_seed(2)  # same shuffles and dropout masks
        hist[name] = model.fit(x, y, epochs=2, batch_size=8, verbose=0,
                               validation_data=(x, y)).history
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(hist["cuda"][k], hist["cpu"][k], rtol=2e-4, atol=1e-5)
    ev = dev.evaluate(x, y)
    np.testing.assert_allclose(ev["loss"], host.evaluate(x, y)["loss"], rtol=2e-4)
    pred = dev.predict(x)
    assert isinstance(pred, np.ndarray) and pred.shape == (32, 3)
    np.testing.assert_allclose(pred, host.predict(x), rtol=1e-4, atol=1e-5)
