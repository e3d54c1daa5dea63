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


def lstm_step_fns(batch=64, T=53, vocab=10000):
    """Embedding(10000,128) -> LSTM(256) -> Linear(2) on ragged lengths, Adam (no dropout)."""
    import bigmodel as bm
    from bigmodel import functional as F
    from bigmodel import optim
    from bigmodel.models import LSTMClassifier
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, T + 1, batch)
    ids = rng.integers(2, vocab, (batch, T))
    ids[np.arange(T)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, 2, batch)
    bm.manual_seed(0)
    model = LSTMClassifier(vocab, dropout=0.0)
    opt = optim.Adam(model.parameters(), lr=1e-3)

    def ours():
        loss = F.cross_entropy(model(ids, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    fns = {"ours": ours}
    torch = _torch()
    if torch is not None:
        class TorchLSTM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(vocab, 128, padding_idx=0)
                self.lstm = torch.nn.LSTM(128, 256, batch_first=True)
                self.head = torch.nn.Linear(256, 2)

            def forward(self, x, lens):
                packed = torch.nn.utils.rnn.pack_padded_sequence(self.embed(x), lens,
                                                                 batch_first=True,
                                                                 enforce_sorted=False)
                _, (h, _) = self.lstm(packed)
                return self.head(h[-1])
        tm = TorchLSTM()
        topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        tx, tl, ty = torch.from_numpy(ids), torch.from_numpy(lengths), torch.from_numpy(y)

        def theirs():
            loss = torch.nn.functional.cross_entropy(tm(tx, tl), ty)
            topt.zero_grad()
            loss.backward()
            topt.step()
        fns["torch"] = theirs
    return fns


def rows(quick=False):
    out = []
    for name, make, per in (("MNIST CNN train step (B64, SGD m0.9)", cnn_step_fns, "img"),
                            ("LSTM text classifier train step (B64 T53, Adam)", lstm_step_fns,
                             "seq")):
        fns = make()
        if "torch" not in fns:
            return []
        t = interleaved(fns, reps=3 if quick else 5, rounds=2 if quick else 3)
        out.append(dict(workload=name, ours_ms=t["ours"] * 1e3, anchor="torch",
                        anchor_ms=t["torch"] * 1e3, flop=None,
                        note=f"{64 / t['ours']:.0f} {per}/s ours"))
    return out
