"""GPU truncated SVD and CSR SpMM: bigmodel's CUDA path beside CuPy / cuSOLVER / cuSPARSE and
torch, same run. Runs only where a GPU, CuPy and bigmodel's CUDA module are present.

Rows (compare.py's dict format: workload, ours_ms, anchor, anchor_ms, flop, note):
  dense fp32 4096x1024 k64 and 10000x2000 k100 (rank-k signal over a noise floor, exact spectrum
      known by construction, benchmarks/compare_svd.py): ours (randomized, defaults: p = 10,
      n_iter 'auto' = 7) vs cupy.linalg.svd (full, cuSOLVER gesvd) and torch.svd_lowrank with the
      same q = k + 10 and niter; the note gives each side's sigma error max|s - s*| / s*_1.
  sparse fp32 CSR 100000x20000 density 1e-3 k64 (flat spectrum): ours vs
      cupyx.scipy.sparse.linalg.svds (thick-restart Lanczos; also the sigma reference) and
      torch.svd_lowrank on a sparse COO tensor.
  SpMM on that matrix, K = 64: A·X ours vs cuSPARSE (cupyx ``A @ X``); Aᵀ·X ours on the
      transposed CSR built once (as inside the SVD) vs cuSPARSE ``A.T @ X``; the transpose itself
      vs cupyx ``A.tocsc()`` (cuSPARSE csr2csc).
An anchor whose library is missing is left out (its row is skipped).

    python3 benchmarks/compare_gpu_svd.py [--quick]
"""
from __future__ import annotations

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from compare_gpu import _time_cupy, _time_torch  # noqa: E402  (sets CUPY_TF32=0 first)


def _sigma_err(s, ref):
    if ref is None:
        return None
    s = np.sort(np.asarray(s, np.float64))[::-1][: len(ref)]
    ref = np.asarray(ref, np.float64)
    return float(np.max(np.abs(s - ref)) / ref[0])


def _e(x):
    return "n/a" if x is None else f"{x:.1e}"


def _row(workload, t_ours, anchor, t_anchor, note):
    return dict(workload=workload, ours_ms=t_ours * 1e3, anchor=anchor, anchor_ms=t_anchor * 1e3,
                flop=None, note=note)


