// AVX2+FMA GEMM micro-kernels (fp32 6x16, fp64 6x8): 12 accumulators + 2 B + 1 broadcast of the
// 16 ymm registers, the classic Haswell-era tile. Compiled with -mavx2 -mfma.
//
// Same conventions as the AVX-512 kernels (gemm_avx512.cpp): A is read row-major in place or
// from a compact row copy (RA) or as a packed k-major micro-panel; short edge panels run a
// shorter tile (with_rows) and a narrow last column panel only the vectors it needs (with_vecs).
// The row mode matters most here: packing A k-major is a scalar transpose, which cost this path
// 20-40% on the layer shapes (64x4096x4096 ran at 0.61x OpenBLAS's Haswell kernels; NOTES.md
// GEMM item 17).
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/gemm_driver.h"

namespace bm {
namespace avx2 {
namespace {

using gemm_detail::clamped_rows;
using gemm_detail::with_rows;
using gemm_detail::with_vecs;

// Vector operations of one element type, so that one kernel template serves fp32 and fp64.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_load_ps(p); }
  static V loadu(const float* p) { return _mm256_loadu_ps(p); }
  // Lanes >= valid read as zero, not touched. vmaskmov costs more than a plain load (the AVX2
  // Gram products with full vectors ran 10-15% slower with it), so only when needed.
  static V loadn(const float* p, int valid) {
    if (valid >= W) return loadu(p);
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_maskload_ps(p, _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), idx));
  }
  static V bcast(const float* p) { return _mm256_broadcast_ss(p); }
  static V set1(float x) { return _mm256_set1_ps(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static void store(float* p, V v) { _mm256_store_ps(p, v); }
  static void storeu(float* p, V v) { _mm256_storeu_ps(p, v); }
};
template <>
struct Vec<double> {
  using V = __m256d;
  static constexpr int W = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_load_pd(p); }
  static V loadu(const double* p) { return _mm256_loadu_pd(p); }
  static V loadn(const double* p, int valid) {
    if (valid >= W) return loadu(p);
    const __m256i idx = _mm256_setr_epi64x(0, 1, 2, 3);
    return _mm256_maskload_pd(p, _mm256_cmpgt_epi64(_mm256_set1_epi64x(valid), idx));
  }
  static V bcast(const double* p) { return _mm256_broadcast_sd(p); }
  static V set1(double x) { return _mm256_set1_pd(x); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static void store(double* p, V v) { _mm256_store_pd(p, v); }
  static void storeu(double* p, V v) { _mm256_storeu_pd(p, v); }
};

// Writes acc (R rows x NV vectors) times alpha, plus beta times C (not read when beta is 0), to
// the first m rows and n columns of C. Rows unrolled with a break: a loop to the run-time m made
// GCC keep acc in memory and store all of it on every k step (half speed).
template <int R, int NV, typename T>
__attribute__((always_inline)) inline void store_tile(typename Vec<T>::V (&acc)[R][NV], T* c,
                                                      int64_t rs_c, int64_t cs_c, int m, int n,
                                                      T alpha, T beta) {
  using O = Vec<T>;
  if (cs_c == 1 && n == NV * O::W) {  // full-width rows: vector stores
    const typename O::V va = O::set1(alpha), vb = O::set1(beta);
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i) {
      if (i >= m) break;
      T* row = c + i * rs_c;
#pragma GCC unroll 2
      for (int v = 0; v < NV; ++v) {
        typename O::V r = O::mul(acc[i][v], va);
        if (beta != T(0)) r = O::fma(O::loadu(row + O::W * v), vb, r);
        O::storeu(row + O::W * v, r);
      }
    }
    return;
  }
  alignas(32) T tile[R * NV * O::W];
#pragma GCC unroll 6
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
    for (int v = 0; v < NV; ++v) O::store(tile + (i * NV + v) * O::W, acc[i][v]);
  gemm_detail::store_tile_generic(tile, NV * O::W, c, rs_c, cs_c, m, n, alpha, beta);
}

// The vector operations as gemm_detail::DirectTile wants them.
template <typename T>
struct VecOps : Vec<T> {
  template <int R, int NV>
  static void tile_store(typename Vec<T>::V (&acc)[R][NV], T* c, int64_t rs_c, int64_t cs_c,
                         int m, int n, T alpha, T beta) {
    store_tile<R, NV, T>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
};

// MR x (NV * lanes) tile of T. RA: A row-major (a[i*lda + k], rows >= m clamped to the last
// valid one); otherwise a packed micro-panel. B is a packed, aligned panel.
template <typename T, int MR_, int NV, int64_t KC_, int64_t NC_>
struct KernT {
  using TP = T;
  using TC = T;
  using O = Vec<T>;
  static constexpr int MR = MR_, NR = NV * O::W, KU = 1;
  static constexpr int64_t KC = KC_, NC = NC_;
  static constexpr bool kRowA = true;
  static constexpr int64_t kSmallM = 96, kInPlaceMaxN = 256;
  template <bool RA>
  static void ukr(int64_t ks, const T* a, int64_t lda, const T* b, T* c, int64_t rs_c,
                  int64_t cs_c, int m, int n, T alpha, T beta) {
    with_rows<MR>(m, [&](auto r) {
      with_vecs<NV, O::W>(n, [&](auto v) {
        ukr_rows<RA, decltype(r)::value, decltype(v)::value>(ks, a, lda, b, c, rs_c, cs_c, m, n,
                                                             alpha, beta);
      });
    });
  }
  // R rows x NVE of the panel's vectors (the packed panel keeps its NR stride per k).
  template <bool RA, int R, int NVE>
  __attribute__((noinline))  // inlined into the drivers, edge tiles spilled (NOTES GEMM 19)
  static void ukr_rows(int64_t ks, const T* a, int64_t lda, const T* b, T* c, int64_t rs_c,
                       int64_t cs_c, int m, int n, T alpha, T beta) {
    typename O::V acc[R][NVE];
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NVE; ++v) acc[i][v] = O::zero();
    const T* ar[R];
    if constexpr (RA) clamped_rows(ar, a, lda, m);
    for (int64_t k = 0; k < ks; ++k) {
      typename O::V bv[NVE];
#pragma GCC unroll 2
      for (int v = 0; v < NVE; ++v) bv[v] = O::load(b + O::W * v);
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        const typename O::V ai = O::bcast(RA ? ar[i] + k : a + i);
#pragma GCC unroll 2
        for (int v = 0; v < NVE; ++v) acc[i][v] = O::fma(ai, bv[v], acc[i][v]);
      }
      if constexpr (!RA) a += MR;
      b += NR;
    }
    store_tile<R, NVE, T>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
  static constexpr bool kDirect = true;  // see gemm_detail::DirectTile
  static void ukr_direct(int64_t ks, const T* a, int64_t a_rs, int64_t a_ks, const T* b,
                         int64_t ldb, T* c, int64_t rs_c, int64_t cs_c, int m, int n, T alpha,
                         T beta) {
    gemm_detail::DirectTile<VecOps<T>, T, MR, NV>::run(ks, a, a_rs, a_ks, b, ldb, c, rs_c, cs_c, m,
                                                       n, alpha, beta);
  }
};

using KernF32 = KernT<float, 6, 2, 256, 1024>;
using KernF64 = KernT<double, 6, 2, 256, 512>;

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
           int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernF32>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                    cs_c, nt);
}

void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rs_a,
           int64_t cs_a, const double* B, int64_t rs_b, int64_t cs_b, double beta, double* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernF64>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                    cs_c, nt);
}

}  // namespace avx2
}  // namespace bm
