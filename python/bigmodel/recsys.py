"""Truncated-SVD recommender: global mean + regularized biases + a low-rank residual.

Model: r(u, i) ≈ mu + b_u + b_i + p_u · q_i.
1. mu is the mean training rating; the user and item biases minimize the squared error plus
   bias_reg * (|b_u|² + |b_i|²), by a few alternating exact (ALS) passes.
2. The residuals r - mu - b_u - b_i are a sparse users x items matrix (observed entries only).
   Its truncated SVD (bigmodel.ops.truncated_svd, on our SpMM) starts Soft-Impute (Mazumder,
   Hastie, Tibshirani, JMLR 2010): fill the unobserved entries with the current low-rank
   estimate, take the top-k SVD (our GEMM), shrink the singular values by `reg`
   (s -> max(s - reg, 0), the nuclear-norm proximal step), repeat `n_iter` times. The shrinkage
   is the regularization of the factors; plain truncation (reg = 0) overfits.
3. Unknown users or items get the bias-only prediction (a missing bias counts as 0).

>>> import numpy as np
>>> from bigmodel.recsys import SVDRecommender
>>> users = np.array([1, 1, 2, 2, 3]); items = np.array([10, 20, 10, 30, 20])
>>> m = SVDRecommender(k=1, n_iter=2).fit(users, items, np.array([5., 3., 4., 2., 1.]))
>>> float(m.predict(99, 10)) == float(m.mu + m.item_bias_of(10))   # unknown user: biases only
True
"""
from __future__ import annotations

import numpy as np

from .ops import truncated_svd


def _triples(user, item, rating, name):
    if item is None and rating is None:
        if hasattr(user, "user") and hasattr(user, "rating"):  # data.movielens.Ratings
            user, item, rating = user.user, user.item, user.rating
        else:
            a = np.asarray(user)
            if a.ndim != 2 or a.shape[1] < 3:
                raise ValueError(f"{name}: expected (user, item, rating) arrays or an (n, 3) "
                                 f"array, got shape {a.shape}")
            user, item, rating = a[:, 0], a[:, 1], a[:, 2]
    user, item = np.asarray(user), np.asarray(item)
    rating = np.asarray(rating, dtype=np.float64)
    if not (user.ndim == item.ndim == rating.ndim == 1 and len(user) == len(item) == len(rating)):
        raise ValueError(f"{name}: user, item and rating must be 1-D of equal length, got "
                         f"{user.shape}, {item.shape}, {rating.shape}")
    if not np.isfinite(rating).all():
        raise ValueError(f"{name}: rating contains NaN or Inf")
    return user, item, rating


