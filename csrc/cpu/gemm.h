// GEMM: C = alpha * A·B + beta * C on the CPU, the building block of every other family.
//
// Matrices are given by a pointer and element strides (rs = step between rows, cs = step between
// columns), BLIS-style, so transposed and strided NumPy views are read without a copy:
//   A (M, K) at A[i*rs_a + k*cs_a], B (K, N) at B[k*rs_b + j*cs_b], C (M, N) at C[i*rs_c + j*cs_c].
// Strides may be negative. beta == 0 means C is not read (NaN in C does not propagate).
// The instruction set (AVX-512 / AVX2 / portable) is the one chosen at import (cpu_features.h);
// threads = bm::num_threads(), or 1 when called from inside an OpenMP parallel region (so conv,
// attention... can call it per thread).
#pragma once
#include <cstdint>

namespace bm {

template <typename T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a, int64_t cs_a,
          const T* B, int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c);

// bf16 products with fp32 accumulation (AVX512_BF16 vdpbf16ps). The float32 inputs are rounded
// to bfloat16 (round to nearest even) while being packed; the *_bf16in variant takes inputs that
// already are bfloat16 bit patterns (uint16). Throws std::runtime_error when the CPU lacks bf16.
void gemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
               int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
               int64_t rs_c, int64_t cs_c);
void gemm_bf16in(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t rs_a,
                 int64_t cs_a, const uint16_t* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
                 int64_t rs_c, int64_t cs_c);

// Round-to-nearest-even float -> bfloat16 bits (NaN stays NaN) and back.
inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  __builtin_memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
inline float bf16_to_float(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &u, 4);
  return f;
}

// Per-ISA entry points (defined in gemm_avx512.cpp, gemm_avx2.cpp, gemm.cpp); the dispatcher
// above picks one. All share the signature of gemm<T> plus a thread count.
#define BM_GEMM_DECL(ns)                                                                          \
  namespace ns {                                                                                  \
  void sgemm(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,      \
             int64_t, int64_t, float, float*, int64_t, int64_t, int);                             \
  void dgemm(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, const double*,   \
             int64_t, int64_t, double, double*, int64_t, int64_t, int);                           \
  }
BM_GEMM_DECL(portable)
BM_GEMM_DECL(avx2)
BM_GEMM_DECL(avx512)
#undef BM_GEMM_DECL
namespace avx512 {
void sgemm_bf16(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                int64_t, int64_t, float, float*, int64_t, int64_t, int);
void sgemm_bf16in(int64_t, int64_t, int64_t, float, const uint16_t*, int64_t, int64_t,
                  const uint16_t*, int64_t, int64_t, float, float*, int64_t, int64_t, int);
}  // namespace avx512

}  // namespace bm

namespace bm {
// Batched GEMM over 3-D operands with batch strides (0 = broadcast): C[b] = alpha A[b] B[b] +
// beta C[b]. Small matrices run one per thread; large ones use all threads each.
// precision: 0 = native (fp32 / fp64), 1 = bf16 products with fp32 accumulation (T = float).
template <typename T>
void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
                  int64_t bs_a, int64_t rs_a, int64_t cs_a, const T* B, int64_t bs_b,
                  int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t bs_c, int64_t rs_c,
                  int64_t cs_c, int precision = 0);
// The same with bfloat16 inputs (uint16 bit patterns) and float32 C.
void gemm_batched_bf16in(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                         const uint16_t* A, int64_t bs_a, int64_t rs_a, int64_t cs_a,
                         const uint16_t* B, int64_t bs_b, int64_t rs_b, int64_t cs_b, float beta,
                         float* C, int64_t bs_c, int64_t rs_c, int64_t cs_c);
}  // namespace bm
