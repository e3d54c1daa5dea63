"""nn.RNN / nn.LSTM / nn.GRU layers: torch parameter names and layout, values and gradients
against the NumPy reference and against torch (ragged lengths, layers, both directions)."""
from __future__ import annotations

import numpy as np
import pytest

import bigmodel as bm
from bigmodel import nn, reference


@pytest.mark.parametrize("cls", ["RNN", "LSTM", "GRU"])
def test_layer_matches_reference(rng, cls):
    bm.manual_seed(0)
    layer = getattr(nn, cls)(4, 6, num_layers=2, bidirectional=True)
    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    lens = np.array([5, 1, 3])
    out = layer(bm.Tensor(x), lengths=lens)
    y = out[0]
    ref_w = [tuple(w.data.astype(np.float64) for w in tup) for tup in layer._weights()]
    ref = getattr(reference, cls.lower())(x.astype(np.float64), ref_w, lengths=lens,
                                          bidirectional=True)
    np.testing.assert_allclose(y.data, ref[0], rtol=1e-4, atol=1e-5)
    assert y.shape == (3, 5, 12)
    assert np.all(y.data[1, 1:] == 0)  # past the end of a sequence: zeros


def test_lstm_grads_match_torch(rng):
    torch = pytest.importorskip("torch")
    bm.manual_seed(0)
    m = nn.LSTM(5, 7, num_layers=2, bidirectional=True)
    t = torch.nn.LSTM(5, 7, num_layers=2, bidirectional=True, batch_first=True)
    t.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    lens = np.array([6, 2, 4])
    xt = bm.Tensor(x, requires_grad=True)
    out, (h, c) = m(xt, lengths=lens)
    (out.sum() + (h * h).sum() + c.sum()).backward()
    tx = torch.from_numpy(x).requires_grad_()
    packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.from_numpy(lens), batch_first=True,
                                                     enforce_sorted=False)
    to, (th, tc) = t(packed)
    to, _ = torch.nn.utils.rnn.pad_packed_sequence(to, batch_first=True, total_length=6)
    (to.sum() + (th * th).sum() + tc.sum()).backward()
    np.testing.assert_allclose(out.data, to.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), atol=1e-5)
    for p, tp in zip(m.parameters(), t.parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), atol=1e-5)


def test_layer_bad_input():
    layer = nn.GRU(4, 6)
    with pytest.raises(ValueError, match=r"GRU\(4, 6\): expected input \(batch, time, 4\)"):
        layer(bm.Tensor(np.ones((2, 3, 5), np.float32)))
    with pytest.raises(ValueError, match="dropout"):
        nn.LSTM(4, 6, num_layers=2, dropout=0.5)


def test_lstm_classifier_learns_a_sequence_rule(rng):
    """Class = whether token 3 appears anywhere: needs memory across steps."""
    from bigmodel import functional as F
    from bigmodel import optim
    from bigmodel.models import LSTMClassifier
    from bigmodel.train import Trainer
    ids = rng.integers(4, 20, (512, 12))
    y = rng.integers(0, 2, 512)
    pos = rng.integers(0, 12, 512)
    ids[np.arange(512)[y == 1], pos[y == 1]] = 3
    bm.manual_seed(0)
    m = LSTMClassifier(20, embed_dim=16, hidden_size=32)
    tr = Trainer(m, optim.Adam(m.parameters(), lr=0.01), F.cross_entropy, ["accuracy"])
    tr.fit(ids, y, epochs=8, batch_size=32, verbose=0)
    assert tr.evaluate(ids, y)["accuracy"] > 0.9
