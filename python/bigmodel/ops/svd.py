"""Truncated SVD of dense or sparse matrices, and the CSR x dense product (``spmm_csr``) under it.

``truncated_svd(a, k, method='randomized')`` is the Halko–Martinsson–Tropp range finder (Halko,
Martinsson, Tropp, SIAM Review 2011, Alg. 4.4) with power iterations; ``method='lanczos'`` is a
thick-restarted block Lanczos on AᵀA or AAᵀ (Wu & Simon 2000; Stewart's Krylov–Schur 2001; full
reorthogonalization, bounded basis) run until the residuals of the top-k Ritz triplets certify
``tol`` (σ error <= tol * σ1), for slowly decaying spectra and near-machine-precision results.
Every pass over A is our GEMM (dense) or our CSR SpMM (sparse, C++ OpenMP + SIMD, both
A·X and Aᵀ·X without forming Aᵀ); the tall-skinny blocks are orthonormalized with CholeskyQR2
on our GEMM (Fukaya et al. 2014), shifted CholeskyQR3 when a block is ill-conditioned, and
Gram-eigenvector completion when it is rank deficient; only (k+p) x (k+p) matrices go to
LAPACK (numpy.linalg), the rank-deficient final SVD excepted.

CuPy arrays and ``cupyx.scipy.sparse`` CSR/CSC matrices run the same code on the GPU: every pass
over A is our CUDA GEMM (dense) or our CUDA CSR SpMM (sparse; Aᵀ·X is the same kernel on Aᵀ,
transposed once per call by our counting-sort kernel), the tall-skinny blocks stay on the device
(CholeskyQR2: Gram matrix and the triangular solve's product by our CUDA GEMM, in float64), and
only (k+p) x (k+p) matrices go to the host (numpy.linalg). The random test matrix is drawn on the
host from the same generator as on the CPU, so the same random_state gives the same result on both
up to rounding. Results come back as CuPy arrays.
"""
from __future__ import annotations

import contextlib
import numbers
import warnings

import numpy as np

from . import _backend
from ._backend import _core
from .gemm import gemm

_METHODS = ("randomized", "lanczos")
_PAD = 16  # working blocks get rows padded to 16 elements: full SIMD vectors in the SpMM kernel


# ---- argument checks ---------------------------------------------------------------------------

def _is_sparse(a):
    return (type(a).__module__.startswith(("scipy.sparse", "cupyx.scipy.sparse"))
            and hasattr(a, "format"))


