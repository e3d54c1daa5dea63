"""Seeding: ``bigmodel.manual_seed(n)`` fixes every random draw bigmodel makes (initialisation,
dropout, shuffling), so a CPU run repeats exactly."""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"manual_seed: seed must be an int, got {type(seed).__name__}")
    _rng = np.random.default_rng(int(seed))


def get_rng() -> np.random.Generator:
    return _rng
