"""Tensor autograd: values and gradients against NumPy and finite differences (float64)."""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel as bm
from bigmodel import functional as F


def numeric_grad(f, x, eps=1e-6):
    """Central finite differences of scalar f at float64 array x."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f(x)
        x[i] = old - eps
        fm = f(x)
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def check_grad(fn, *shapes, rng, tol=1e-6):
    """fn maps Tensors to a scalar Tensor; compare autograd with finite differences."""
    xs = [rng.standard_normal(s) for s in shapes]
    ts = [bm.Tensor(x.copy(), requires_grad=True) for x in xs]
    out = fn(*ts)
    out.backward()
    for k, x in enumerate(xs):
        def f(v, k=k):
            args = [bm.Tensor(xx) for xx in xs]
            args[k] = bm.Tensor(v)
            return float(fn(*args).item())
        num = numeric_grad(f, x.copy())
        np.testing.assert_allclose(ts[k].grad, num, rtol=tol, atol=tol)


def test_arithmetic_broadcasting_grads(rng):
    check_grad(lambda a, b: ((a + b) * a - b / (a * a + 1.5)).sum(), (3, 4), (4,), rng=rng)
    check_grad(lambda a, b: (a - 2.0 * b).mean() + (a ** 3).sum(), (2, 3, 1), (3, 5), rng=rng)


def test_reductions_shape_ops_grads(rng):
    check_grad(lambda a: a.reshape(6, 2).transpose().sum(axis=0).max(), (3, 4), rng=rng)
    check_grad(lambda a: (a[1:, ::2] * 3).sum() + a.mean(axis=1).sum(), (3, 4), rng=rng)
    check_grad(lambda a, b: bm.cat([a, b], axis=1).exp().sum(), (2, 3), (2, 2), rng=rng)
    check_grad(lambda a: a.max(axis=1, keepdims=True).sum(), (4, 5), rng=rng)


def test_matmul_and_linear_grads(rng):
    check_grad(lambda a, b: (a @ b).tanh().sum(), (3, 4), (4, 5), rng=rng)
    check_grad(lambda x, w, b: F.linear(x, w, b).sigmoid().sum(), (5, 3), (2, 3), (2,), rng=rng)
    check_grad(lambda a, b: (a @ b).sum(), (2, 3, 4), (4, 2), rng=rng)


def test_activation_and_loss_grads(rng):
    check_grad(lambda x: F.relu(x * 2 - 0.1).sum() + F.gelu(x).sum(), (4, 5), rng=rng)
    t = np.array([0, 2, 1, 2])
    check_grad(lambda x: F.cross_entropy(x, t), (4, 3), rng=rng)
    check_grad(lambda x: F.log_softmax(x).sum() * 0.3 + F.softmax(x)[:, 0].sum(), (4, 3), rng=rng)
    y = rng.standard_normal((3, 2))
    check_grad(lambda x: F.mse_loss(x, bm.Tensor(y)), (3, 2), rng=rng)


def test_conv_pool_grads_finite_differences(rng):
    check_grad(lambda x, w, b: F.max_pool2d(F.conv2d(x, w, b, padding=1), 2).sum(),
               (2, 2, 5, 5), (3, 2, 3, 3), (3,), rng=rng, tol=1e-5)
    check_grad(lambda x: F.avg_pool2d(x, 2).sum() * 2, (1, 2, 4, 6), rng=rng)


def test_norm_embedding_attention_grads(rng):
    check_grad(lambda x, w, b: (F.layer_norm(x, 4, w, b) ** 2).sum(), (3, 4), (4,), (4,),
               rng=rng, tol=1e-5)
    rm, rv = np.zeros(3), np.ones(3)
    check_grad(lambda x, w, b: (F.batch_norm(x, rm.copy(), rv.copy(), w, b) ** 2).sum(),
               (4, 3, 2, 2), (3,), (3,), rng=rng, tol=1e-5)
    idx = np.array([[0, 2, 2], [1, 0, 3]])
    check_grad(lambda w: (F.embedding(idx, w) ** 2).sum(), (4, 3), rng=rng)
    check_grad(lambda q, k, v: F.attention(q, k, v, causal=True).sum(), (1, 2, 3, 4),
               (1, 2, 3, 4), (1, 2, 3, 4), rng=rng, tol=1e-5)


def test_grad_accumulates_and_no_grad():
    x = bm.Tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad, [5.0, 7.0])
    with bm.no_grad():
        y = x * 2
    assert not y.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        y.sum().backward()


def test_backward_errors():
    x = bm.Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="non-scalar"):
        (x * 2).backward()
    with pytest.raises(TypeError, match="floating-point"):
        bm.Tensor(np.arange(3), requires_grad=True)
    with pytest.raises(ValueError, match="item"):
        x.item()


def test_deep_graph_no_recursion_limit():
    x = bm.Tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.full(3, 1.0001 ** 5000), rtol=1e-6)


def test_matches_torch_on_a_small_cnn(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 1, 10, 10)).astype(np.float32)
    y = np.array([1, 0, 3, 2])
    bm.manual_seed(3)
    from bigmodel import nn
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(64, 5))
    tm = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                             torch.nn.Flatten(), torch.nn.Linear(64, 5))
    with torch.no_grad():
        for (name, p), tp in zip(model.named_parameters(), tm.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    loss = F.cross_entropy(model(bm.Tensor(x)), y)
    loss.backward()
    tl = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x)), torch.from_numpy(y))
    tl.backward()
    assert abs(loss.item() - tl.item()) < 1e-5
    for p, tp in zip(model.parameters(), tm.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-4, atol=1e-5)


def _fake_cupy_python(code):
    """Run `code` in a fresh interpreter where tools/cuda_emu/fake_cupy stands in for CuPy
    (its arrays report the cupy module), so device-mix checks are tested without a GPU."""
    import os
    import subprocess
    import sys
    import textwrap
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    paths = [os.path.join(root, "tools", "cuda_emu", "fake_cupy")]
    if any(f.startswith("_core") for f in os.listdir(os.path.join(root, "python", "bigmodel"))):
        paths.append(os.path.join(root, "python"))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_device_mix_is_named():
    r = _fake_cupy_python("""
        import numpy as np, cupy, pytest, bigmodel as bm
        from bigmodel import nn
        cpu = bm.Tensor(np.ones((2, 3), np.float32))
        gpu = cpu.to("cuda")
        assert gpu.device == "cuda" and type(gpu.data).__module__ == "cupy"
        assert gpu.to("cpu").device == "cpu"
        with pytest.raises(ValueError, match=r"add: tensors on different devices: cpu \\(2, 3\\) and cuda \\(2, 3\\)"):
            cpu + gpu
        with pytest.raises(ValueError, match=r"Linear: input \\(2, 3\\) is on cuda but the layer's parameters are on cpu"):
            nn.Linear(3, 4)(gpu)
        with pytest.raises(ValueError, match="different devices"):
            bm.ops.matmul(cpu.data, gpu.data.reshape(3, 2))
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
        params = model.parameters()
        model.to("cuda")
        assert all(p.device == "cuda" for p in model.parameters())
        assert [id(p) for p in model.parameters()] == [id(p) for p in params]
        assert type(model[1].running_mean).__module__ == "cupy"
        model.to("cpu")
        assert all(p.device == "cpu" for p in model.parameters())
        assert isinstance(model[1].running_mean, np.ndarray) and type(model[1].running_mean) is np.ndarray
        print("ok")
        """)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr[-3000:]
