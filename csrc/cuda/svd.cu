// CSR SpMM and CSR transpose on the GPU (the sparse passes of truncated SVD). Contract: svd.h.
//
// Kernels:
//   csr_check_kernel       one pass over indptr and the used indices; sets flags the launcher
//                          copies back (the only synchronization) and turns into ValueErrors.
//   spmm_csr_kernel        Y = A·X, merge-path work split (Merrill & Garland, "Merge-based
//                          parallel sparse matrix-vector multiplication", SC 2016): the merged
//                          sequence of row ends and nonzeros (rows + nnz items) is cut into
//                          equal pieces of kSpmmItems, one per warp, found by a binary search
//                          on indptr. Every warp does the same work however skewed the row
//                          lengths are (a 10^5-entry row is spread over hundreds of warps; empty
//                          rows cost one item each). The warp stages 32 (column, value) pairs
//                          in shared memory, then every lane applies each entry to its own
//                          columns of the row: X rows are read as coalesced 128-byte segments,
//                          32 * CPL columns per warp (CPL = 1, 2, 4; blockIdx.y walks column
//                          tiles of 128 when K > 128). A row the warp finishes is stored; the
//                          partial sum of the row still open at the end of the warp's piece
//                          goes to a per-warp carry slot.
//   spmm_csr_fixup_kernel  adds the carries to their rows: the first warp of each run of equal
//                          carry rows sums the run in warp order. Fixed order everywhere, no
//                          atomics: results are bitwise reproducible.
//   csr_count / scan / colptr / scatter kernels
//                          Aᵀ in CSR form by a stable counting sort by column. The entries are
//                          cut into T tiles (one warp each); a T x cols table counts each tile's
//                          entries per column, its exclusive scan in column-major order gives
//                          every (column, tile) its first output slot, and the scatter pass
//                          ranks equal columns inside each 32-entry chunk by comparing the
//                          chunk's columns in shared memory. Output order = A's order within
//                          every column: deterministic, no atomics (not even integer ones).
// Aᵀ·X is the forward kernel on the transposed matrix (built once per SVD call in Python):
// scattering into Y with float atomics would make results depend on the schedule.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <limits>

#include "cuda/cuda_check.cuh"
#include "cuda/svd.h"

namespace bm::cuda {

namespace {

__device__ __forceinline__ long long lmin(long long a, long long b) { return a < b ? a : b; }
__device__ __forceinline__ long long lmax(long long a, long long b) { return a > b ? a : b; }

constexpr int kSpmmWarps = 4, kSpmmThreads = 32 * kSpmmWarps;
// Rows + nonzeros per warp: large enough that the two binary searches and the carry are a
// small share of a warp's work, small enough for ~8k warps at 2M nonzeros (H100: 132 SMs x 64).
constexpr long long kSpmmItems = 256;
constexpr int kCheckThreads = 128;
constexpr int kScanThreads = 256, kScanPer = 8, kScanChunk = kScanThreads * kScanPer;
// The transpose's count table holds at most this many entries (16 MB of int32).
constexpr long long kTableBudget = 1LL << 22;
constexpr long long kTileNnz = 512;  // entries per transpose tile when the table allows it
constexpr std::size_t kAlign = 256;

std::size_t round_up(std::size_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }
// Blocks for a grid-stride loop over n elements: ~8 per thread, at most 4096 blocks.
unsigned stride_grid(long long n) {
  return static_cast<unsigned>(std::clamp<long long>(ceil_div(n, kCheckThreads * 8), 1, 4096));
}

// ---- validation --------------------------------------------------------------------------------

template <typename I>
struct CsrCheckParams {
  const I* indptr;
  const I* indices;
  long long rows, cols, stored;
  long long* flags;  // [0] indptr[0] != 0, [1] decreasing indptr, [2] bad column, [3] indptr[rows]
};

struct ZeroParams {
  long long* p;
  long long n;
};

__global__ void __launch_bounds__(kCheckThreads) zero_kernel(ZeroParams p) {
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n;
       i += (long long)gridDim.x * blockDim.x)
    p.p[i] = 0;
}

template <typename I>
__global__ void __launch_bounds__(kCheckThreads) csr_check_kernel(CsrCheckParams<I> p) {
  const long long last = static_cast<long long>(p.indptr[p.rows]);
  const long long used = lmin(lmax(last, 0), p.stored);  // never read past the arrays
  const long long n = lmax(p.rows + 1, p.stored);
  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (long long)gridDim.x * blockDim.x) {
    if (i == 0) {
      p.flags[3] = last;
      if (p.indptr[0] != 0) p.flags[0] = 1;
    }
    if (i < p.rows && p.indptr[i + 1] < p.indptr[i]) p.flags[1] = 1;
    if (i < used) {
      const long long c = static_cast<long long>(p.indices[i]);
      if (c < 0 || c >= p.cols) p.flags[2] = 1;
    }
  }
}

