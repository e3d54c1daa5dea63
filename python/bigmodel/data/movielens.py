"""MovieLens-100k (943 users, 1682 movies, 100,000 ratings 1-5) from a local file.

bigmodel never downloads data. ``load_ml100k()`` finds the copy that ships inside the PyPI
package recbole 1.2.1 (``pip install --no-deps recbole==1.2.1``; the file is located with
importlib without importing recbole), or reads the file given as ``path``: GroupLens' ``u.data``
(tab-separated user, item, rating, timestamp; no header) or RecBole's ``ml-100k.inter`` (the
same columns with a header line), or a folder holding either.
"""
from __future__ import annotations

import importlib.util
import os
from typing import NamedTuple

import numpy as np

HOWTO = ("MovieLens-100k not found. Either `pip install --no-deps recbole==1.2.1` (it ships "
         "dataset_example/ml-100k/ml-100k.inter), or download ml-100k.zip from "
         "https://grouplens.org/datasets/movielens/100k/ and pass path='.../ml-100k/u.data'.")


class Ratings(NamedTuple):
    """Parallel arrays, one entry per rating; ids are MovieLens' own (1-based) ids."""
    user: np.ndarray       # int64
    item: np.ndarray       # int64
    rating: np.ndarray     # float64, 1..5
    timestamp: np.ndarray  # int64, seconds since the epoch


def recbole_path():
    """Path of ml-100k.inter inside an installed recbole, or None (recbole is not imported)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = os.path.join(root, "dataset_example", "ml-100k", "ml-100k.inter")
        if os.path.isfile(p):
            return p
    return None


def _resolve(path):
    if path is None:
        p = recbole_path()
        if p is None:
            raise FileNotFoundError(HOWTO)
        return p
    path = os.fspath(path)
    if os.path.isdir(path):
        for name in ("u.data", "ml-100k.inter"):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise FileNotFoundError(f"load_ml100k: no u.data or ml-100k.inter in {path!r}. {HOWTO}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load_ml100k: {path!r} does not exist. {HOWTO}")
    return path


def load_ml100k(path=None) -> Ratings:
    """Load MovieLens-100k ratings as (user, item, rating, timestamp) arrays.

    >>> r = load_ml100k()  # doctest: +SKIP
    >>> len(r.rating), r.user.max(), r.item.max()  # doctest: +SKIP
    (100000, 943, 1682)
    """
    p = _resolve(path)
    with open(p, "r", encoding="utf-8") as f:
        first = f.readline()
    header = 1 if any(c.isalpha() for c in first) else 0
    try:
        d = np.loadtxt(p, delimiter="\t", skiprows=header, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise ValueError(f"load_ml100k: {p!r} is not a tab-separated user/item/rating/timestamp "
                         f"file ({e})") from None
    if d.shape[1] < 3:
        raise ValueError(f"load_ml100k: {p!r} has {d.shape[1]} columns, expected 4 "
                         "(user, item, rating, timestamp)")
    ts = d[:, 3].astype(np.int64) if d.shape[1] > 3 else np.zeros(len(d), np.int64)
    return Ratings(d[:, 0].astype(np.int64), d[:, 1].astype(np.int64), d[:, 2].copy(), ts)
