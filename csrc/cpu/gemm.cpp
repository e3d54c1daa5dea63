// GEMM dispatcher and the portable micro-kernel (plain C++, auto-vectorised for the baseline ISA).
//
// Variants: avx512 (gemm_avx512.cpp), avx2 (gemm_avx2.cpp), portable (here). The dispatcher reads
// bm::active_isa() on every call, so bigmodel's tests can switch paths at run time.
#include "cpu/gemm.h"

#include <exception>
#include <stdexcept>
#include <type_traits>

#include "common/cpu_features.h"
#include "cpu/gemm_driver.h"

namespace bm {
namespace portable {
namespace {

template <typename T, int MR_, int NR_>
struct KernGeneric {
  using TP = T;
  using TC = T;
  static constexpr int MR = MR_, NR = NR_, KU = 1;
  static constexpr int64_t KC = 256, NC = 512;
  static constexpr bool kRowA = false;
  static constexpr int64_t kSmallM = 48, kInPlaceMaxN = 0;
  template <bool RA>
  static void ukr(int64_t ks, const T* a, int64_t, const T* b, T* c, int64_t rs_c, int64_t cs_c, int m,
                  int n, T alpha, T beta) {
    T acc[MR * NR] = {};
    for (int64_t k = 0; k < ks; ++k) {
      for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) acc[i * NR + j] += a[i] * b[j];
      a += MR;
      b += NR;
    }
    gemm_detail::store_tile_generic(acc, NR, c, rs_c, cs_c, m, n, alpha, beta);
  }
};

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
           int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernGeneric<float, 4, 8>>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b,
                                                     beta, C, rs_c, cs_c, nt);
}

void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rs_a,
           int64_t cs_a, const double* B, int64_t rs_b, int64_t cs_b, double beta, double* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernGeneric<double, 4, 4>>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b,
                                                      cs_b, beta, C, rs_c, cs_c, nt);
}

}  // namespace portable

template <>
void gemm<float>(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
                 int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
                 int64_t rs_c, int64_t cs_c) {
  const int nt = num_threads();
  switch (active_isa()) {
#if defined(BM_X86)
    case Isa::avx512:
      return avx512::sgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
    case Isa::avx2:
      return avx2::sgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
#endif
    default:
      return portable::sgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
  }
}

template <>
void gemm<double>(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rs_a,
                  int64_t cs_a, const double* B, int64_t rs_b, int64_t cs_b, double beta,
                  double* C, int64_t rs_c, int64_t cs_c) {
  const int nt = num_threads();
  switch (active_isa()) {
#if defined(BM_X86)
    case Isa::avx512:
      return avx512::dgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
    case Isa::avx2:
      return avx2::dgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
#endif
    default:
      return portable::dgemm(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c, nt);
  }
}

void gemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
               int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
               int64_t rs_c, int64_t cs_c) {
#if defined(BM_X86)
  if (bf16_available())
    return avx512::sgemm_bf16(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                              num_threads());
#endif
  throw std::runtime_error("gemm_bf16: this CPU (or the active ISA path) has no AVX512_BF16");
}

void gemm_bf16in(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t rs_a,
                 int64_t cs_a, const uint16_t* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
                 int64_t rs_c, int64_t cs_c) {
#if defined(BM_X86)
  if (bf16_available())
    return avx512::sgemm_bf16in(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c,
                                num_threads());
#endif
  throw std::runtime_error("gemm_bf16in: this CPU (or the active ISA path) has no AVX512_BF16");
}

}  // namespace bm

#include <omp.h>

namespace bm {

namespace {

// Runs one(b) for every batch entry: many small products one per thread (each gemm then runs
// single-threaded), large ones one after another with all threads each.
template <typename F>
void for_each_batch(int64_t batch, double flops, F&& one) {
  const int nt = num_threads();
  if (batch > 1 && nt > 1 && flops < 2e7 && !omp_in_parallel()) {
    std::exception_ptr err = nullptr;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (int64_t b = 0; b < batch; ++b) {
      try {
        one(b);
      } catch (...) {
#pragma omp critical(bm_gemm_err)
        err = std::current_exception();
      }
    }
    if (err) std::rethrow_exception(err);
  } else {
    for (int64_t b = 0; b < batch; ++b) one(b);
  }
}

}  // namespace

template <typename T>
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t bs_a, int64_t rs_a, int64_t cs_a, const T* B, int64_t bs_b,
                  int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t bs_c, int64_t rs_c,
                  int64_t cs_c, int precision) {
  if (precision == 1 && !std::is_same<T, float>::value)
    throw std::invalid_argument("gemm: precision='bf16' needs float32 operands");
  for_each_batch(batch, 2.0 * double(M) * double(N) * double(K), [&](int64_t b) {
    if constexpr (std::is_same<T, float>::value) {
      if (precision == 1)
        return gemm_bf16(M, N, K, alpha, A + b * bs_a, rs_a, cs_a, B + b * bs_b, rs_b, cs_b, beta,
                         C + b * bs_c, rs_c, cs_c);
    }
    gemm<T>(M, N, K, alpha, A + b * bs_a, rs_a, cs_a, B + b * bs_b, rs_b, cs_b, beta,
            C + b * bs_c, rs_c, cs_c);
  });
}

void gemm_batched_bf16in(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                         const uint16_t* A, int64_t bs_a, int64_t rs_a, int64_t cs_a,
                         const uint16_t* B, int64_t bs_b, int64_t rs_b, int64_t cs_b, float beta,
                         float* C, int64_t bs_c, int64_t rs_c, int64_t cs_c) {
  for_each_batch(batch, 2.0 * double(M) * double(N) * double(K), [&](int64_t b) {
    gemm_bf16in(M, N, K, alpha, A + b * bs_a, rs_a, cs_a, B + b * bs_b, rs_b, cs_b, beta,
                C + b * bs_c, rs_c, cs_c);
  });
}

template void gemm_batched<float>(int64_t, int64_t, int64_t, int64_t, float, const float*, int64_t,
                                  int64_t, int64_t, const float*, int64_t, int64_t, int64_t, float,
                                  float*, int64_t, int64_t, int64_t, int);
template void gemm_batched<double>(int64_t, int64_t, int64_t, int64_t, double, const double*,
                                   int64_t, int64_t, int64_t, const double*, int64_t, int64_t,
                                   int64_t, double, double*, int64_t, int64_t, int64_t, int);

}  // namespace bm
