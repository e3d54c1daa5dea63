// Row primitives for the softmax-shaped kernels (attention, softmax, cross-entropy): vectorised
// exp, row max, exp-and-sum. Included by the per-ISA translation units (attention*.cpp,
// nn*.cpp) with BM_ISA_NS defined to avx512 / avx2 / portable, so each gets the body its
// compile flags allow and the copies never collide (distinct namespaces, no ODR clash).
//
// exp: Cephes-style range reduction x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial for e^r,
// then 2^n (AVX-512: vscalefps; AVX2 / portable: exponent bits). Max rel error ~2 ulp over
// [-87, 88]; inputs below ~-87.3 (and -inf) give exactly 0, above 88.7 saturate at e^88.7,
// NaN gives NaN (a NaN score or logit must not read as a hidden one: min/max take x second,
// which the instructions return when it is NaN, and the underflow compare is ordered).
// float64 uses std::exp (the float64 path is the simple one).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#ifndef BM_ISA_NS
#error "define BM_ISA_NS (avx512, avx2 or portable) before including cpu/vmath.h"
#endif

namespace bm {
namespace BM_ISA_NS {
namespace vm {

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpHi = 88.3762626647949f, kExpLo = -87.3365447504f;
constexpr float kP0 = 1.9875691500E-4f, kP1 = 1.3981999507E-3f, kP2 = 8.3334519073E-3f,
                kP3 = 4.1665795894E-2f, kP4 = 1.6666665459E-1f, kP5 = 5.0000001201E-1f;

// Scalar exp with the same polynomial (tails and the portable path).
inline float exp_scalar(float x) {
  if (x != x) return x;
  if (x < kExpLo) return 0.f;  // also -inf (masked entries)
  x = x > kExpHi ? kExpHi : x;
  const float n = std::nearbyint(x * kLog2e);
  float r = x - n * kLn2Hi;
  r = r - n * kLn2Lo;
  const float r2 = r * r;
  float p = ((((kP0 * r + kP1) * r + kP2) * r + kP3) * r + kP4) * r + kP5;
  p = p * r2 + r + 1.f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float s;
  std::memcpy(&s, &bits, 4);
  return p * s;
}

#if defined(__AVX512F__)
inline __m512 exp16(__m512 x) {
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpLo), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_set1_ps(kExpHi), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.f)));
  return _mm512_maskz_scalef_ps(static_cast<__mmask16>(~under), p, n);
}
inline __mmask16 tail_mask(int64_t left) {
  return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1);
}
#elif defined(__AVX2__)
inline __m256 exp8(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(kExpLo), _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_set1_ps(kExpLo), _mm256_min_ps(_mm256_set1_ps(kExpHi), x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  const __m256 r2 = _mm256_mul_ps(r, r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kP0), r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}
inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#endif

// max_j x[j] (-inf for n == 0).
inline float max_row(const float* x, int64_t n) {
  float m = -std::numeric_limits<float>::infinity();
  int64_t j = 0;
#if defined(__AVX512F__)
  __m512 v0 = _mm512_set1_ps(m), v1 = v0;
  for (; j + 32 <= n; j += 32) {
    v0 = _mm512_max_ps(v0, _mm512_loadu_ps(x + j));
    v1 = _mm512_max_ps(v1, _mm512_loadu_ps(x + j + 16));
  }
  for (; j < n; j += 16) v0 = _mm512_mask_max_ps(v0, tail_mask(n - j), v0, _mm512_maskz_loadu_ps(tail_mask(n - j), x + j));
  return _mm512_reduce_max_ps(_mm512_max_ps(v0, v1));
#elif defined(__AVX2__)
  __m256 v0 = _mm256_set1_ps(m), v1 = v0;
  for (; j + 16 <= n; j += 16) {
    v0 = _mm256_max_ps(v0, _mm256_loadu_ps(x + j));
    v1 = _mm256_max_ps(v1, _mm256_loadu_ps(x + j + 8));
  }
  m = hmax8(_mm256_max_ps(v0, v1));
#endif
  for (; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

// x[j] = exp(scale * x[j] - sub); returns the sum of the new x.
inline float exp_row(float* x, int64_t n, float scale, float sub) {
  int64_t j = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  const __m512 vs = _mm512_set1_ps(scale), vb = _mm512_set1_ps(-sub);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  for (; j + 32 <= n; j += 32) {
    const __m512 e0 = exp16(_mm512_fmadd_ps(_mm512_loadu_ps(x + j), vs, vb));
    const __m512 e1 = exp16(_mm512_fmadd_ps(_mm512_loadu_ps(x + j + 16), vs, vb));
    _mm512_storeu_ps(x + j, e0);
    _mm512_storeu_ps(x + j + 16, e1);
    a0 = _mm512_add_ps(a0, e0);
    a1 = _mm512_add_ps(a1, e1);
  }
  for (; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j);
    const __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, x + j), vs, vb)));
    _mm512_mask_storeu_ps(x + j, k, e);
    a0 = _mm512_add_ps(a0, e);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(__AVX2__)
  const __m256 vs = _mm256_set1_ps(scale), vb = _mm256_set1_ps(-sub);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  for (; j + 16 <= n; j += 16) {
    const __m256 e0 = exp8(_mm256_fmadd_ps(_mm256_loadu_ps(x + j), vs, vb));
    const __m256 e1 = exp8(_mm256_fmadd_ps(_mm256_loadu_ps(x + j + 8), vs, vb));
    _mm256_storeu_ps(x + j, e0);
    _mm256_storeu_ps(x + j + 8, e1);
    a0 = _mm256_add_ps(a0, e0);
    a1 = _mm256_add_ps(a1, e1);
  }
  s = hsum8(_mm256_add_ps(a0, a1));