def _check_matrix(fn, a, name="a"):
    """Returns ('dense', ndarray) or ('csr'|'csc', scipy matrix); raises TypeError/ValueError."""
    if _is_sparse(a):
        if a.format not in ("csr", "csc"):
            raise TypeError(f"{fn}: {name} must be a dense array or a SciPy CSR/CSC matrix, got "
                            f"sparse format {a.format!r} ({name}.shape={a.shape}); convert it "
                            f"with {name}.tocsr()")
        if a.dtype not in (np.float32, np.float64):
            raise TypeError(f"{fn}: {name} must be float32 or float64, got dtype {a.dtype}")
        if len(a.shape) != 2:
            raise ValueError(f"{fn}: {name} must be 2-D, got shape {a.shape}")
        if not np.isfinite(a.data).all():
            raise ValueError(f"{fn}: {name} contains NaN or Inf ({name}.shape={a.shape})")
        return a.format, a
    if not (isinstance(a, np.ndarray) or _backend._is_cupy(a)):
        raise TypeError(f"{fn}: {name} must be a NumPy array or a SciPy CSR/CSC matrix, got "
                        f"{type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got dtype {a.dtype} "
                        f"({name}.shape={a.shape})")
    if a.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2-D, got {name}.shape={a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{fn}: {name} contains NaN or Inf ({name}.shape={a.shape})")
    return "dense", a


def _csr_parts(a):
    """indptr, indices, data of a CSR/CSC matrix: contiguous, one index dtype (int32 or int64)."""
    it = np.int32 if a.indptr.dtype == np.int32 and a.indices.dtype == np.int32 else np.int64
    return (np.ascontiguousarray(a.indptr, dtype=it), np.ascontiguousarray(a.indices, dtype=it),
            np.ascontiguousarray(a.data))


def _empty(shape, dtype, xp=np):
    """Uninitialised array; on the host 64-byte aligned (a cache line: NumPy only promises 16,
    and SpMM with rows straddling cache lines ran 25-35% slower: ML-100k, K = 30, one thread,
    A·X 0.36 vs 0.27 ms, Aᵀ·Y 0.50 vs 0.37). CuPy allocations are 256-byte aligned already."""
    if xp is not np:
        return xp.empty(shape, dtype)
    item = np.dtype(dtype).itemsize
    buf = np.empty(shape[0] * shape[1] * item + 64, np.uint8)
    off = (-buf.ctypes.data) % 64 // item
    return buf.view(dtype)[off:off + shape[0] * shape[1]].reshape(shape)


def _padded(rows, cols, dtype, xp=np):
    """Uninitialised (rows, cols) array whose rows are padded to a multiple of _PAD elements."""
    ld = -(-cols // _PAD) * _PAD
    return _empty((rows, ld), dtype, xp)[:, :cols]


# ---- host / device -------------------------------------------------------------------------------
# The algorithm below runs on NumPy or CuPy blocks alike: tall blocks stay where A is, small
# (k+p)-sized matrices are NumPy. On NumPy every helper here is the identity.

def _is_gpu(x):
    return _backend._is_cupy(x) or type(x).__module__.startswith("cupyx.")


def _xp(x):
    """numpy, or cupy for CuPy arrays and cupyx sparse matrices."""
    if _is_gpu(x):
        import cupy
        return cupy
    return np


def _host(x):
    """x as a NumPy array (a device-to-host copy for CuPy; x itself for NumPy)."""
    if _backend._is_cupy(x):
        import cupy
        return cupy.asnumpy(x)
    return x


def _to(xp, x):
    """The host array x on xp's device (x itself for NumPy)."""
    return x if xp is np else xp.asarray(x)


def _as64(y):
    if _backend._is_cupy(y):
        return y.astype(np.float64, copy=False)
    return np.asarray(y, np.float64)


# Split-K on the GPU: the SVD's products with a long K and a small output (Gram matrices
# YᵀY with K = m, Qᵀ·A as an l x n output with K = m, A·X as m x l) give our GEMM few output tiles
# (128x128 fp32, 64x64 fp64): a 74 x 74 Gram of a 100000-row block is 4 blocks on a GPU with 132
# SMs. The K range is cut into s equal chunks, the partial products run as one batched GEMM
# (batch strides step along K), and the partials are summed in a fixed order (deterministic).
_SPLIT_BLOCKS = 264   # ~2 blocks per SM on an H100 (132 SMs; the fp32 kernel runs 2 per SM)
_SPLIT_MIN_K = 256    # K per chunk at least: the partials cost s * M * N extra traffic


def _gemm_host(a, b, c, alpha, beta, out):
    """gemm on the SVD's own NumPy blocks without the public checks (~10 us a call; an ML-100k
    solve makes ~50 calls): 2-D, one dtype, aligned, out (when given) of the result's shape and
    overlapping neither a nor b (it may be c)."""
    if out is None:
        shape = (a.shape[0], b.shape[1])  # small outputs (Gram matrices) need no alignment
        out = np.empty(shape, a.dtype) if shape[0] * shape[1] < 8192 else _empty(shape, a.dtype)
    if c is not None and beta != 0:
        if c is not out:
            out[...] = c
    else:
        beta = 0.0
    if out.size:
        _core.gemm(a[None], b[None], out[None], float(alpha), float(beta), "native")
    return out


def _mm(a, b, c=None, *, alpha=1.0, beta=0.0, trans_a=False, out=None):
    """gemm(a, b, c, alpha=, beta=, trans_a=, out=) for 2-D operands, split along K on the GPU
    when the output alone has too few tiles to fill the GPU (see above)."""
    if not _backend._is_cupy(a):
        return _gemm_host(a.T if trans_a else a, b, c, alpha, beta, out)
    if c is not None:
        return gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, out=out)
    a_op = a.T if trans_a else a
    (M, K), N = a_op.shape, b.shape[1]
    tile = 128 if a.dtype == np.float32 else 64
    tiles = -(-M // tile) * -(-N // tile)
    s = min(-(-_SPLIT_BLOCKS // tiles), K // _SPLIT_MIN_K, 64) if tiles else 1
    if s < 2 or a.dtype != b.dtype or a.dtype not in (np.float32, np.float64):
        return gemm(a, b, trans_a=trans_a, out=out)
    import cupy
    mod = _backend.cuda()
    kc = K // s
    item = a.itemsize
    ra, ca = a_op.strides[0] // item, a_op.strides[1] // item
    rb, cb = b.strides[0] // item, b.strides[1] // item
    part = cupy.empty((s, M, N), a.dtype)
    mod.gemm(a_op.data.ptr, b.data.ptr, part.data.ptr, s, M, N, kc, [kc * ca, ra, ca],
             [kc * rb, rb, cb], [M * N, N, 1], str(a.dtype), str(a.dtype), 1.0, 0.0, "native",
             cupy.cuda.get_current_stream().ptr)
    total = part.sum(axis=0)
    if s * kc < K:  # the K % s leftover columns
        gemm(a_op[:, s * kc:], b[s * kc:], total, beta=1.0, out=total)
    if out is None:
        return total
    out[...] = total
    return out


# ---- sparse x dense ----------------------------------------------------------------------------

def spmm_csr(a, x, *, transpose=False, out=None):
    """``a @ x`` (or ``a.T @ x`` with ``transpose``) for a SciPy CSR matrix ``a`` and dense ``x``.

    Our C++ kernel (OpenMP over rows balanced by nonzeros, SIMD over the columns of x); the
    transposed product reads ``a`` as stored. A CSC matrix is accepted too (it is the CSR form of
    its transpose). float32/float64; ``x`` is cast to ``a``'s dtype. A ``cupyx.scipy.sparse``
    CSR/CSC matrix with a CuPy ``x`` runs our CUDA kernel (merge-path SpMM; the other
    orientation is first built by our transpose kernel) and returns a CuPy array.

    >>> import numpy as np, scipy.sparse as sp
    >>> from bigmodel.ops import spmm_csr
    >>> a = sp.csr_matrix(np.array([[1., 0.], [0., 2.]]))
    >>> spmm_csr(a, np.ones((2, 3)))
    array([[1., 1., 1.],
           [2., 2., 2.]])
    """
    for name, v in (("x", x), ("out", out)):
        if _backend._is_cupy(v) and not _is_gpu(a):
            raise ValueError(f"spmm_csr: arrays are on different devices: a on CPU (scipy), "
                             f"{name} on GPU (cupy)")
    fmt, a = _check_matrix("spmm_csr", a)
    if fmt == "dense":
        raise TypeError("spmm_csr: a must be a SciPy CSR/CSC matrix, got a dense array")
    gpu = _is_gpu(a) or _is_gpu(x) or _is_gpu(out)
    if gpu:  # NumPy/CuPy mixes -> ValueError naming the arguments
        _backend.array_module("spmm_csr", a=a.data, x=x, out=out)
    elif not isinstance(x, np.ndarray):
        raise TypeError(f"spmm_csr: x must be a NumPy array, got {type(x).__name__}")
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"spmm_csr: x must be float32 or float64, got dtype {x.dtype} "
                        f"(x.shape={x.shape})")
    if x.ndim != 2:
        raise ValueError(f"spmm_csr: x must be 2-D, got x.shape={x.shape}")
    m, n = a.shape
    rows_x, rows_y = (m, n) if transpose else (n, m)
    if x.shape[0] != rows_x:
        raise ValueError(f"spmm_csr: x has {x.shape[0]} rows, expected {rows_x} "
                         f"(a.shape={a.shape}, x.shape={x.shape}, transpose={transpose})")
    if gpu:
        return _spmm_csr_cuda(fmt, a, x, bool(transpose), out)
    x = np.asarray(x, dtype=a.dtype)
    if x.shape[1] and (x.strides[1] != x.itemsize or x.strides[0] < x.shape[1] * x.itemsize):
        x = np.ascontiguousarray(x)
    if out is None:
        out = np.empty((rows_y, x.shape[1]), a.dtype)
    elif not isinstance(out, np.ndarray):
        raise TypeError(f"spmm_csr: out must be a numpy.ndarray, got {type(out).__name__}")
    elif out.shape != (rows_y, x.shape[1]) or out.dtype != a.dtype:
        raise ValueError(f"spmm_csr: out must be {(rows_y, x.shape[1])} {a.dtype}, got "
                         f"{out.shape} {out.dtype}")
    elif not out.flags.writeable:
        raise ValueError("spmm_csr: out is read-only")
    if out.size == 0:
        return out
    if rows_x == 0 or a.nnz == 0:
        out[...] = 0
        return out
    # The kernel writes rows with unit stride; any other out is written through a temporary.
    target = out
    if out.strides[1] != out.itemsize or out.strides[0] < out.shape[1] * out.itemsize:
        target = np.empty(out.shape, out.dtype)
    indptr, indices, data = _csr_parts(a)
    if fmt == "csr":
        _core.spmm_csr(indptr, indices, data, x, target, m, n, bool(transpose))
    else:  # CSC of a == CSR of a.T (n x m)
        _core.spmm_csr(indptr, indices, data, x, target, n, m, not transpose)
    if target is not out:
        out[...] = target
    return out


def _rows_contiguous(x):
    """x (2-D) has unit column stride and a row stride of at least one row: the kernels' layout."""
    item = x.itemsize
    return ((x.shape[1] <= 1 or x.strides[1] == item) and x.strides[0] >= x.shape[1] * item
            and x.strides[0] % item == 0)


class _CsrCuda:
    """A CSR matrix on the GPU (CuPy arrays: indptr, indices, data) and our CUDA kernels on it.

    Workspace is allocated here from CuPy's pool; the kernels run on CuPy's current stream.
    """

    def __init__(self, rows, cols, indptr, indices, data):
        self.rows, self.cols = int(rows), int(cols)
        self.indptr, self.indices, self.data = indptr, indices, data
        self.mod = _backend.cuda()

    @classmethod
    def of(cls, a, fmt):
        """The CSR form of a (fmt 'csr') or of a.T (fmt 'csc': CSC of a = CSR of a.T)."""
        import cupy
        both32 = a.indptr.dtype == np.int32 and a.indices.dtype == np.int32
        it = np.int32 if both32 else np.int64
        parts = (cupy.ascontiguousarray(a.indptr, dtype=it),
                 cupy.ascontiguousarray(a.indices, dtype=it), cupy.ascontiguousarray(a.data))
        m, n = (int(s) for s in a.shape)
        return cls(m, n, *parts) if fmt == "csr" else cls(n, m, *parts)

    def _args(self):
        return (self.indptr.data.ptr, self.indptr.size, self.indices.data.ptr, self.indices.size,
                self.data.data.ptr, self.data.size, self.rows, self.cols, str(self.indices.dtype),
                str(self.data.dtype))

    def transpose(self):
        """The CSR form of A.T, built on the GPU (stable counting sort by column)."""
        import cupy
        ip = cupy.empty(self.cols + 1, self.indptr.dtype)
        ix = cupy.empty(self.indices.size, self.indices.dtype)
        dx = cupy.empty(self.data.size, self.data.dtype)
        nbytes = self.mod.csr_transpose_workspace_bytes(self.rows, self.cols, self.indices.size,
                                                        str(self.indices.dtype))
        work = cupy.empty(nbytes, np.uint8)
        self.mod.csr_transpose(*self._args(), ip.data.ptr, ip.size, ix.data.ptr, ix.size,
                               dx.data.ptr, dx.size, work.data.ptr, work.size,
                               cupy.cuda.get_current_stream().ptr)
        return _CsrCuda(self.cols, self.rows, ip, ix, dx)

    def matmat(self, x, out):
        """out (rows, K) = A @ x (cols, K); x is cast/copied to the kernel's layout if needed."""
        import cupy
        x = x.astype(self.data.dtype, copy=False)
        if not _rows_contiguous(x):
            x = cupy.ascontiguousarray(x)
        target = out if _rows_contiguous(out) else cupy.empty(out.shape, out.dtype)
        K = int(x.shape[1])
        nbytes = self.mod.spmm_csr_workspace_bytes(self.rows, self.indices.size, K,
                                                   str(self.data.dtype))
        work = cupy.empty(nbytes, np.uint8)
        self.mod.spmm_csr(*self._args(), x.data.ptr, [int(x.shape[0]), K],
                          x.strides[0] // x.itemsize, target.data.ptr,
                          [int(target.shape[0]), int(target.shape[1])],
                          target.strides[0] // target.itemsize, work.data.ptr, work.size,
                          cupy.cuda.get_current_stream().ptr)
        if target is not out:
            out[...] = target
        return out


def _spmm_csr_cuda(fmt, a, x, transpose, out):
    """spmm_csr for a cupyx CSR/CSC matrix and CuPy x (shapes already checked)."""
    import cupy
    _backend.cuda()  # CuPy without the CUDA module or a GPU: the clear RuntimeError
    m, n = (int(s) for s in a.shape)
    rows_y = n if transpose else m
    if out is None:
        out = cupy.empty((rows_y, x.shape[1]), a.dtype)
    elif out.shape != (rows_y, x.shape[1]) or out.dtype != a.dtype:
        raise ValueError(f"spmm_csr: out must be {(rows_y, x.shape[1])} {a.dtype}, got "
                         f"{out.shape} {out.dtype}")
    if x.shape[1] == 0:
        return out
    csr = _CsrCuda.of(a, fmt)  # CSR of a, or of a.T for CSC
    if (fmt == "csr") == transpose:  # the other orientation: transpose on the GPU
        csr = csr.transpose()
    return csr.matmat(x, out)


class _Operator:
    """A as two products, ``A @ X`` and ``A.T @ X``, on our kernels (X and results (., l)).

    On the GPU a sparse A is held in both orientations (CSR of A and of A.T, the second built
    once here by our transpose kernel) so that both products are the same forward SpMM.
    """

    def __init__(self, fmt, a):
        self.shape = tuple(int(s) for s in a.shape)
        self.dtype = a.dtype
        self.fmt = fmt
        self.a = a
        self.xp = _xp(a)
        if self.xp is not np:
            _backend.cuda()  # CuPy without the CUDA module or a GPU: the clear RuntimeError
            if fmt != "dense":
                csr = _CsrCuda.of(a, fmt)
                other = csr.transpose()
                self.fwd, self.bwd = (csr, other) if fmt == "csr" else (other, csr)
            elif not (a.flags.c_contiguous or a.flags.f_contiguous):
                self.a = self.xp.ascontiguousarray(a)
        elif fmt != "dense":
            self.parts = _csr_parts(a)
        elif not (a.flags.c_contiguous or a.flags.f_contiguous):
            self.a = np.ascontiguousarray(a)

    def _sparse(self, x, transpose):
        m, n = self.shape
        out = _padded(n if transpose else m, x.shape[1], self.dtype, self.xp)
        if self.xp is not np:
            return (self.bwd if transpose else self.fwd).matmat(x, out)
        if self.fmt == "csr":
            _core.spmm_csr(*self.parts, x, out, m, n, transpose)
        else:
            _core.spmm_csr(*self.parts, x, out, n, m, not transpose)
        return out

    # Dense: the big matrix always enters our GEMM as a row-major B operand (A·X for C order is
    # a row-major A operand, also fast); a transposed big A operand measured 2x slower
    # (4000x1000 fp32, k 60: Aᵀ·Q 45 ms, (Qᵀ·A)ᵀ written through a transposed view 23 ms).
    def _dense(self, x, transpose):
        m, n = self.shape
        out = _padded(n if transpose else m, x.shape[1], self.dtype, self.xp)
        row_major = self.a.flags.c_contiguous
        if transpose == row_major:  # (xᵀ·A)ᵀ, or (xᵀ·Aᵀ)ᵀ with Aᵀ row-major
            _mm(x, self.a if row_major else self.a.T, trans_a=True, out=out.T)
        else:
            _mm(self.a if row_major else self.a.T, x, out=out)
        return out

    def matmat(self, x):
        return self._dense(x, False) if self.fmt == "dense" else self._sparse(x, False)

    def rmatmat(self, x):
        return self._dense(x, True) if self.fmt == "dense" else self._sparse(x, True)


# ---- orthonormalization ------------------------------------------------------------------------

_LAPACK = []


def _lapack():
    """scipy.linalg.lapack, or None without SciPy. Its direct calls take 3-4 us on the l x l
    matrices here where numpy.linalg's wrappers take 6-30 (cholesky, solve against I), and an
    ML-100k solve makes a few dozen of them."""
    if not _LAPACK:
        try:
            from scipy.linalg import lapack
        except ImportError:
            lapack = None
        _LAPACK.append(lapack)
    return _LAPACK[0]


def _chol_inv(g):
    """(r, r^-1) with g = rᵀ r, r upper triangular (host float64; g may be overwritten).
    Raises LinAlgError when g is not positive definite."""
    lp = _lapack()
    if lp is None:
        r = np.linalg.cholesky(g).T
        return r, np.linalg.solve(r, np.eye(r.shape[0]))
    r, info = lp.dpotrf(g, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError("not positive definite")
    rinv, info = lp.dtrtri(r, lower=0)
    if info != 0:
        raise np.linalg.LinAlgError("singular")
    return r, rinv


def _cholqr_pass(y64, shift=0.0, g=None):
    """One CholeskyQR pass: (y r^-1, r, well_conditioned) with r = chol(y.T y + shift I).T
    (g: y.T y when the caller has it already, host float64)."""
    xp = _xp(y64)
    if g is None:
        g = _host(_mm(y64, y64, trans_a=True))  # l x l: to the host on the GPU
    else:
        g = g.copy()
    if shift:
        g[np.diag_indices_from(g)] += shift
    r, rinv = _chol_inv(g)  # g = r.T @ r; raises LinAlgError
    d = np.abs(np.diag(r))
    ok = bool(np.all(np.isfinite(r)) and d.min() > 1e-6 * d.max())
    out = _padded(y64.shape[0], y64.shape[1], np.float64, xp)
    return _mm(y64, _to(xp, rinv), out=out), r, ok


def _qr(y, passes=2):
    """Thin QR of y (m x l, m >= l) on our GEMM: (q float64, r) with y = q r, q orthonormal.

    CholeskyQR `passes` times (Fukaya et al. 2014; the Gram matrix is formed in float64, also
    for float32 y, so one pass is accurate while cond(y) < ~1e6). A more ill-conditioned y gets
    shifted CholeskyQR3 (Fukaya et al., SIAM J. Sci. Comput. 2020: a shift makes the first
    Cholesky succeed up to cond ~1e15, two plain passes restore orthogonality). Returns None when
    y is numerically rank deficient (then no thin QR with orthonormal q and this r exists).
    Only l x l matrices go to LAPACK: multithreaded LAPACK on tall blocks is slow on busy
    machines (OpenBLAS threads spin), and these blocks are GEMM-sized anyway.
    """
    y64 = _as64(y)
    r_all = np.eye(y.shape[1])
    try:
        for _ in range(passes):
            y64, r, ok = _cholqr_pass(y64)
            r_all = r @ r_all
            if not ok:
                raise np.linalg.LinAlgError
        return y64, r_all
    except np.linalg.LinAlgError:
        pass
    y64 = _as64(y)
    m, l = y64.shape
    norm2 = float((y64 * y64).sum())
    shift = 11 * (m * l + l * (l + 1)) * np.finfo(np.float64).eps * norm2
    try:
        y64, r_all, _ = _cholqr_pass(y64, shift)
        for _ in range(2):
            y64, r, ok = _cholqr_pass(y64)
            r_all = r @ r_all
        if not ok:
            return None
        return y64, r_all
    except np.linalg.LinAlgError:
        return None


def _orth(y, passes=2, rng=None):
    return _orth_flag(y, passes, rng)[0]


def _orth_flag(y, passes=2, rng=None):
    """Orthonormal basis (m x l) of a space containing range(y), in y's dtype.

    _qr when y has full numerical rank; otherwise its numerically independent directions
    (eigenvectors of the Gram matrix, Stathopoulos & Wu's SVQB) completed with random
    directions orthogonalized against them, so the basis always has l columns. Householder QR
    (LAPACK) is the last resort. Returns (basis, True when a fallback ran).
    """
    res = _qr(y, passes)
    fallback = res is None
    xp = _xp(y)
    if fallback:
        y64 = _as64(y)
        lam, w = np.linalg.eigh(_host(_mm(y64, y64, trans_a=True)))
        good = lam > 1e-13 * max(lam[-1], np.finfo(np.float64).tiny)
        keep = _mm(y64, _to(xp, np.ascontiguousarray(w[:, good] / np.sqrt(lam[good]))))
        rng = rng if rng is not None else np.random.default_rng(0)
        fill = _to(xp, rng.standard_normal((y.shape[0], int((~good).sum()))))
        fill = _project_out(keep, fill)
        res = _qr(xp.hstack([keep, fill]), 2)
        if res is None:  # Householder QR (LAPACK / cuSOLVER), the last resort
            res = (xp.linalg.qr(y64)[0], None)
    out = _padded(y.shape[0], y.shape[1], y.dtype, xp)
    out[...] = res[0]
    return out, fallback


def _project_coef(q, z):
    """z -= q (qᵀz), one classical Gram-Schmidt pass; returns (z, qᵀz)."""
    c = _mm(q, z, trans_a=True)
    _mm(q, c, z, alpha=-1.0, beta=1.0, out=z)
    return z, c


def _project_out(q_all, z, passes=2):
    """z -= q_all @ (q_all.T @ z), twice by default (classical Gram-Schmidt twice is enough;
    one pass for a z already orthogonal to q_all up to a small multiple of eps)."""
    if q_all.shape[1]:
        for _ in range(passes):
            _project_coef(q_all, z)
    return z


# ---- the small SVD at the end ------------------------------------------------------------------

def _fix_signs(u, vt):
    xp = _xp(u)
    idx = xp.argmax(xp.abs(u), axis=0)
    s = xp.sign(u[idx, xp.arange(u.shape[1])])
    s[s == 0] = 1
    u *= s.astype(u.dtype)
    vt *= s.astype(vt.dtype)[:, None]
    return u, vt


def _ritz(q, w, k, dtype):
    """Given q (m x d, orthonormal) and w = A.T @ q (n x d): top-k (U, S, Vt) of q q.T A.

    q.T A = w.T. With w = qw r (thin QR on our GEMM) and r = p s zt (a d x d SVD):
    q.T A = z s (qw p).T, so U = q z, V = qw p. Falls back to numpy.linalg.svd(w) when w is
    numerically rank deficient.
    """
    xp = _xp(q)
    res = _qr(w, 1)
    if res is not None:
        qw, r = res
        p, s, zt = np.linalg.svd(r)
        # One CholeskyQR pass leaves |qwᵀqw - I| ~ eps cond(w)², and s holds w's singular
        # values: a second pass unless cond(w) <= 4 (ML-100k k=20: 1.9; flat spectra ~1).
        if not s[0] <= 4.0 * s[-1]:
            res = _qr(qw, 1)
            if res is not None:
                qw, r2 = res
                r = r2 @ r
                p, s, zt = np.linalg.svd(r)
    if res is not None:
        v = _mm(qw, _to(xp, np.ascontiguousarray(p[:, :k])))
        z = zt[:k].T
    else:
        v, s, zt = xp.linalg.svd(_as64(w), full_matrices=False)
        s, zt = _host(s), _host(zt)
        v, z = v[:, :k], zt[:k].T
    u = _mm(q, _to(xp, np.ascontiguousarray(z, dtype=q.dtype)))
    u = xp.ascontiguousarray(u, dtype=dtype)
    vt = xp.ascontiguousarray(v.T, dtype=dtype)
    u, vt = _fix_signs(u, vt)
    return u, _to(xp, s[:k].astype(dtype)), vt


# ---- the two methods ---------------------------------------------------------------------------

def _gaussian(rng, shape, dtype, xp=np):
    # Drawn on the host on the GPU too: the same random_state gives the same test matrix.
    out = _padded(shape[0], shape[1], dtype, xp)
    out[...] = _to(xp, rng.standard_normal(shape))
    return out


def _randomized(op, k, p, n_iter, rng):
    m, n = op.shape
    l = min(k + p, m, n)
    y = op.matmat(_gaussian(rng, (n, l), op.dtype, op.xp))
    for _ in range(n_iter):
        # One CholeskyQR pass is enough between power iterations: the basis only has to stay
        # well conditioned (sklearn uses LU here); the last basis gets two.
        z = op.rmatmat(_orth(y, passes=1, rng=rng))
        y = op.matmat(_orth(z, passes=1, rng=rng))
    q = _orth(y, passes=2, rng=rng)
    return _ritz(q, op.rmatmat(q), k, op.dtype)


# Restarted block Lanczos. The orthonormal basis V lives on the smaller side of A (dim =
# min(m, n)): its reorthogonalization costs dim * d * b per block, and the other side is only
# ever touched by the products. The Rayleigh quotient G = Vᵀ (AᵀA) V is assembled from the
# projection coefficients of each new block's AᵀA·V_j (no m x d block is stored), and the
# Krylov-Schur / thick restart (Wu & Simon, SIAM J. Matrix Anal. Appl. 2000; Stewart 2001)
# rotates V onto its top Ritz vectors once the basis is full: AᵀA maps a Ritz vector y_i to
# θ_i y_i plus a part in the span of the last residual block R, so [Y, orth(R)] is again the
# start of a Krylov decomposition and the expansion goes on from orth(R).
_LANCZOS_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}
_LANCZOS_MAX_RESTARTS = 500
_LANCZOS_FLOOR = 16  # rounding floor of η, in units of eps * σ1²


def _lanczos_block(k, p):
    """Block size for n_iter='auto'. Each column of a block is one more Krylov degree only for
    that column, so on flat spectra small blocks need the fewest products (20000x5000 CSR,
    k=50, tol=1e-3: 576 columns with blocks of 8, 720 with 16, 912 with 24); blocks narrower
    than ~16 columns leave our SpMM bound by per-call and index costs (1M nnz, one thread:
    0.9 ms per column at 4 columns, 0.74 at 8, 0.47 at 16), and every block has a fixed
    cost (projections, a small eigh). 16 above k + p = 32, 8 below."""
    return min(k + p, 8 if k + p <= 32 else 16)


def _ritz_pairs(gram, d, count):
    """(θ descending, eigenvectors in the same order) of the leading d x d block of gram: the
    top min(count, d) pairs, from our symmetric eigensolver (csrc/cpu/symeig_impl.h; 160 x 160,
    top 20: 0.36 ms, where LAPACK's dsyevr took 1.5 ms here and numpy.linalg.eigh, which
    computes all 160, 1.2-1.9; it was ~15% of an ML-100k solve)."""
    return _core.sym_eig_top(gram[:d, :d], min(count, d))


def _next_block(v, z, norms0, h, rng, loss, budget):
    """Orthonormal basis of z (dim, w; projected once against v, h = zᵀz host float64) as the
    next Krylov block, orthogonal to v; returns (block, loss) with loss the new estimate of
    max |Vᵀ V - I| over the basis (it was `loss` before this block).

    Block CGS2 with the QR in between: a CholeskyQR pass on h, one more projection against v,
    one more CholeskyQR pass. The second projection is needed because rounding left in z along
    v (eps * |AᵀA V|) is amplified by the QR by cond(z), which is large whenever the block is
    nearly dependent (1e-3 loss of orthogonality in float32 on a 0.7^i spectrum without it).
    It is skipped while the loss it would leave stays within `budget`: one projection leaves
    Vᵀz ~ (|VᵀV - I| + eps) |z| per column, which the QR grows by cond(r), so the estimate is
    (loss + eps) * growth * cond(r) with growth = max |z before| / |z after| per column (ML-100k
    float64: 1e-15 measured after the first block, the estimate 6x above). The estimate
    compounds from block to block (measured: x1.5-3 per block), which is why it is tracked.
    Breakdown (an invariant subspace was found: dead columns) or a z too ill-conditioned for
    one pass takes the careful route: dead columns restart at random, two-pass projection,
    _orth_flag's CholeskyQR2 / shifted CholeskyQR3 / SVQB completion, and once more."""
    xp = _xp(z)
    tiny = np.finfo(z.dtype).tiny
    dead = np.sqrt(np.maximum(np.diag(h), 0.0)) <= 1e-10 * np.maximum(norms0, tiny)
    if not dead.any():
        try:
            q64, r, ok = _cholqr_pass(_as64(z), g=h)
        except np.linalg.LinAlgError:
            ok = False
        if ok:
            if q64.dtype == z.dtype:
                qn = q64
            else:
                qn = _padded(z.shape[0], z.shape[1], z.dtype, xp)
                qn[...] = q64
            growth = float(np.max(norms0 / np.sqrt(np.diag(h))))
            # cond(r) exactly (h = rᵀr): the estimate compounds from block to block, and the
            # cheap upper bound sqrt(|r|_1 |r|_inf |r^-1|_1 |r^-1|_inf), 6-10x above it on
            # ML-100k, made the fourth block take the second projection.
            lam = np.linalg.eigvalsh(h)
            cond = np.sqrt(lam[-1] / lam[0]) if lam[0] > 0 else np.inf
            est = (loss + np.finfo(z.dtype).eps) * growth * cond
            if est <= budget:
                return qn, max(loss, est)
            return _orth(_project_out(v, qn, passes=1), passes=1, rng=rng), loss
    if dead.any():
        cols = dead if xp is np else xp.asarray(np.flatnonzero(dead))
        z[:, cols] = _to(xp, rng.standard_normal((z.shape[0], int(dead.sum()))))
    z = _project_out(v, z)
    qn = _orth(z, passes=2, rng=rng)
    return _orth(_project_out(v, qn), passes=1, rng=rng), loss


_BLAS_CONTROLLER = []


def _one_blas_thread():
    """Context manager: the host BLAS/LAPACK (numpy.linalg on the basis-sized matrices) on one
    thread, when threadpoolctl is installed. The restarted Lanczos makes a few small LAPACK
    calls per block between our OpenMP kernels; OpenBLAS threads spin after each call and take
    the cores from our kernel threads: ML-100k k=20 with 2 OpenMP + 2 OpenBLAS threads took
    365-517 ms against 58 ms with OpenBLAS on one thread (2 cores)."""
    try:
        import threadpoolctl
    except ImportError:
        return contextlib.nullcontext()
    if not _BLAS_CONTROLLER:
        _BLAS_CONTROLLER.append(threadpoolctl.ThreadpoolController())
    return _BLAS_CONTROLLER[0].limit(limits=1, user_api="blas")


def _lanczos(op, k, p, n_iter, tol, rng, stats=None):
    """Top-k (U, S, Vt) by thick-restarted block Lanczos on AᵀA (or AAᵀ, the smaller one).

    n_iter None: blocks of _lanczos_block(k, p) columns until every one of the top k Ritz
    triplets has a residual below tol * σ1 (see below). n_iter an int: n_iter + 1 blocks of
    k + p columns (the same work whatever the spectrum), stopping early only when tol is given
    and met. The basis is restarted to its top `keep` Ritz vectors (k + max(p, 0.8 k) for
    'auto', k + p for an int n_iter) whenever it would outgrow 3 keep + 2 b columns. `stats` (a
    dict) receives counters.

    Convergence: for a Ritz pair (θ, y) of AᵀA, AᵀA y - θ y = R s (R: the projected last
    block, s: y's last-block coordinates), η = |R s|. Then some σ² lies within η of θ, so
    |σ - sqrt(θ)| <= min(η / sqrt(θ), sqrt(η)); a triplet has converged when that bound is
    <= tol * σ1, or when η is at the rounding floor of the products (~eps * σ1²).
    """
    m, n = op.shape
    if m >= n:  # basis side n: products A·V then Aᵀ·(A·V)
        dim, fwd, back = n, op.matmat, op.rmatmat
    else:
        dim, fwd, back = m, op.rmatmat, op.matmat
    xp = op.xp
    if n_iter is None:
        # Keeping ~1.8k Ritz vectors at a restart instead of k + 10 halves the products for tight
        # tolerances (20000x5000 CSR, k=50, tol=1e-10: 1440 columns instead of 2544) and
        # changes little at loose ones (672 instead of 720 at 1e-3).
        keep = min(k + max(p, (4 * k) // 5), dim)
        b, max_blocks = min(_lanczos_block(k, p), dim), None
        tol = _LANCZOS_TOL[np.dtype(op.dtype)] if tol is None else tol
    else:
        keep = min(k + p, dim)
        b, max_blocks = keep, n_iter + 1
    cap = min(dim, 3 * keep + 2 * b)  # basis bound; >= keep + b (room after a restart)
    ld = -(-cap // _PAD) * _PAD
    v = _empty((dim, ld), op.dtype, xp)
    spare = None
    gram = np.zeros((cap, cap))  # Vᵀ AᵀA V, on the host
    floor = _LANCZOS_FLOOR * np.finfo(op.dtype).eps
    # Loss of orthogonality of V allowed to save the second projection of a block (see
    # _next_block): 1% of the tolerance, or of sqrt(eps) for a fixed amount of work (whose
    # error is the Krylov error, far above that).
    loss = float(np.finfo(op.dtype).eps)
    budget = 1e-2 * (tol if tol is not None else float(np.sqrt(np.finfo(op.dtype).eps)))
    st = dict(blocks=0, restarts=0, max_basis=0, columns=0)
    # Start in range(Aᵀ) (range(A) for a wide A; one product): empty columns (rows) of A then
    # stay exactly zero in the basis; a random start keeps weight ~tol there.
    blk = _orth(back(_gaussian(rng, (m + n - dim, b), op.dtype, xp)), passes=2, rng=rng)
    d = 0
    ritz = None  # (θ descending, eigenvectors) of gram[:d, :d]
    while True:
        w = blk.shape[1]
        v[:, d:d + w] = blk
        d0, d = d, d + w
        st["max_basis"] = max(st["max_basis"], d)
        z = back(fwd(v[:, d0:d]))  # AᵀA on the new block (dim, w)
        st["blocks"] += 1
        st["columns"] += w
        done = d >= dim or (max_blocks is not None and st["blocks"] >= max_blocks)
        if not done:  # |z| per column before the projection, for _next_block
            norms0 = _host(xp.sqrt(xp.einsum("ij,ij->j", z, z)))
        # One pass (its coefficients fill G); _next_block's second pass removes what rounding
        # leaves along V.
        z, c = _project_coef(v[:, :d], z)
        c = _host(c).astype(np.float64)
        gram[:d0, d0:d] = c[:d0]
        gram[d0:d, :d0] = c[:d0].T
        gram[d0:d, d0:d] = (c[d0:] + c[d0:].T) / 2
        ritz = None
        if done:
            break
        z64 = _as64(z)
        h = _host(_mm(z64, z64, trans_a=True))  # RᵀR of the residual block R = z
        if tol is not None and d >= k:
            ritz = _ritz_pairs(gram, d, keep)
            theta = np.maximum(ritz[0][:k], 0.0)
            s1 = np.sqrt(theta[0])
            y = ritz[1][d0:d, :k]
            eta = np.sqrt(np.maximum(np.einsum("ij,ik,kj->j", y, h, y), 0.0))
            bound = np.minimum(eta / np.maximum(np.sqrt(theta), np.finfo(float).tiny),
                               np.sqrt(eta))
            conv = (bound <= tol * s1) | (eta <= floor * theta[0])
            st["converged"] = int(conv.sum())
            done = bool(conv.all()) or st["restarts"] >= _LANCZOS_MAX_RESTARTS
        if done:
            break
        blk, loss = _next_block(v[:, :d], z, norms0, h, rng, loss, budget)
        if d + b > cap and cap < dim:
            # Thick restart: V <- V Z[:, :keep] (the top Ritz vectors), G <- diag(θ).
            if ritz is None:
                ritz = _ritz_pairs(gram, d, keep)
            if spare is None:
                spare = _empty(v.shape, v.dtype, xp)
            zk = _to(xp, np.ascontiguousarray(ritz[1][:, :keep], dtype=op.dtype))
            _mm(v[:, :d], zk, out=spare[:, :keep])
            v, spare = spare, v
            gram[:] = 0.0
            gram[np.arange(keep), np.arange(keep)] = ritz[0][:keep]
            d = keep
            ritz = None
            st["restarts"] += 1
        blk = blk[:, :min(b, dim - d)]  # the last block of a full basis may be narrower
    if st["restarts"] >= _LANCZOS_MAX_RESTARTS:
        warnings.warn(f"truncated_svd: method='lanczos' stopped after {st['restarts']} restarts "
                      f"with {st.get('converged', 0)} of k={k} triplets converged to tol={tol}",
                      RuntimeWarning, stacklevel=3)
    if ritz is None:
        ritz = _ritz_pairs(gram, d, k)
    if stats is not None:
        stats.update(st)
    # Final Rayleigh-Ritz on the top-k Ritz vectors through the products themselves (an SVD of
    # A·V_k, accurate for small σ too, where θ from G carries eps * σ1² absolute error).
    vk = _mm(v[:, :d], _to(xp, np.ascontiguousarray(ritz[1][:, :k], dtype=op.dtype)))
    vk = _orth(vk, passes=1, rng=rng)
    u, s, vt = _ritz(vk, fwd(vk), k, op.dtype)
    if m >= n:  # _ritz factored Aᵀ: swap the sides
        u, vt = xp.ascontiguousarray(vt.T), xp.ascontiguousarray(u.T)
        u, vt = _fix_signs(u, vt)
    return u, s, vt


def truncated_svd(a, k, *, n_oversamples=10, n_iter="auto", method="randomized",
                  random_state=None, tol=None):
    """Top-k singular triplets ``(U, S, Vt)`` of a dense array or SciPy CSR/CSC matrix.

    a: (m, n) float32/float64 NumPy array or scipy.sparse CSR/CSC matrix (float32/float64), or
    on the GPU a CuPy array or cupyx.scipy.sparse CSR/CSC matrix (results are then CuPy arrays);
    1 <= k < min(m, n). Returns U (m, k), S (k,) descending, Vt (k, n) in a's dtype. Signs are
    fixed: each column of U has its largest-magnitude entry positive. The same random_state
    (None, an int, or a numpy Generator/RandomState) gives the same result.

    method='randomized' (defaults as scikit-learn's randomized_svd): n_oversamples extra
    columns, n_iter power iterations ('auto': 7 if k < 0.1 * min(m, n) else 4).
    method='lanczos': thick-restarted block Lanczos with full reorthogonalization and a basis
    bounded to ~3 (k + max(n_oversamples, 0.8 k)) columns. n_iter='auto' adds blocks (of 8 or
    16 columns) until every returned σ_i is certified within tol * S[0] of the true σ_i by its
    residual; tol defaults to 1e-10 for float64 and 1e-5 for float32 (near machine precision
    in S, whose error is in practice ~ the square of the residual); tol=1e-3 is the cheap
    setting for a 1e-3-accurate spectrum. An int n_iter is a fixed amount of work: n_iter + 1
    blocks of k + n_oversamples columns (restarting when the basis is full), stopping earlier
    only when a tol is given and met. tol (0 < tol < 1) applies to method='lanczos' only.

    >>> import numpy as np
    >>> from bigmodel.ops import truncated_svd
    >>> a = np.diag([5., 4., 3., 2., 1.])
    >>> u, s, vt = truncated_svd(a, 2, random_state=0)
    >>> np.round(s, 6)
    array([5., 4.])
    """
    fn = "truncated_svd"
    fmt, a = _check_matrix(fn, a)
    if fmt != "dense":
        _check_compressed(fn, a)
    m, n = (int(x) for x in a.shape)
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{fn}: k must be an int, got {type(k).__name__}")
    if not 1 <= k < min(m, n):
        raise ValueError(f"{fn}: k must satisfy 1 <= k < min(m, n) = {min(m, n)}, got k={k} "
                         f"(a.shape=({m}, {n}))")
    if isinstance(n_oversamples, bool) or not isinstance(n_oversamples, numbers.Integral):
        raise TypeError(f"{fn}: n_oversamples must be an int, got {type(n_oversamples).__name__}")
    if n_oversamples < 0:
        raise ValueError(f"{fn}: n_oversamples must be >= 0, got {n_oversamples}")
    if isinstance(n_iter, str):
        if n_iter != "auto":
            raise ValueError(f"{fn}: n_iter must be 'auto' or an int >= 0, got {n_iter!r}")
    elif isinstance(n_iter, bool) or not isinstance(n_iter, numbers.Integral):
        raise TypeError(f"{fn}: n_iter must be 'auto' or an int, got {type(n_iter).__name__}")
    elif n_iter < 0:
        raise ValueError(f"{fn}: n_iter must be >= 0, got {n_iter}")
    if method not in _METHODS:
        raise ValueError(f"{fn}: method must be one of {_METHODS}, got {method!r}")
    if tol is not None:
        if isinstance(tol, bool) or not isinstance(tol, numbers.Real):
            raise TypeError(f"{fn}: tol must be None or a float, got {type(tol).__name__}")
        if not 0.0 < float(tol) < 1.0:  # NaN fails too
            raise ValueError(f"{fn}: tol must satisfy 0 < tol < 1, got tol={tol!r}")
        if method != "lanczos":
            raise ValueError(f"{fn}: tol applies to method='lanczos' only, got tol={tol!r} "
                             f"with method={method!r}")
        tol = float(tol)
    if isinstance(random_state, np.random.RandomState):
        rng = np.random.default_rng(random_state.randint(0, 2 ** 63 - 1, dtype=np.int64))
    elif random_state is None or isinstance(random_state, np.random.Generator) or (
            isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool)):
        if isinstance(random_state, numbers.Integral) and random_state < 0:
            raise ValueError(f"{fn}: random_state must be a non-negative int, got {random_state}")
        rng = np.random.default_rng(random_state)
    else:
        raise TypeError(f"{fn}: random_state must be None, an int or a numpy Generator, got "
                        f"{type(random_state).__name__}")

    # Magnitudes whose squares (in the Gram matrices of the orthonormalization) would overflow
    # or underflow are brought near 1 by an exact power of two, and S scaled back.
    scale = _power_of_two_scale(fmt, a)
    if scale != 1.0:
        a = a * a.dtype.type(1.0 / scale)
    op = _Operator(fmt, a)
    if method == "randomized":
        q = (7 if k < 0.1 * min(m, n) else 4) if n_iter == "auto" else int(n_iter)
        u, s, vt = _randomized(op, k, int(n_oversamples), q, rng)
    else:
        with _one_blas_thread():
            u, s, vt = _lanczos(op, k, int(n_oversamples),
                                None if n_iter == "auto" else int(n_iter), tol, rng)
    if scale != 1.0:
        s = (s * scale).astype(s.dtype)
    return u, s, vt


def _power_of_two_scale(fmt, a):
    """1.0, or the power of two nearest max|a| when max|a| is far from 1 for a's dtype."""
    vals = a if fmt == "dense" else a.data
    if vals.size == 0:
        return 1.0
    amax = float(max(abs(vals.max()), abs(vals.min())))
    lim = 250 if a.dtype == np.float64 else 50
    if amax == 0.0 or 2.0 ** -lim <= amax <= 2.0 ** lim:
        return 1.0
    return 2.0 ** int(np.round(np.log2(amax)))


def _check_compressed(fn, a):
    """a's index arrays describe a valid CSR/CSC matrix (checked once, before the kernels)."""
    major, minor = a.shape if a.format == "csr" else a.shape[::-1]
    ip, ix = np.asarray(a.indptr), np.asarray(a.indices)
    if (ip.shape != (major + 1,) or (major + 1 and ip[0] != 0)
            or (major and np.any(ip[1:] < ip[:-1])) or ip[-1] > ix.shape[0]):
        raise ValueError(f"{fn}: a.indptr is not a valid {a.format.upper()} index pointer: it "
                         f"must start at 0, never decrease and end at most at nnz={ix.shape[0]} "
                         f"(a.shape={a.shape})")
    used = ix[:ip[-1]]
    if used.size and (used.min() < 0 or used.max() >= minor):
        raise ValueError(f"{fn}: a.indices has an entry outside [0, {minor}) (a.shape={a.shape}, "
                         f"format {a.format!r})")
