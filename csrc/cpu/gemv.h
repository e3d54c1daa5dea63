// Matrix-vector products for GEMM calls with one output row or column (M == 1 or N == 1): batch-1
// inference through a Linear layer, a dot product, a projection onto one vector. The blocked GEMM
// would pack the whole weight matrix (one read and one write of it) and then run a micro-tile
// with one useful row out of MR; these shapes are memory-bound, so the matrix is read exactly once
// here, in the order it lies in memory. Included by gemm_driver.h, so each per-ISA translation
// unit compiles it with its own vector width.
//
//   y[i] = alpha * sum_k W[i, k] x[k] + beta y[i]      (i < rows; beta == 0 overwrites y)
//
// Determinism: every y[i] is the same function of its inputs whatever the thread count. The sum
// over k runs in fixed blocks of kBlock elements, each block a vectorised reduction, the blocks
// added in order; the threads only decide who computes which (row, block) pair.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace bm::gemv_detail {
// Internal linkage: each per-ISA translation unit keeps its own copy (a shared inline symbol
// would let the linker keep the baseline-ISA one for every path).
namespace {

constexpr int64_t kBlock = 1 << 14;  // elements of k per partial sum (64 KiB of float32)
template <typename T>
constexpr int64_t kAxpyCols = 16384 / sizeof(T);  // y rows per chunk, column-major (axpy) form

template <typename T>
inline T block_dot(const T* w, int64_t cs_w, const T* x, int64_t inc_x, int64_t n) {
  T s = 0;
  if (cs_w == 1 && inc_x == 1) {
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; ++k) s += w[k] * x[k];
  } else {
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < n; ++k) s += w[k * cs_w] * x[k * inc_x];
  }
  return s;
}

// Adds the dot products of four contiguous rows (rs_w apart) with x to s[0..3].
template <typename T>
inline void block_dot4(const T* w, int64_t rs_w, const T* x, int64_t n, T* s) {
  const T *w0 = w, *w1 = w + rs_w, *w2 = w1 + rs_w, *w3 = w2 + rs_w;
  T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
  for (int64_t k = 0; k < n; ++k) {
    const T xk = x[k];
    s0 += w0[k] * xk;
    s1 += w1[k] * xk;
    s2 += w2[k] * xk;
    s3 += w3[k] * xk;
  }
  s[0] += s0;
  s[1] += s1;
  s[2] += s2;
  s[3] += s3;
}

template <typename T>
inline void store(T* y, T alpha, T dot, T beta) {
  *y = beta == T(0) ? alpha * dot : alpha * dot + beta * *y;
}

// Threads for a pass over `elems` matrix elements: parallel regions cost microseconds, so each
// thread gets at least ~1 MiB of the matrix.
inline int threads_for(int64_t elems, size_t elem_bytes, int nthreads) {
  if (omp_in_parallel()) return 1;
  const double per = double(elems) * double(elem_bytes) / double(1 << 20);
  return static_cast<int>(std::max(1.0, std::min<double>(std::max(1, nthreads), per)));
}

