"""Dataset and DataLoader (batching, seeded shuffling, drop_last)."""
from __future__ import annotations

import numpy as np

from ..random import get_rng


class Dataset:
    """Anything with __len__ and __getitem__ returning a tuple of arrays."""

    def __len__(self):
        raise NotImplementedError

    def __getitem__(self, i):
        raise NotImplementedError


class TensorDataset(Dataset):
    """Arrays of equal first dimension, indexed together (fast batched indexing)."""

    def __init__(self, *arrays):
        if not arrays:
            raise ValueError("TensorDataset: needs at least one array")
        n = len(arrays[0])
        for i, a in enumerate(arrays):
            if len(a) != n:
                raise ValueError(f"TensorDataset: array {i} has {len(a)} items, array 0 has {n}")
        # CuPy arrays stay on the GPU (batches are sliced there); anything else becomes NumPy
        self.arrays = tuple(a if type(a).__module__.split(".")[0] == "cupy" else np.asarray(a)
                            for a in arrays)

    def __len__(self):
        return len(self.arrays[0])

    def __getitem__(self, idx):
        return tuple(a[idx] for a in self.arrays)


class DataLoader:
    """Batches of a dataset: shuffle with a seed (or bigmodel.manual_seed), drop_last.

    >>> import numpy as np
    >>> from bigmodel.data import DataLoader, TensorDataset
    >>> dl = DataLoader(TensorDataset(np.arange(10), np.arange(10)), batch_size=4)
    >>> [len(x) for x, _ in dl]
    [4, 4, 2]
    """

    def __init__(self, dataset, batch_size=32, shuffle=False, drop_last=False, seed=None):
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1, got {batch_size}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = shuffle, drop_last
        self._rng = np.random.default_rng(seed) if seed is not None else None

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.dataset)
        order = (self._rng or get_rng()).permutation(n) if self.shuffle else np.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                return
            if isinstance(self.dataset, TensorDataset):
                yield self.dataset[np.sort(idx) if not self.shuffle else idx]
            else:
                items = [self.dataset[int(i)] for i in idx]
                yield tuple(np.stack(col) for col in zip(*items))