#endif
  for (; j < n; ++j) {
    x[j] = exp_scalar(scale * x[j] - sub);
    s += x[j];
  }
  return s;
}

// sum_j exp(x[j] - sub), x untouched (log-softmax, cross-entropy).
inline float exp_sum(const float* x, int64_t n, float sub) {
  int64_t j = 0;
  float s = 0.f;
#if defined(__AVX512F__)
  const __m512 vb = _mm512_set1_ps(sub);
  __m512 a0 = _mm512_setzero_ps(), a1 = a0;
  for (; j + 32 <= n; j += 32) {
    a0 = _mm512_add_ps(a0, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vb)));
    a1 = _mm512_add_ps(a1, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j + 16), vb)));
  }
  for (; j < n; j += 16) {
    const __mmask16 k = tail_mask(n - j);
    a0 = _mm512_add_ps(a0, _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vb))));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#elif defined(__AVX2__)
  const __m256 vb = _mm256_set1_ps(sub);
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  for (; j + 16 <= n; j += 16) {
    a0 = _mm256_add_ps(a0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), vb)));
    a1 = _mm256_add_ps(a1, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), vb)));
  }
  s = hsum8(_mm256_add_ps(a0, a1));
#endif
  for (; j < n; ++j) s += exp_scalar(x[j] - sub);
  return s;
}

// y[j] = exp(x[j] - sub) (y may alias x); returns the sum.
inline float exp_copy(const float* x, float* y, int64_t n, float sub) {
  if (x != y) std::memcpy(y, x, sizeof(float) * n);
  return exp_row(y, n, 1.f, sub);
}

// ---- float64: the simple path ----
inline double max_row(const double* x, int64_t n) {
  double m = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) m = x[j] > m ? x[j] : m;
  return m;
}
inline double exp_row(double* x, int64_t n, double scale, double sub) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(scale * x[j] - sub);
    s += x[j];
  }
  return s;
}
inline double exp_sum(const double* x, int64_t n, double sub) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(x[j] - sub);
  return s;
}
inline double exp_copy(const double* x, double* y, int64_t n, double sub) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    y[j] = std::exp(x[j] - sub);
    s += y[j];
  }
  return s;
}

}  // namespace vm
}  // namespace BM_ISA_NS
}  // namespace bm
