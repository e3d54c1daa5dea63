"""cupyx stand-in (see fake_cupy/cupy)."""

import numpy as _np


def scatter_add(a, slices, value):
    """cupyx.scatter_add: a[slices] += value, repeated indices accumulated."""
    _np.add.at(a, slices, value)