template <typename T>
void gemv(int64_t rows, int64_t K, T alpha, const T* W, int64_t rs_w, int64_t cs_w, const T* x,
          int64_t inc_x, T beta, T* y, int64_t inc_y, int nthreads) {
  const int nt = threads_for(rows * K, sizeof(T), nthreads);
  const int64_t nblk = (K + kBlock - 1) / kBlock;

  if (rs_w == 1 && cs_w != 1 && rows >= 16) {
    // W column-major (e.g. y = a B with B row-major): stream W's columns contiguously, each
    // thread a chunk of y (accumulators in L1) summed over all k in order, four k per pass (a
    // quarter of the accumulator loads and stores). Every y[i] sees the same operations
    // whatever the chunking, so the thread count changes no bits.
    constexpr int64_t kCols = kAxpyCols<T>;
    const int64_t per = (rows + nt - 1) / nt;
    const int64_t cols = std::min(kCols, (per + 15) / 16 * 16);
    const int64_t nchunks = (rows + cols - 1) / cols;
    const int nta = static_cast<int>(std::min<int64_t>(nt, nchunks));
#pragma omp parallel for num_threads(nta) schedule(static) if (nta > 1)
    for (int64_t c = 0; c < nchunks; ++c) {
      const int64_t i0 = c * cols, n = std::min(cols, rows - i0);
      T acc[kCols];
      for (int64_t i = 0; i < n; ++i) acc[i] = 0;
      const T* wc = W + i0;
      int64_t k = 0;
      for (; k + 4 <= K; k += 4) {
        const T x0 = x[k * inc_x], x1 = x[(k + 1) * inc_x], x2 = x[(k + 2) * inc_x],
                x3 = x[(k + 3) * inc_x];
        const T* w0 = wc + k * cs_w;
        const T *w1 = w0 + cs_w, *w2 = w1 + cs_w, *w3 = w2 + cs_w;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i)
          acc[i] += ((w0[i] * x0 + w1[i] * x1) + (w2[i] * x2 + w3[i] * x3));
      }
      for (; k < K; ++k) {
        const T xk = x[k * inc_x];
        const T* wk = wc + k * cs_w;
#pragma omp simd
        for (int64_t i = 0; i < n; ++i) acc[i] += wk[i] * xk;
      }
      for (int64_t i = 0; i < n; ++i) store(y + (i0 + i) * inc_y, alpha, acc[i], beta);
    }
    return;
  }

  if (rows >= 4 || nt == 1 || nblk == 1) {
    // Rows of dot products, the blocks of a row in order. Four rows at a time share the loads of
    // x and keep four independent accumulator chains; the groups are fixed by the row index, so
    // the thread count changes no bits.
    const int64_t ngroups = (rows + 3) / 4;
    const int ntr = static_cast<int>(std::min<int64_t>(nt, ngroups));
#pragma omp parallel for num_threads(ntr) schedule(static) if (ntr > 1)
    for (int64_t g = 0; g < ngroups; ++g) {
      const int64_t i0 = g * 4;
      if (i0 + 4 <= rows && cs_w == 1 && inc_x == 1) {
        T s[4] = {0, 0, 0, 0};
        for (int64_t b = 0; b < nblk; ++b) {
          const int64_t k0 = b * kBlock;
          block_dot4(W + i0 * rs_w + k0, rs_w, x + k0, std::min(kBlock, K - k0), s);
        }
        for (int r = 0; r < 4; ++r) store(y + (i0 + r) * inc_y, alpha, s[r], beta);
        continue;
      }
      for (int64_t i = i0; i < std::min(rows, i0 + 4); ++i) {
        T s = 0;
        for (int64_t b = 0; b < nblk; ++b) {
          const int64_t k0 = b * kBlock;
          s += block_dot(W + i * rs_w + k0 * cs_w, cs_w, x + k0 * inc_x, inc_x,
                         std::min(kBlock, K - k0));
        }
        store(y + i * inc_y, alpha, s, beta);
      }
    }
    return;
  }

  // One to three rows, long k: the (row, block) partials in parallel, then each row's sum in
  // block order -- the same additions as the loop above makes for these rows.
  std::vector<T> part(static_cast<size_t>(rows * nblk));
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t p = 0; p < rows * nblk; ++p) {
    const int64_t i = p / nblk, k0 = (p % nblk) * kBlock;
    part[p] = block_dot(W + i * rs_w + k0 * cs_w, cs_w, x + k0 * inc_x, inc_x,
                        std::min(kBlock, K - k0));
  }
  for (int64_t i = 0; i < rows; ++i) {
    T s = 0;
    for (int64_t b = 0; b < nblk; ++b) s += part[i * nblk + b];
    store(y + i * inc_y, alpha, s, beta);
  }
}

}  // namespace
}  // namespace bm::gemv_detail