class SVDRecommender:
    """Bias + truncated-SVD (Soft-Impute) rating model. See the module docstring.

    k: rank of the residual model; reg: singular-value shrinkage; bias_reg: L2 penalty of the
    biases; n_bias_iters: ALS passes for the biases; n_iter: Soft-Impute iterations (1 = a
    single shrunk truncated SVD of the sparse residual matrix); clip: prediction range.
    """

    def __init__(self, k=30, reg=15.0, bias_reg=5.0, n_bias_iters=5, n_iter=30,
                 clip=(1.0, 5.0), random_state=0):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"SVDRecommender: k must be an int >= 1, got {k!r}")
        for name, v in (("reg", reg), ("bias_reg", bias_reg)):
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"SVDRecommender: {name} must be >= 0, got {v!r}")
        if n_iter < 1 or n_bias_iters < 1:
            raise ValueError("SVDRecommender: n_iter and n_bias_iters must be >= 1")
        self.k, self.reg, self.bias_reg = int(k), float(reg), float(bias_reg)
        self.n_bias_iters, self.n_iter = int(n_bias_iters), int(n_iter)
        self.clip, self.random_state = clip, random_state

    # ---- fitting ----------------------------------------------------------------------------
    def fit(self, user, item=None, rating=None):
        """Fit on (user, item, rating) triples: three arrays, an (n, 3) array or a Ratings."""
        user, item, rating = _triples(user, item, rating, "fit")
        if len(rating) == 0:
            raise ValueError("fit: no ratings")
        self.users_, u = np.unique(user, return_inverse=True)
        self.items_, i = np.unique(item, return_inverse=True)
        nu, ni = len(self.users_), len(self.items_)
        self.mu = float(rating.mean())
        bu, bi = np.zeros(nu), np.zeros(ni)
        cu, ci = np.bincount(u, minlength=nu), np.bincount(i, minlength=ni)
        for _ in range(self.n_bias_iters):
            bu = np.bincount(u, rating - self.mu - bi[i], nu) / (self.bias_reg + cu)
            bi = np.bincount(i, rating - self.mu - bu[u], ni) / (self.bias_reg + ci)
        self.user_bias, self.item_bias = bu, bi
        self._u, self._i = u, i
        self._resid = rating - self.mu - bu[u] - bi[i]
        self._seen = (u, i)

        k = min(self.k, nu - 1, ni - 1)
        if k < 1:
            self.user_factors = np.zeros((nu, 0))
            self.item_factors = np.zeros((ni, 0))
            return self
        # Iteration 0: the sparse residual matrix (observed entries only), through our SpMM.
        u_, s, vt = truncated_svd(self.residual_matrix(), k, random_state=self.random_state)
        s = np.maximum(s - self.reg, 0)
        filled = np.zeros((nu, ni))
        for _ in range(self.n_iter - 1):
            # Soft-Impute: observed residuals, low-rank estimate elsewhere (dense; ML-100k is
            # 943 x 1682).
            np.matmul(u_ * s, vt, out=filled)
            filled[u, i] = self._resid
            u_, s, vt = truncated_svd(filled, k, n_iter=1, random_state=self.random_state)
            s = np.maximum(s - self.reg, 0)
        keep = s > 0
        self.singular_values = s[keep]
        self.user_factors = u_[:, keep] * s[keep]
        self.item_factors = vt[keep].T.copy()
        return self

    def residual_matrix(self):
        """The fitted residuals r - mu - b_u - b_i as a users x items SciPy CSR matrix."""
        import scipy.sparse as sp  # only here: SciPy is optional
        nu, ni = len(self.users_), len(self.items_)
        return sp.csr_matrix((self._resid, (self._u, self._i)), shape=(nu, ni))

    # ---- prediction -------------------------------------------------------------------------
    def _index(self, ids, known):
        ids = np.asarray(ids)
        pos = np.searchsorted(known, ids)
        pos = np.clip(pos, 0, len(known) - 1)
        found = known[pos] == ids
        return pos, found

    def item_bias_of(self, item):
        pos, found = self._index(item, self.items_)
        return np.where(found, self.item_bias[pos], 0.0)

    def predict(self, user, item):
        """Predicted ratings for (user, item) pairs (scalars or equal-length arrays)."""
        self._check_fitted()
        scalar = np.ndim(user) == 0 and np.ndim(item) == 0
        user, item = np.atleast_1d(user), np.atleast_1d(item)
        if user.shape != item.shape:
            raise ValueError(f"predict: user and item shapes differ: {user.shape} vs {item.shape}")
        pu, fu = self._index(user, self.users_)
        pi, fi = self._index(item, self.items_)
        p = self.mu + np.where(fu, self.user_bias[pu], 0.0) + np.where(fi, self.item_bias[pi], 0.0)
        both = fu & fi
        if self.user_factors.shape[1]:
            p[both] += np.einsum("nk,nk->n", self.user_factors[pu[both]],
                                 self.item_factors[pi[both]])
        if self.clip is not None:
            p = np.clip(p, *self.clip)
        return p[0] if scalar else p

    def _scores(self, rows):
        """Unclipped predicted ratings of every known item for known-user rows (len(rows), ni)."""
        s = (self.mu + self.user_bias[rows, None] + self.item_bias[None, :])
        if self.user_factors.shape[1]:
            s = s + self.user_factors[rows] @ self.item_factors.T
        return s

    def recommend(self, user, n=10, exclude_seen=True):
        """The n item ids with the highest predicted rating for `user` (best first).

        An unknown user gets the items with the highest biases.
        """
        self._check_fitted()
        pos, found = self._index([user], self.users_)
        if found[0]:
            s = self._scores(pos)[0]
            if exclude_seen:
                s[self._i[self._u == pos[0]]] = -np.inf
        else:
            s = self.item_bias.copy()
        n = min(int(n), int(np.isfinite(s).sum()))
        top = np.argpartition(-s, n - 1)[:n] if n > 0 else np.array([], int)
        top = top[np.argsort(-s[top], kind="stable")]
        return self.items_[top]

    def evaluate(self, test, item=None, rating=None, *, n=10, threshold=4.0):
        """RMSE and MAE of the rating predictions on held-out triples, and precision@n and
        recall@n of the top-n recommendations (training items excluded) against each test
        user's relevant items (test rating >= threshold), averaged over users with any."""
        self._check_fitted()
        user, item, rating = _triples(test, item, rating, "evaluate")
        p = self.predict(user, item)
        out = {"rmse": float(np.sqrt(np.mean((p - rating) ** 2))),
               "mae": float(np.mean(np.abs(p - rating)))}
        rel = rating >= threshold
        pu, fu = self._index(user, self.users_)
        pi, fi = self._index(item, self.items_)
        m = rel & fu
        users = np.unique(pu[m])
        if len(users) == 0:
            out[f"precision@{n}"] = out[f"recall@{n}"] = float("nan")
            return out
        seen = np.zeros((len(self.users_), len(self.items_)), bool)
        seen[self._u, self._i] = True
        prec, rec = [], []
        for chunk in np.array_split(users, max(1, len(users) // 256)):
            s = self._scores(chunk)
            s[seen[chunk]] = -np.inf
            top = np.argpartition(-s, n - 1, axis=1)[:, :n]
            for row, uu in enumerate(chunk):
                sel = m & (pu == uu)
                relevant = set(pi[sel & fi].tolist())
                n_rel = int(sel.sum())
                hits = len(relevant.intersection(top[row].tolist()))
                prec.append(hits / n)
                rec.append(hits / n_rel)
        out[f"precision@{n}"] = float(np.mean(prec))
        out[f"recall@{n}"] = float(np.mean(rec))
        return out

    def _check_fitted(self):
        if not hasattr(self, "users_"):
            raise RuntimeError("SVDRecommender: call fit() first")


def train_test_split(ratings, test_size=0.2, random_state=0):
    """Random split of a Ratings (or (n, 3) array) into (train, test) of the same type."""
    if hasattr(ratings, "_fields"):
        n = len(ratings[0])
        perm = np.random.default_rng(random_state).permutation(n)
        cut = n - int(round(test_size * n))
        return (type(ratings)(*(a[perm[:cut]] for a in ratings)),
                type(ratings)(*(a[perm[cut:]] for a in ratings)))
    a = np.asarray(ratings)
    perm = np.random.default_rng(random_state).permutation(len(a))
    cut = len(a) - int(round(test_size * len(a)))
    return a[perm[:cut]], a[perm[cut:]]
