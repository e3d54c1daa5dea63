"""Training-step rows for compare.py: the seeds' MNIST CNN (batch 64, SGD momentum 0.9) and the
Transformer text classifier, ours vs the same model in PyTorch (CPU), same run, same data."""
from __future__ import annotations

import numpy as np

from timing import interleaved


def _torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


def cnn_step_fns(batch=64):
    import bigmodel as bm
    from bigmodel import functional as F
    from bigmodel import optim
    from bigmodel.models import mnist_cnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    bm.manual_seed(0)
    model = mnist_cnn()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def ours():
        loss = F.cross_entropy(model(bm.Tensor(x)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fns = {"ours": ours}
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(bm.get_num_threads())
        tm = torch.nn.Sequential(
            torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3),
            torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(9216, 128),
            torch.nn.ReLU(), torch.nn.Linear(128, 10))
        topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)

        def theirs():
            loss = torch.nn.functional.cross_entropy(tm(tx), ty)
            topt.zero_grad()
            loss.backward()
            topt.step()
        fns["torch"] = theirs
    return fns


def rows(quick=False):
    fns = cnn_step_fns()
    if "torch" not in fns:
        return []
    t = interleaved(fns, reps=3 if quick else 5, rounds=2 if quick else 3)
    return [dict(workload="MNIST CNN train step (B64, SGD m0.9)", ours_ms=t["ours"] * 1e3,
                 anchor="torch", anchor_ms=t["torch"] * 1e3, flop=None,
                 note=f"{64 / t['ours']:.0f} img/s ours")]
