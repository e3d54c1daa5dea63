"""Checkpoints: ``save(module_or_state, path)`` and ``load(path)`` -> state dict.

The safetensors format (through the `safetensors` package's NumPy API) when that package is
installed, else NumPy's .npz read with allow_pickle=False; loading never executes code. Writes
are atomic: a temporary file in the same folder, fsync, then rename, so an interrupted save
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np


_EMPTY = {"@{}": dict, "@[]": list}  # placeholders that keep empty containers in the file


def _flatten(obj, prefix=""):
    """Nested dicts/lists of arrays/numbers -> flat {'a/b': array}; list items are '#i'."""
    out = {}
    for k, v in obj.items():
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list, tuple)) and len(v) == 0:
            # An optimizer without momentum has a list of empty per-parameter states: keep it.
            out[f"{key}/{'@{}' if isinstance(v, dict) else '@[]'}"] = np.zeros(0, np.uint8)
        elif isinstance(v, dict):
            out.update(_flatten(v, key + "/"))
        elif isinstance(v, (list, tuple)):
            out.update(_flatten({str(i): x for i, x in enumerate(v)}, key + "/#"))
        else:
            out[key] = np.asarray(v, order="C")  # keeps 0-d arrays 0-d
    return out


def _unflatten(flat):
    root = {}
    for key, v in flat.items():
        parts = key.split("/")
        d = root
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = v

    def fix(d):
        if isinstance(d, dict):
            if len(d) == 1 and next(iter(d)) in _EMPTY:
                return _EMPTY[next(iter(d))]()
            d = {k: fix(v) for k, v in d.items()}
            if d and all(k.startswith("#") for k in d):
                return [d[f"#{i}"] for i in range(len(d))]
            return {k[1:] if k.startswith("#") else k: v for k, v in d.items()}
        return d
    return fix(root)


def save(obj, path):
    """Save a Module (its state_dict) or a (nested) dict of arrays to `path`, atomically."""
    from ..nn import Module
    state = obj.state_dict() if isinstance(obj, Module) else obj
    flat = _flatten(state)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bm-ckpt-", dir=folder)
    os.close(fd)
    try:
        try:
            from safetensors.numpy import save_file
            save_file(flat, tmp)
        except ImportError:
            with open(tmp, "wb") as f:
                np.savez(f, **flat)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load(path):
    """The state dict saved at `path`; a truncated or corrupt file raises ValueError naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint at {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    try:
        if magic.startswith(b"PK"):
            with np.load(path, allow_pickle=False) as z:
                flat = {k: z[k] for k in z.files}
        else:
            from safetensors.numpy import load_file
            flat = load_file(path)
    except Exception as e:
        raise ValueError(f"load: {path} is not a readable bigmodel checkpoint ({e})") from None
    return _unflatten(flat)
