import os
import sys

# Short thread spins for OpenBLAS and libgomp, before either loads (see compare.py).
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("GOMP_SPINCOUNT", "20000")

sys.path.insert(0, os.path.dirname(__file__))