// ---- SpMM: merge path --------------------------------------------------------------------------

template <typename T, typename I>
struct SpmmParams {
  const I* indptr;
  const I* indices;
  const T* data;
  const T* X;
  T* Y;
  T* carry;             // [warps][K]
  long long* carry_row;  // [warps]; -1 = nothing carried
  long long rows, nnz, K, ldx, ldy, warps;
};

// Rows whose end precedes merge-path diagonal d: the split point (row, d - row) of the merge of
// the row ends indptr[1..rows] with the nonzero indices 0..nnz-1 (a row end goes first on ties).
template <typename I>
__device__ __forceinline__ long long merge_path_row(const I* indptr, long long rows, long long nnz,
                                                    long long d) {
  long long lo = lmax(0, d - nnz), hi = lmin(d, rows);
  while (lo < hi) {
    const long long mid = (lo + hi) >> 1;
    if (static_cast<long long>(indptr[mid + 1]) <= d - mid - 1) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

template <typename T, typename I, int CPL>
__global__ void __launch_bounds__(kSpmmThreads) spmm_csr_kernel(SpmmParams<T, I> p) {
  __shared__ I s_col[kSpmmWarps][32];
  __shared__ T s_val[kSpmmWarps][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long w = (long long)blockIdx.x * kSpmmWarps + warp;
  if (w >= p.warps) return;  // whole warps only: no block-wide barrier below
  const long long d0 = w * kSpmmItems, d1 = lmin(d0 + kSpmmItems, p.rows + p.nnz);
  long long r = merge_path_row(p.indptr, p.rows, p.nnz, d0);
  const long long q0 = d0 - r;
  const long long r1 = merge_path_row(p.indptr, p.rows, p.nnz, d1), q1 = d1 - r1;
  const long long c0 = (long long)blockIdx.y * 32 * CPL + lane;  // this lane: c0 + 32 t
  T acc[CPL];
#pragma unroll
  for (int t = 0; t < CPL; ++t) acc[t] = T(0);
  long long row_end = r < p.rows ? static_cast<long long>(p.indptr[r + 1]) : p.nnz;

  for (long long base = q0; base < q1; base += 32) {
    const int n = static_cast<int>(lmin(32, q1 - base));
    if (lane < n) {
      s_col[warp][lane] = p.indices[base + lane];
      s_val[warp][lane] = p.data[base + lane];
    }
    __syncwarp();
    for (int e = 0; e < n;) {
      // Rows ending before nonzero e are complete (empty rows included): store them.
      while (r < r1 && row_end <= base + e) {
        T* y = p.Y + r * p.ldy;
#pragma unroll
        for (int t = 0; t < CPL; ++t) {
          if (c0 + 32 * t < p.K) y[c0 + 32 * t] = acc[t];
          acc[t] = T(0);
        }
        ++r;
        row_end = r < p.rows ? static_cast<long long>(p.indptr[r + 1]) : p.nnz;
      }
      // Entries [e, stop) all belong to row r (no row end among them; stop > e by the merge
      // path, the max only guards progress). Four at a time: their 4 * CPL loads of X are
      // issued before the first add needs one. The adds keep entry order (bitwise the same
      // result as one at a time).
      const int stop = static_cast<int>(lmax(e + 1, lmin(n, row_end - base)));
      for (; e + 4 <= stop; e += 4) {
        const T* x[4];
        T v[4];
#pragma unroll
        for (int u = 0; u < 4; ++u) {
          v[u] = s_val[warp][e + u];
          x[u] = p.X + static_cast<long long>(s_col[warp][e + u]) * p.ldx;
        }
#pragma unroll
        for (int t = 0; t < CPL; ++t) {
          const long long c = c0 + 32 * t;
          if (c < p.K) {
            const T x0 = x[0][c], x1 = x[1][c], x2 = x[2][c], x3 = x[3][c];
            acc[t] += v[0] * x0;
            acc[t] += v[1] * x1;
            acc[t] += v[2] * x2;
            acc[t] += v[3] * x3;
          }
        }
      }
      for (; e < stop; ++e) {
        const T v = s_val[warp][e];
        const T* x = p.X + static_cast<long long>(s_col[warp][e]) * p.ldx;
#pragma unroll
        for (int t = 0; t < CPL; ++t)
          if (c0 + 32 * t < p.K) acc[t] += v * x[c0 + 32 * t];
      }
    }
    __syncwarp();  // the next chunk overwrites s_col / s_val
  }
  for (; r < r1; ++r) {  // row ends after the last nonzero of the piece
    T* y = p.Y + r * p.ldy;
#pragma unroll
    for (int t = 0; t < CPL; ++t) {
      if (c0 + 32 * t < p.K) y[c0 + 32 * t] = acc[t];
      acc[t] = T(0);
    }
  }
  // The row open at the end of the piece (its end belongs to a later warp) is carried.
  if (r1 < p.rows) {
    T* cw = p.carry + w * p.K;
#pragma unroll
    for (int t = 0; t < CPL; ++t)
      if (c0 + 32 * t < p.K) cw[c0 + 32 * t] = acc[t];
  }
  if (blockIdx.y == 0 && lane == 0) p.carry_row[w] = r1 < p.rows ? r1 : -1;
}

template <typename T>
struct FixupParams {
  const T* carry;
  const long long* carry_row;
  T* Y;
  long long K, ldy, warps;
};

template <typename T>
__global__ void __launch_bounds__(kSpmmThreads) spmm_csr_fixup_kernel(FixupParams<T> p) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long w = (long long)blockIdx.x * kSpmmWarps + warp;
  if (w >= p.warps) return;
  const long long r = p.carry_row[w];
  if (r < 0 || (w > 0 && p.carry_row[w - 1] == r)) return;  // not the first carry of row r
  long long end = w + 1;
  while (end < p.warps && p.carry_row[end] == r) ++end;
  T* y = p.Y + r * p.ldy;
  for (long long c = lane; c < p.K; c += 32) {
    T s = T(0);
    for (long long v = w; v < end; ++v) s += p.carry[v * p.K + c];
    y[c] += s;
  }
}

// ---- transpose: stable counting sort by column --------------------------------------------------

template <typename T, typename I>
struct TransposeParams {
  const I* indptr;
  const I* indices;
  const T* data;
  I* table;  // [cols][tiles]: counts, then (after the scan) next free output slot
  I* indptr_t;
  I* indices_t;
  T* data_t;
  long long rows, cols, nnz, tiles, tile_nnz;
};

// For this lane's column c (>= 0) among the warp's 32 staged columns: how many lanes before it
// hold c, and whether no lane after it does.
template <typename I>
__device__ __forceinline__ int rank_in_chunk(const I* cols, int lane, long long c, bool& last) {
  int before = 0;
  last = true;
  for (int l = 0; l < 32; ++l) {
    if (static_cast<long long>(cols[l]) != c) continue;
    if (l < lane) ++before;
    else if (l > lane) last = false;
  }
  return before;
}

template <typename T, typename I>
__global__ void __launch_bounds__(kSpmmThreads) csr_count_kernel(TransposeParams<T, I> p) {
  __shared__ I s_col[kSpmmWarps][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long tile = (long long)blockIdx.x * kSpmmWarps + warp;
  if (tile >= p.tiles) return;
  const long long q0 = tile * p.tile_nnz, q1 = lmin(q0 + p.tile_nnz, p.nnz);
  for (long long base = q0; base < q1; base += 32) {
    const long long q = base + lane;
    const long long c = q < q1 ? static_cast<long long>(p.indices[q]) : -1;
    s_col[warp][lane] = static_cast<I>(c);
    __syncwarp();
    bool last;
    const int before = rank_in_chunk(s_col[warp], lane, c, last);
    // One lane per distinct column updates the tile's count: no two lanes touch one entry.
    if (c >= 0 && last) p.table[c * p.tiles + tile] += static_cast<I>(before + 1);
    __syncwarp();
  }
}

// Block-wide exclusive scan of one value per thread; *total = the block's sum.
__device__ __forceinline__ long long block_exclusive_scan(long long v, long long* total) {
  __shared__ long long s[kScanThreads];
  const int t = threadIdx.x;
  s[t] = v;
  __syncthreads();
  for (int off = 1; off < kScanThreads; off <<= 1) {  // Hillis-Steele
    const long long add = t >= off ? s[t - off] : 0;
    __syncthreads();
    s[t] += add;
    __syncthreads();
  }
  const long long inclusive = s[t];
  *total = s[kScanThreads - 1];
  __syncthreads();  // s is reused by the next call
  return inclusive - v;
}

template <typename I>
struct ScanParams {
  I* a;
  long long n;
  long long* sums;  // one per chunk of kScanChunk
  long long chunks;
};

template <typename I>
__global__ void __launch_bounds__(kScanThreads) scan_sums_kernel(ScanParams<I> p) {
  const long long base = (long long)blockIdx.x * kScanChunk + threadIdx.x * kScanPer;
  long long v = 0;
  for (int e = 0; e < kScanPer; ++e)
    if (base + e < p.n) v += static_cast<long long>(p.a[base + e]);
  long long total;
  block_exclusive_scan(v, &total);
  if (threadIdx.x == 0) p.sums[blockIdx.x] = total;
}

template <typename I>
__global__ void __launch_bounds__(kScanThreads) scan_top_kernel(ScanParams<I> p) {
  long long carry = 0;
  for (long long g = 0; g < p.chunks; g += kScanChunk) {
    const long long base = g + threadIdx.x * kScanPer;
    long long loc[kScanPer], v = 0;
    for (int e = 0; e < kScanPer; ++e) {
      loc[e] = base + e < p.chunks ? p.sums[base + e] : 0;
      v += loc[e];
    }
    long long total;
    long long run = carry + block_exclusive_scan(v, &total);
    for (int e = 0; e < kScanPer; ++e) {
      if (base + e < p.chunks) p.sums[base + e] = run;
      run += loc[e];
    }
    carry += total;
  }
}

template <typename I>
__global__ void __launch_bounds__(kScanThreads) scan_apply_kernel(ScanParams<I> p) {
  const long long base = (long long)blockIdx.x * kScanChunk + threadIdx.x * kScanPer;
  long long loc[kScanPer], v = 0;
  for (int e = 0; e < kScanPer; ++e) {
    loc[e] = base + e < p.n ? static_cast<long long>(p.a[base + e]) : 0;
    v += loc[e];
  }
  long long total;
  long long run = p.sums[blockIdx.x] + block_exclusive_scan(v, &total);
  for (int e = 0; e < kScanPer; ++e) {
    if (base + e < p.n) p.a[base + e] = static_cast<I>(run);
    run += loc[e];
  }
}

template <typename T, typename I>
__global__ void __launch_bounds__(kCheckThreads) csr_colptr_kernel(TransposeParams<T, I> p) {
  for (long long c = (long long)blockIdx.x * blockDim.x + threadIdx.x; c <= p.cols;
       c += (long long)gridDim.x * blockDim.x)
    p.indptr_t[c] = c < p.cols ? p.table[c * p.tiles] : static_cast<I>(p.nnz);
}

template <typename T, typename I>
__global__ void __launch_bounds__(kSpmmThreads) csr_scatter_kernel(TransposeParams<T, I> p) {
  __shared__ I s_col[kSpmmWarps][32];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const long long tile = (long long)blockIdx.x * kSpmmWarps + warp;
  if (tile >= p.tiles) return;
  const long long q0 = tile * p.tile_nnz, q1 = lmin(q0 + p.tile_nnz, p.nnz);
  if (q0 >= q1) return;
  // Row of entry q0: the last row starting at or before it (empty rows start there too).
  long long lo = 0, hi = p.rows - 1;
  while (lo < hi) {
    const long long mid = (lo + hi + 1) >> 1;
    if (static_cast<long long>(p.indptr[mid]) <= q0) lo = mid;
    else hi = mid - 1;
  }
  long long row = lo;  // this lane's row, advanced as its entry moves on
  for (long long base = q0; base < q1; base += 32) {
    const long long q = base + lane;
    const bool valid = q < q1;
    const long long c = valid ? static_cast<long long>(p.indices[q]) : -1;
    if (valid)
      while (static_cast<long long>(p.indptr[row + 1]) <= q) ++row;
    s_col[warp][lane] = static_cast<I>(c);
    __syncwarp();
    bool last;
    const int before = rank_in_chunk(s_col[warp], lane, c, last);
    if (valid) {
      const long long slot = static_cast<long long>(p.table[c * p.tiles + tile]) + before;
      p.indices_t[slot] = static_cast<I>(row);
      p.data_t[slot] = p.data[q];
    }
    __syncwarp();  // every lane has read its slot base before it moves
    if (valid && last) p.table[c * p.tiles + tile] += static_cast<I>(before + 1);
    __syncwarp();
  }
}

// ---- launchers ---------------------------------------------------------------------------------

void check_device_ptr(const void* ptr, const char* fn, const char* name) {
  BM_CHECK(ptr != nullptr, fn, ": ", name, " is a null pointer");
  // A host pointer would fault in the kernel and poison the CUDA context (see gemm.cu).
  int device = 0;
  BM_CUDA_CHECK(cudaGetDevice(&device));
  cudaPointerAttributes attr{};
  BM_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  BM_CHECK(attr.type != cudaMemoryTypeUnregistered && attr.devicePointer != nullptr, fn, ": ",
           name, " (", ptr, ") is not memory the GPU can access");
  BM_CHECK(attr.type != cudaMemoryTypeDevice || attr.device == device, fn, ": ", name,
           " is on device ", attr.device, " but the current device is ", device);
}

std::size_t index_size(IndexType t) { return t == IndexType::i32 ? 4 : 8; }
std::size_t value_size(DType t) { return t == DType::f64 ? 8 : 4; }

void check_matrix(const CsrMatrix& a, const char* fn) {
  BM_CHECK(a.rows >= 0 && a.cols >= 0 && a.stored >= 0, fn, ": negative size (rows=", a.rows,
           ", cols=", a.cols, ", stored=", a.stored, ")");
  BM_CHECK(a.dtype == DType::f32 || a.dtype == DType::f64, fn, ": data must be float32 or float64");
  if (a.index_type == IndexType::i32) {
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    BM_CHECK(a.rows < kMax && a.cols < kMax && a.stored <= kMax, fn,
             ": int32 indices need rows, cols < 2^31 - 1 and at most 2^31 - 1 entries");
  }
  check_device_ptr(a.indptr, fn, "indptr");
  if (a.stored > 0) {
    check_device_ptr(a.indices, fn, "indices");
    check_device_ptr(a.data, fn, "data");
  }
}

// Checks A's structure on the device and returns the number of entries used, indptr[rows].
// flags: 4 long longs of device workspace.
template <typename I>
long long validate(const CsrMatrix& a, long long* flags, cudaStream_t stream, const char* fn) {
  ZeroParams z{flags, 4};
  zero_kernel<<<1, kCheckThreads, 0, stream>>>(z);
  BM_CUDA_CHECK_LAUNCH();
  CsrCheckParams<I> p{static_cast<const I*>(a.indptr), static_cast<const I*>(a.indices), a.rows,
                      a.cols, a.stored, flags};
  const long long n = std::max<long long>(a.rows + 1, a.stored);
  const unsigned grid = stride_grid(n);
  csr_check_kernel<I><<<grid, kCheckThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
  long long h[4] = {0, 0, 0, 0};
  BM_CUDA_CHECK(cudaMemcpyAsync(h, flags, sizeof(h), cudaMemcpyDeviceToHost, stream));
  BM_CUDA_CHECK(cudaStreamSynchronize(stream));
  BM_CHECK(h[0] == 0, fn, ": indptr[0] must be 0");
  BM_CHECK(h[3] >= 0 && h[3] <= a.stored, fn, ": indptr[-1] = ", h[3],
           " exceeds the number of stored entries ", a.stored);
  BM_CHECK(h[1] == 0, fn, ": indptr must be non-decreasing");
  BM_CHECK(h[2] == 0, fn, ": a column index is outside [0, ", a.cols, ")");
  return h[3];
}

template <typename T, typename I, int CPL>
void launch_spmm_tiles(const SpmmParams<T, I>& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>(ceil_div(p.warps, kSpmmWarps)),
                  static_cast<unsigned>(ceil_div(p.K, 32 * CPL)));
  spmm_csr_kernel<T, I, CPL><<<grid, kSpmmThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

template <typename T, typename I>
void run_spmm(const CsrMatrix& a, const void* X, int64_t ldx, void* Y, int64_t ldy, int64_t K,
              void* work, cudaStream_t stream) {
  char* ws = static_cast<char*>(work);
  long long* flags = reinterpret_cast<long long*>(ws);
  const long long nnz = validate<I>(a, flags, stream, "spmm_csr");
  if (a.rows == 0 || K == 0) return;
  SpmmParams<T, I> p{};
  p.indptr = static_cast<const I*>(a.indptr);
  p.indices = static_cast<const I*>(a.indices);
  p.data = static_cast<const T*>(a.data);
  p.X = static_cast<const T*>(X);
  p.Y = static_cast<T*>(Y);
  p.rows = a.rows, p.nnz = nnz, p.K = K, p.ldx = ldx, p.ldy = ldy;
  p.warps = ceil_div(a.rows + nnz, kSpmmItems);
  p.carry_row = reinterpret_cast<long long*>(ws + round_up(4 * sizeof(long long)));
  p.carry = reinterpret_cast<T*>(ws + round_up(4 * sizeof(long long)) +
                                 round_up(p.warps * sizeof(long long)));
  if (K <= 32) launch_spmm_tiles<T, I, 1>(p, stream);
  else if (K <= 64) launch_spmm_tiles<T, I, 2>(p, stream);
  else launch_spmm_tiles<T, I, 4>(p, stream);
  if (p.warps > 1) {
    FixupParams<T> f{p.carry, p.carry_row, p.Y, p.K, p.ldy, p.warps};
    const unsigned grid = static_cast<unsigned>(ceil_div(p.warps, kSpmmWarps));
    spmm_csr_fixup_kernel<T><<<grid, kSpmmThreads, 0, stream>>>(f);
    BM_CUDA_CHECK_LAUNCH();
  }
}

long long transpose_tiles(long long nnz, long long cols) {
  const long long want = std::max<long long>(1, ceil_div(nnz, kTileNnz));
  const long long cap = std::max<long long>(1, kTableBudget / std::max<long long>(cols, 1));
  return std::min(want, cap);
}

template <typename T, typename I>
void run_transpose(const CsrMatrix& a, void* indptr_t, void* indices_t, void* data_t, void* work,
                   cudaStream_t stream) {
  char* ws = static_cast<char*>(work);
  long long* flags = reinterpret_cast<long long*>(ws);
  const long long nnz = validate<I>(a, flags, stream, "csr_transpose");
  TransposeParams<T, I> p{};
  p.indptr = static_cast<const I*>(a.indptr);
  p.indices = static_cast<const I*>(a.indices);
  p.data = static_cast<const T*>(a.data);
  p.indptr_t = static_cast<I*>(indptr_t);
  p.indices_t = static_cast<I*>(indices_t);
  p.data_t = static_cast<T*>(data_t);
  p.rows = a.rows, p.cols = a.cols, p.nnz = nnz;
  p.tiles = transpose_tiles(nnz, a.cols);
  p.tile_nnz = ceil_div(nnz, p.tiles);
  const long long L = a.cols * p.tiles;
  p.table = reinterpret_cast<I*>(ws + round_up(4 * sizeof(long long)));
  long long* sums = reinterpret_cast<long long*>(ws + round_up(4 * sizeof(long long)) +
                                                 round_up(L * sizeof(I)));
  const unsigned tile_grid = static_cast<unsigned>(ceil_div(p.tiles, kSpmmWarps));
  if (L > 0) {
    // The table as long longs would be wrong for int32; zero it through a byte-exact view.
    const long long words = ceil_div(L * static_cast<long long>(sizeof(I)), 8);
    static_assert(kAlign % 8 == 0, "table offset must allow 8-byte words");
    ZeroParams z{reinterpret_cast<long long*>(p.table), words};
    const unsigned zg = stride_grid(words);
    zero_kernel<<<zg, kCheckThreads, 0, stream>>>(z);
    BM_CUDA_CHECK_LAUNCH();
    csr_count_kernel<T, I><<<tile_grid, kSpmmThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
    ScanParams<I> s{p.table, L, sums, ceil_div(L, kScanChunk)};
    const unsigned chunks = static_cast<unsigned>(s.chunks);
    scan_sums_kernel<I><<<chunks, kScanThreads, 0, stream>>>(s);
    BM_CUDA_CHECK_LAUNCH();
    scan_top_kernel<I><<<1, kScanThreads, 0, stream>>>(s);
    BM_CUDA_CHECK_LAUNCH();
    scan_apply_kernel<I><<<chunks, kScanThreads, 0, stream>>>(s);
    BM_CUDA_CHECK_LAUNCH();
  }
  const unsigned cg = stride_grid(a.cols + 1);
  csr_colptr_kernel<T, I><<<cg, kCheckThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
  if (nnz > 0) {
    csr_scatter_kernel<T, I><<<tile_grid, kSpmmThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

std::size_t spmm_csr_workspace_bytes(int64_t rows, int64_t stored, int64_t K, DType dtype) {
  BM_CHECK(rows >= 0 && stored >= 0 && K >= 0, "spmm_csr: negative size (rows=", rows,
           ", stored=", stored, ", K=", K, ")");
  const long long warps = ceil_div(rows + stored, kSpmmItems);
  return round_up(4 * sizeof(long long)) + round_up(warps * sizeof(long long)) +
         round_up(static_cast<std::size_t>(warps * K) * value_size(dtype));
}

std::size_t csr_transpose_workspace_bytes(int64_t rows, int64_t cols, int64_t stored,
                                          IndexType index_type) {
  BM_CHECK(rows >= 0 && cols >= 0 && stored >= 0, "csr_transpose: negative size (rows=", rows,
           ", cols=", cols, ", stored=", stored, ")");
  const long long L = cols * transpose_tiles(stored, cols);
  return round_up(4 * sizeof(long long)) + round_up(L * index_size(index_type)) +
         round_up(ceil_div(L, kScanChunk) * sizeof(long long));
}

void launch_spmm_csr(const CsrMatrix& a, const void* X, int64_t ldx, void* Y, int64_t ldy,
                     int64_t K, void* work, std::size_t work_bytes, std::uintptr_t stream_ptr) {
  const char* fn = "spmm_csr";
  check_matrix(a, fn);
  BM_CHECK(K >= 0 && K <= 65535LL * 128, fn, ": K must be in [0, ", 65535LL * 128, "], got ", K);
  BM_CHECK(ldx >= K && ldy >= K, fn, ": leading dimensions must be >= K (ldx=", ldx, ", ldy=",
           ldy, ", K=", K, ")");
  const std::size_t need = spmm_csr_workspace_bytes(a.rows, a.stored, K, a.dtype);
  BM_CHECK(work_bytes >= need, fn, ": workspace has ", work_bytes, " bytes, needs ", need);
  check_device_ptr(work, fn, "work");
  if (a.rows > 0 && K > 0) {
    check_device_ptr(Y, fn, "y");
    if (a.cols > 0) check_device_ptr(X, fn, "x");
  }
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const bool f64 = a.dtype == DType::f64, i64 = a.index_type == IndexType::i64;
  if (!f64 && !i64) run_spmm<float, int32_t>(a, X, ldx, Y, ldy, K, work, stream);
  else if (!f64) run_spmm<float, int64_t>(a, X, ldx, Y, ldy, K, work, stream);
  else if (!i64) run_spmm<double, int32_t>(a, X, ldx, Y, ldy, K, work, stream);
  else run_spmm<double, int64_t>(a, X, ldx, Y, ldy, K, work, stream);
}

void launch_csr_transpose(const CsrMatrix& a, void* indptr_t, void* indices_t, void* data_t,
                          void* work, std::size_t work_bytes, std::uintptr_t stream_ptr) {
  const char* fn = "csr_transpose";
  check_matrix(a, fn);
  const std::size_t need = csr_transpose_workspace_bytes(a.rows, a.cols, a.stored, a.index_type);
  BM_CHECK(work_bytes >= need, fn, ": workspace has ", work_bytes, " bytes, needs ", need);
  check_device_ptr(work, fn, "work");
  check_device_ptr(indptr_t, fn, "out_indptr");
  if (a.stored > 0) {
    check_device_ptr(indices_t, fn, "out_indices");
    check_device_ptr(data_t, fn, "out_data");
  }
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const bool f64 = a.dtype == DType::f64, i64 = a.index_type == IndexType::i64;
  if (!f64 && !i64) run_transpose<float, int32_t>(a, indptr_t, indices_t, data_t, work, stream);
  else if (!f64) run_transpose<float, int64_t>(a, indptr_t, indices_t, data_t, work, stream);
  else if (!i64) run_transpose<double, int32_t>(a, indptr_t, indices_t, data_t, work, stream);
  else run_transpose<double, int64_t>(a, indptr_t, indices_t, data_t, work, stream);
}

}  // namespace bm::cuda
