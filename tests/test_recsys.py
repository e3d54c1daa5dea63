"""SVDRecommender and the MovieLens-100k loader."""
from __future__ import annotations

import os

import numpy as np
import pytest

from bigmodel.data import movielens
from bigmodel.recsys import SVDRecommender, train_test_split

pytest.importorskip("scipy.sparse")

ML100K = movielens.recbole_path()
needs_ml100k = pytest.mark.skipif(
    ML100K is None, reason="MovieLens-100k absent: `pip install --no-deps recbole==1.2.1` "
                           "(the test extra cannot install it: it needs --no-deps)")


def _synthetic(rng, nu=60, ni=40, rank=3, density=0.5):
    p = rng.standard_normal((nu, rank))
    q = rng.standard_normal((ni, rank))
    full = 3 + 0.3 * rng.standard_normal(nu)[:, None] + 0.5 * rng.standard_normal(ni)[None] \
        + 0.5 * p @ q.T
    mask = rng.random((nu, ni)) < density
    u, i = np.nonzero(mask)
    return u + 100, i + 1000, np.clip(full[u, i], 1, 5), full


def test_recommender_learns_low_rank(rng):
    u, i, r, full = _synthetic(rng)
    perm = rng.permutation(len(r))
    cut = int(0.8 * len(r))
    tr_, te_ = perm[:cut], perm[cut:]
    bias_only = SVDRecommender(k=1, reg=1e9, n_iter=1).fit(u[tr_], i[tr_], r[tr_])
    model = SVDRecommender(k=5, reg=1.0, n_iter=20).fit(u[tr_], i[tr_], r[tr_])
    e0 = bias_only.evaluate(u[te_], i[te_], r[te_])
    e1 = model.evaluate(u[te_], i[te_], r[te_])
    assert e1["rmse"] < 0.7 * e0["rmse"]
    assert set(e1) == {"rmse", "mae", "precision@10", "recall@10"}
    assert 0 <= e1["precision@10"] <= 1 and 0 <= e1["recall@10"] <= 1


def test_recommender_unknown_and_recommend(rng):
    u, i, r, _ = _synthetic(rng)
    m = SVDRecommender(k=3, n_iter=3).fit(np.stack([u, i, r], axis=1))
    # unknown user / item: bias-only, no error
    assert np.isclose(m.predict(-5, 1000), np.clip(m.mu + m.item_bias_of(1000), 1, 5))
    assert np.isclose(m.predict(100, -7), np.clip(m.mu + m.user_bias[0], 1, 5))
    p = m.predict(np.array([100, 101, -1]), np.array([1000, -2, -3]))
    assert p.shape == (3,) and np.all((p >= 1) & (p <= 5))
    rec = m.recommend(100, n=10)
    assert len(rec) == 10 and len(set(rec.tolist())) == 10
    seen = set(i[u == 100].tolist())
    assert not seen.intersection(rec.tolist())
    assert len(m.recommend(-1, n=5)) == 5  # unknown user: most popular by bias
    rec_all = m.recommend(100, n=10, exclude_seen=False)
    assert len(rec_all) == 10
    with pytest.raises(ValueError, match="equal length"):
        m.fit(u, i[:-1], r)
    with pytest.raises(RuntimeError, match="fit"):
        SVDRecommender().predict(1, 2)
    with pytest.raises(ValueError, match="k must"):
        SVDRecommender(k=0)


def test_load_ml100k_from_u_data(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n")
    r = movielens.load_ml100k(p)
    assert r.user.tolist() == [196, 186, 22] and r.item.tolist() == [242, 302, 377]
    assert r.rating.tolist() == [3.0, 3.0, 1.0] and r.timestamp[0] == 881250949
    assert movielens.load_ml100k(tmp_path).user.tolist() == [196, 186, 22]  # a folder works too
    with pytest.raises(FileNotFoundError, match="recbole"):
        movielens.load_ml100k(tmp_path / "missing.data")


def test_load_ml100k_missing_says_how(monkeypatch):
    monkeypatch.setattr(movielens, "recbole_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps recbole==1.2.1"):
        movielens.load_ml100k()


@needs_ml100k
def test_load_ml100k_recbole():
    r = movielens.load_ml100k()
    assert len(r.rating) == 100_000
    assert len(np.unique(r.user)) == 943 and len(np.unique(r.item)) == 1682
    assert r.rating.min() == 1 and r.rating.max() == 5


@needs_ml100k
def test_recommender_ml100k_rmse():
    train, test = train_test_split(movielens.load_ml100k(), 0.2, random_state=0)
    model = SVDRecommender().fit(train)
    ev = model.evaluate(test)
    bias = SVDRecommender(k=1, reg=1e9, n_iter=1).fit(train).evaluate(test)
    assert bias["rmse"] > 0.935          # biases alone
    assert ev["rmse"] <= 0.93, ev        # the target
    assert ev["mae"] < bias["mae"]
    assert ev["precision@10"] > 0.0
