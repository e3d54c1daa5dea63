// AVX2+FMA GEMM micro-kernels (fp32 6x16, fp64 6x8): 12 accumulators + 2 B + 1 broadcast of the
// 16 ymm registers, the classic Haswell-era tile. Compiled with -mavx2 -mfma.
#include <immintrin.h>

#include "cpu/gemm.h"
#include "cpu/gemm_driver.h"

namespace bm {
namespace avx2 {
namespace {

struct KernF32 {
  using TP = float;
  using TC = float;
  static constexpr int MR = 6, NR = 16, KU = 1;
  static constexpr int64_t KC = 256, NC = 1024;
  static constexpr bool kRowA = false;
  static constexpr int64_t kSmallM = 48, kInPlaceMaxN = 0;
  template <bool RA>
  static void ukr(int64_t ks, const float* a, int64_t, const float* b, float* c, int64_t rs_c,
                  int64_t cs_c, int m, int n, float alpha, float beta) {
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < ks; ++k) {
      const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(a + i);
        acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
      }
      a += MR;
      b += NR;
    }
    if (m == MR && n == NR && cs_c == 1) {
      const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
      for (int i = 0; i < MR; ++i) {
        float* row = c + i * rs_c;
        __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
        if (beta != 0.f) {
          r0 = _mm256_fmadd_ps(_mm256_loadu_ps(row), vb, r0);
          r1 = _mm256_fmadd_ps(_mm256_loadu_ps(row + 8), vb, r1);
        }
        _mm256_storeu_ps(row, r0);
        _mm256_storeu_ps(row + 8, r1);
      }
    } else {
      alignas(32) float tile[MR * NR];
      for (int i = 0; i < MR; ++i) {
        _mm256_store_ps(tile + i * NR, acc[i][0]);
        _mm256_store_ps(tile + i * NR + 8, acc[i][1]);
      }
      gemm_detail::store_tile_generic(tile, NR, c, rs_c, cs_c, m, n, alpha, beta);
    }
  }
};

struct KernF64 {
  using TP = double;
  using TC = double;
  static constexpr int MR = 6, NR = 8, KU = 1;
  static constexpr int64_t KC = 256, NC = 512;
  static constexpr bool kRowA = false;
  static constexpr int64_t kSmallM = 48, kInPlaceMaxN = 0;
  template <bool RA>
  static void ukr(int64_t ks, const double* a, int64_t, const double* b, double* c, int64_t rs_c,
                  int64_t cs_c, int m, int n, double alpha, double beta) {
    __m256d acc[MR][2];
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_pd();
    for (int64_t k = 0; k < ks; ++k) {
      const __m256d b0 = _mm256_load_pd(b), b1 = _mm256_load_pd(b + 4);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256d ai = _mm256_broadcast_sd(a + i);
        acc[i][0] = _mm256_fmadd_pd(ai, b0, acc[i][0]);
        acc[i][1] = _mm256_fmadd_pd(ai, b1, acc[i][1]);
      }
      a += MR;
      b += NR;
    }
    alignas(32) double tile[MR * NR];
    for (int i = 0; i < MR; ++i) {
      _mm256_store_pd(tile + i * NR, acc[i][0]);
      _mm256_store_pd(tile + i * NR + 4, acc[i][1]);
    }
    gemm_detail::store_tile_generic(tile, NR, c, rs_c, cs_c, m, n, alpha, beta);
  }
};

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
