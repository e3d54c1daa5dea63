"""cupyx stand-in (see fake_cupy/cupy)."""
