"""Data sets bundled with or read by bigmodel (nothing is downloaded at run time)."""
from .movielens import load_ml100k

__all__ = ["load_ml100k"]