def _try(what, fn):
    """fn(), or None (with a note on stderr) when the anchor fails: one broken anchor does not
    take the other rows with it."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001
        print(f"compare_gpu_svd: {what} skipped: {type(e).__name__}: {e}", file=sys.stderr)
        return None


def _torch():
    try:
        import torch
        if not torch.cuda.is_available():
            return None
        torch.backends.cuda.matmul.allow_tf32 = False
        return torch
    except ImportError:
        return None


def _dense_rows(cp, torch, m, n, k, reps):
    from bigmodel import ops
    from compare_svd import dense_signal_noise
    a_host, s_exact = dense_signal_noise(m, n, rank=k)
    a = cp.asarray(a_host)
    del a_host
    ref = s_exact[:k]
    q = 7 if k < 0.1 * min(m, n) else 4  # our n_iter='auto' (scikit-learn's rule)
    res = {}
    t_ours = _time_cupy(lambda: res.__setitem__("ours", ops.truncated_svd(a, k, random_state=0)),
                        warmup=1, reps=reps, trials=3)
    err_ours = _sigma_err(cp.asnumpy(res["ours"][1]), ref)
    name = f"GPU SVD dense {m}x{n} f32 k{k}"
    out = []
    t_full = _try("cupy.linalg.svd", lambda: _time_cupy(
        lambda: res.__setitem__("full", cp.linalg.svd(a, full_matrices=False)), warmup=1, reps=1,
        trials=2))
    if t_full is not None:
        err = _sigma_err(cp.asnumpy(res["full"][1])[:k], ref)
        out.append(_row(name, t_ours, "cupy.linalg.svd (full)", t_full,
                        f"σ err ours {_e(err_ours)}, cupy {_e(err)}"))
    if torch is not None:
        ta = torch.as_tensor(a, device="cuda")
        torch.manual_seed(0)
        t_t = _try("torch.svd_lowrank", lambda: _time_torch(
            lambda: res.__setitem__("torch", torch.svd_lowrank(ta, q=k + 10, niter=q)), warmup=1,
            reps=reps, trials=3))
        if t_t is not None:
            err_t = _sigma_err(res["torch"][1][:k].cpu().numpy(), ref)
            out.append(_row(name, t_ours, f"torch.svd_lowrank q={k + 10} niter={q}", t_t,
                            f"σ err ours {_e(err_ours)}, torch {_e(err_t)}"))
    return out


def _sparse_matrix(cp, m, n, density):
    import cupyx.scipy.sparse as cpsp
    from compare_svd import sparse_flat
    a_host = sparse_flat(m, n, density).astype(np.float32)
    return cpsp.csr_matrix(a_host), a_host


def _sparse_rows(cp, torch, a, a_host, k, reps):
    from bigmodel import ops
    m, n = a.shape
    name = f"GPU SVD sparse {m}x{n} nnz {a.nnz} f32 k{k}"
    res = {}
    t_ours = _time_cupy(lambda: res.__setitem__("ours", ops.truncated_svd(a, k, random_state=0)),
                        warmup=1, reps=reps, trials=3)
    out = []
    ref = None

    def svds_time():
        from cupyx.scipy.sparse.linalg import svds
        return _time_cupy(lambda: res.__setitem__("svds", svds(a, k=k)), warmup=1, reps=1,
                          trials=2)
    t_s = _try("cupyx svds", svds_time)
    if t_s is not None:
        ref = np.sort(cp.asnumpy(res["svds"][1]).astype(np.float64))[::-1]
        out.append(_row(name, t_ours, "cupyx svds (Lanczos)", t_s,
                        f"σ err ours {_e(_sigma_err(cp.asnumpy(res['ours'][1]), ref))} vs svds"))
    if torch is not None:
        q = 7 if k < 0.1 * min(m, n) else 4

        def torch_time():
            coo = a_host.tocoo()
            idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
            ta = torch.sparse_coo_tensor(idx, torch.as_tensor(coo.data), size=a_host.shape,
                                         device="cuda").coalesce()
            return _time_torch(
                lambda: res.__setitem__("torch", torch.svd_lowrank(ta, q=k + 10, niter=q)),
                warmup=1, reps=reps, trials=3)
        t_t = _try("torch.svd_lowrank (sparse)", torch_time)
        if t_t is not None:
            out.append(_row(name, t_ours, f"torch.svd_lowrank sparse q={k + 10} niter={q}", t_t,
                            f"σ err ours {_e(_sigma_err(cp.asnumpy(res['ours'][1]), ref))}, "
                            f"torch {_e(_sigma_err(res['torch'][1][:k].cpu().numpy(), ref))} "
                            f"(vs svds)"))
    return out


def _spmm_rows(cp, a, K, reps):
    from bigmodel import ops
    from bigmodel.ops.svd import _CsrCuda
    m, n = a.shape
    rng = np.random.default_rng(0)
    x = cp.asarray(rng.standard_normal((n, K), dtype=np.float32))
    xt = cp.asarray(rng.standard_normal((m, K), dtype=np.float32))
    y, yt = cp.empty((m, K), cp.float32), cp.empty((n, K), cp.float32)
    name = f"GPU SpMM CSR {m}x{n} nnz {a.nnz} f32 K{K}"
    at = _CsrCuda.of(a, "csr").transpose()  # as in the SVD: built once per call
    t_ours = _time_cupy(lambda: ops.spmm_csr(a, x, out=y), reps=reps)
    t_ours_t = _time_cupy(lambda: at.matmat(xt, yt), reps=reps)
    t_tr = _time_cupy(lambda: _CsrCuda.of(a, "csr").transpose(), reps=max(1, reps // 2))
    out = []

    def diff(ours, theirs):
        return float(cp.abs(ours - theirs).max() / cp.abs(theirs).max())
    t = _try("cuSPARSE A @ X", lambda: _time_cupy(lambda: a @ x, reps=reps))
    if t is not None:
        out.append(_row(f"{name} A·X", t_ours, "cuSPARSE (cupyx A @ X)", t,
                        f"max rel diff {diff(y, a @ x):.1e}; merge-path, deterministic"))
    t = _try("cuSPARSE A.T @ X", lambda: _time_cupy(lambda: a.T @ xt, reps=reps))
    if t is not None:
        out.append(_row(f"{name} Aᵀ·X (prebuilt Aᵀ)", t_ours_t, "cuSPARSE (cupyx A.T @ X)", t,
                        f"max rel diff {diff(yt, a.T @ xt):.1e}; forward kernel on CSR of Aᵀ"))
    t = _try("cupyx tocsc", lambda: _time_cupy(lambda: a.tocsc(), reps=max(1, reps // 2)))
    if t is not None:
        out.append(_row(f"{name} transpose (CSR of Aᵀ)", t_tr, "cuSPARSE csr2csc (cupyx tocsc)",
                        t, "ours: validation + stable counting sort, one sync"))
    return out


def rows(quick: bool = False):
    """Measurements as dicts (compare.py's format); [] without a GPU / CuPy / CUDA module."""
    try:
        import cupy as cp
        import cupyx.scipy.sparse  # noqa: F401
    except ImportError:
        return []
    from bigmodel.ops import _backend
    if not _backend.cuda_available():
        return []
    torch = _torch()
    reps = 2 if quick else 5
    out = []
    dense = [(4096, 1024, 64)] if quick else [(4096, 1024, 64), (10000, 2000, 100)]
    for m, n, k in dense:
        out += _dense_rows(cp, torch, m, n, k, reps)
    m, n = (20000, 5000) if quick else (100000, 20000)
    a, a_host = _sparse_matrix(cp, m, n, 1e-3 if not quick else 4e-3)
    out += _sparse_rows(cp, torch, a, a_host, 64, reps)
    out += _spmm_rows(cp, a, 64, 5 if quick else 20)
    return out


def table(rs) -> str:
    import cupy as cp
    props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"### bigmodel GPU truncated SVD / SpMM — {name} — {now}", "",
             "| workload | ours ms | anchor | anchor ms | anchor / ours | note |",
             "|---|---:|---|---:|---:|---|"]
    for r in rs:
        lines.append(f"| {r['workload']} | {r['ours_ms']:.2f} | {r['anchor']} | "
                     f"{r['anchor_ms']:.2f} | {r['anchor_ms'] / r['ours_ms']:.2f}x | {r['note']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    rs = rows(quick="--quick" in sys.argv)
    print(table(rs) if rs else "compare_gpu_svd: no GPU, CuPy or CUDA module: nothing to do")
