"""cupyx.scipy.sparse stand-in: CSR/CSC (and a bare COO) matrices whose index and data arrays are
fake CuPy arrays (NumPy-backed), as much of the interface as the bigmodel tests use. The arrays
are stored as given (no validation), so tests can build bad matrices as with the real cupyx."""
import numpy as _np

import cupy as _cp


def _scipy():
    import scipy.sparse as sp
    return sp


class spmatrix:
    format = ""
    ndim = 2

    @property
    def dtype(self):
        return self.data.dtype

    def get(self):
        """The matrix as a SciPy matrix (host copy)."""
        sp = _scipy()
        cls = getattr(sp, f"{self.format}_matrix")
        return cls((_cp.asnumpy(self.data), _cp.asnumpy(self.indices), _cp.asnumpy(self.indptr)),
                   shape=self.shape)

    def toarray(self):
        return _cp.asarray(self.get().toarray())

    def tocsr(self):
        return csr_matrix(self.get().tocsr())

    def tocsc(self):
        return csc_matrix(self.get().tocsc())

    def tocoo(self):
        return coo_matrix(self.get().tocoo())

    def astype(self, dtype):
        return type(self)((self.data.astype(dtype), self.indices, self.indptr), shape=self.shape)

    def __repr__(self):
        return f"<fake cupyx {self.format} matrix {self.shape}, {self.nnz} stored>"


class _compressed(spmatrix):
    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        if isinstance(arg1, spmatrix):
            arg1 = arg1.get()
        if isinstance(arg1, tuple) and len(arg1) == 3:
            data, indices, indptr = arg1
            if shape is None:
                raise ValueError("this stand-in needs shape= with (data, indices, indptr)")
        else:
            sp = _scipy()
            m = arg1 if sp.issparse(arg1) else sp.csr_matrix(_cp.asnumpy(arg1))
            m = m.asformat(self.format)
            data, indices, indptr, shape = m.data, m.indices, m.indptr, m.shape
        self.data = _cp.asarray(data, dtype=dtype)
        self.indices = _cp.asarray(indices)
        self.indptr = _cp.asarray(indptr)
        self.shape = tuple(int(s) for s in shape)

    @property
    def nnz(self):
        return int(self.indptr[-1])


class csr_matrix(_compressed):
    format = "csr"


class csc_matrix(_compressed):
    format = "csc"


class coo_matrix(spmatrix):
    format = "coo"

    def __init__(self, arg1, shape=None, dtype=None, copy=False):
        m = arg1.tocoo() if _scipy().issparse(arg1) else _scipy().coo_matrix(_cp.asnumpy(arg1))
        self.data = _cp.asarray(m.data, dtype=dtype)
        self.row, self.col = _cp.asarray(m.row), _cp.asarray(m.col)
        self.shape = tuple(int(s) for s in m.shape)

    @property
    def nnz(self):
        return int(self.data.size)

    def get(self):
        return _scipy().coo_matrix((_cp.asnumpy(self.data), (_cp.asnumpy(self.row),
                                                             _cp.asnumpy(self.col))),
                                   shape=self.shape)


def issparse(x):
    return isinstance(x, spmatrix)
