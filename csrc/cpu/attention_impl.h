// FlashAttention-2 forward and backward on the CPU; the body shared by the per-ISA translation
// units (attention.cpp = portable, attention_avx2.cpp, attention_avx512.cpp), each of which
// defines BM_ISA_NS and includes this file once. Layouts and mask semantics: cpu/attention.h.
//
// Forward (Dao 2023, "FlashAttention-2", alg. 1), per (b, h, query block):
//   for each key block (stopping at the diagonal when causal):
//     S = Q_i K_j^T                  (tile in a per-thread buffer)
//     per row: scale, mask, new running max m, P = exp(S - m), l = l*e^(m_old-m) + sum P,
//              O row *= e^(m_old-m)  (online softmax: the Sq x Sk matrix never exists)
//     O += P V_j
//   out = O / l, lse = m + log l (saved for backward).
// Backward (alg. 2), per (b, h) so that dq, dk, dv accumulate without races:
//   Dd_i = rowsum(dO_i * O_i); for each key block j, for each query block i at or below the
//   diagonal: P = exp(scale S - lse) recomputed, dV_j += P^T dO_i, dP = dO_i V_j^T,
//   dS = P * (dP - Dd), dQ_i += scale dS K_j, dK_j += scale dS^T Q_i.
//
// Variants. float32 on AVX-512 and AVX2 (namespace fast, the tuned one): own register-blocked
// tile products (12x32 / 6x64 zmm, 6x16 / 6x16 ymm) on per-head packed K^T (and Q, dO, V^T in
// backward), see the banner below. portable and float64: the same loops with both tile
// products through bm::gemm on (96 x 256) forward / (64 x 128) backward tiles.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>
#include <vector>

#include "common/cpu_features.h"
#include "common/scratch.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/vmath.h"

namespace bm {
namespace BM_ISA_NS {
namespace attn {

constexpr int64_t kFwdBQ = 96, kFwdBK = 256;
constexpr int64_t kBwdBQ = 64, kBwdBK = 128;

// Exceptions must not escape an OpenMP region (that would terminate the interpreter): each
// thread runs its allocation and its tasks through run(), the first exception is kept and
// rethrown after the region, and a thread whose scratch failed still meets every barrier.
struct ErrorSink {
  std::exception_ptr first;
  template <class F>
  bool run(F&& f) noexcept {
    try {
      f();
      return true;
    } catch (...) {
#pragma omp critical(bm_attention_error)
      if (!first) first = std::current_exception();
      return false;
    }
  }
  void rethrow() const {
    if (first) std::rethrow_exception(first);
  }
};

// row[j] holds raw scores of query i against keys j0 + j (j < nk). Rewrites them as
// scale * s + additive mask, or -inf where the key is hidden (causal or boolean mask).
template <typename T>
inline void mask_row(const AttnArgs<T>& a, int64_t b, int64_t h, int64_t i, int64_t j0,
                     int64_t nk, T* row) {
  const T ninf = -std::numeric_limits<T>::infinity();
  const T sc = a.scale;
  const int64_t nvis = a.causal ? std::clamp<int64_t>(i - j0 + 1, 0, nk) : nk;
  const int64_t off = b * a.ms[0] + h * a.ms[1] + i * a.ms[2] + j0 * a.ms[3], mj = a.ms[3];
  if (a.mask_kind == MaskKind::none) {
#pragma omp simd
    for (int64_t j = 0; j < nvis; ++j) row[j] *= sc;
  } else if (a.mask_kind == MaskKind::boolean) {
    const uint8_t* m = static_cast<const uint8_t*>(a.mask) + off;
    if (mj == 1) {
#pragma omp simd
      for (int64_t j = 0; j < nvis; ++j) row[j] = m[j] ? row[j] * sc : ninf;
    } else {
      for (int64_t j = 0; j < nvis; ++j) row[j] = m[j * mj] ? row[j] * sc : ninf;
    }
  } else {
    const T* m = static_cast<const T*>(a.mask) + off;
    if (mj == 1) {
#pragma omp simd
      for (int64_t j = 0; j < nvis; ++j) row[j] = row[j] * sc + m[j];
    } else {
      for (int64_t j = 0; j < nvis; ++j) row[j] = row[j] * sc + m[j * mj];
    }
  }
  for (int64_t j = nvis; j < nk; ++j) row[j] = ninf;
}

// A row needs mask_row unless nothing hides any of its keys in this tile (and scale > 0, so
// that max(scale * s) = scale * max(s)).
template <typename T>
inline bool plain_row(const AttnArgs<T>& a, int64_t i, int64_t j_last) {
  return a.mask_kind == MaskKind::none && (!a.causal || j_last <= i) && a.scale > T(0);
}

// Online-softmax step for the rows [0, mq) of a score tile (queries i0 + r, keys j0 .. j0+nk):
// turns S into P = exp(S - m_new) in place, updates the running max m and sum l, and returns
// the factor alpha[r] = exp(m_old - m_new) by which the row's output accumulator must shrink.
template <typename T>
inline void online_softmax(const AttnArgs<T>& a, int64_t b, int64_t h, int64_t i0, int64_t mq,
                           int64_t j0, int64_t nk, T* S, int64_t ld, T* m, T* l, T* alpha) {
  const T ninf = -std::numeric_limits<T>::infinity();
  for (int64_t r = 0; r < mq; ++r) {
    const int64_t i = i0 + r;
    T* row = S + r * ld;
    const bool plain = plain_row(a, i, j0 + nk - 1);
    T mx;
    if (plain) {
      mx = a.scale * vm::max_row(row, nk);
    } else {
      mask_row(a, b, h, i, j0, nk, row);
      mx = vm::max_row(row, nk);
    }
    T m_new = std::max(m[r], mx);
    alpha[r] = T(1);
    if (m_new == ninf || mx != mx) {
      // A NaN score makes the row NaN (as torch): the SIMD max may have dropped it, so look
      // before taking the row for hidden. A NaN running max keeps the row NaN from here on.
      bool nan = mx != mx;
      for (int64_t j = 0; j < nk && !nan; ++j) nan = row[j] != row[j];
      if (nan) {
        m_new = std::numeric_limits<T>::quiet_NaN();
      } else {  // every key so far hidden: P row is zero
        std::memset(row, 0, sizeof(T) * nk);
        continue;
      }
    }
    alpha[r] = std::exp(m[r] - m_new);
    const T sum = vm::exp_row(row, nk, plain ? a.scale : T(1), m_new);
    l[r] = l[r] * alpha[r] + sum;
    m[r] = m_new;
  }
}

// out = O / l and lse = m + log l for rows [0, mq); zeros and -inf where l == 0.
template <typename T>
inline void finalize_rows(int64_t mq, int64_t Dv, const T* O, const T* m, const T* l, T* outp,
                          T* lsep) {
  for (int64_t r = 0; r < mq; ++r) {
    T* dst = outp + r * Dv;
    if (l[r] != T(0)) {  // l == 0: every key hidden; l NaN: a NaN score, the row is NaN
      const T inv = T(1) / l[r];
      const T* o = O + r * Dv;
#pragma omp simd
      for (int64_t d = 0; d < Dv; ++d) dst[d] = o[d] * inv;
      lsep[r] = m[r] + std::log(l[r]);
    } else {
      std::memset(dst, 0, sizeof(T) * Dv);
      lsep[r] = -std::numeric_limits<T>::infinity();
    }
  }
}

// Generic forward of one query block: both tile products through bm::gemm.
// True when a boolean mask hides every key of the tile (queries i0 .. i0+mq, keys j0 .. j0+nk),
// e.g. a padded stretch of keys: the tile contributes nothing and is skipped. A mask broadcast
// over queries (key padding, ms[2] == 0) costs one row scan; otherwise the scan stops at the
// first visible key, so it never reads more than mask_row would.
template <typename T>
inline bool tile_hidden(const AttnArgs<T>& a, int64_t b, int64_t h, int64_t i0, int64_t mq,
                        int64_t j0, int64_t nk) {
  if (a.mask_kind != MaskKind::boolean) return false;
  const uint8_t* m = static_cast<const uint8_t*>(a.mask) + b * a.ms[0] + h * a.ms[1] + j0 * a.ms[3];
  const int64_t rows = a.ms[2] == 0 ? 1 : mq, mj = a.ms[3];
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = m + (i0 + r) * a.ms[2];
    for (int64_t j = 0; j < nk; ++j)
      if (row[j * mj]) return false;
  }
  return true;
}

template <typename T>
void forward_block(const AttnArgs<T>& a, int64_t b, int64_t h, int64_t qb, T* S, T* O, T* m,
                   T* l, T* alpha) {
  constexpr int64_t BQ = kFwdBQ, BK = kFwdBK;
  const int64_t D = a.D, Dv = a.Dv;
  const int64_t i0 = qb * BQ, mq = std::min(BQ, a.Sq - i0);
  const T* qp = a.q + b * a.qs[0] + h * a.qs[1] + i0 * a.qs[2];
  const T* kp = a.k + b * a.ks[0] + h * a.ks[1];
  const T* vp = a.v + b * a.vs[0] + h * a.vs[1];
  const int64_t kend = a.causal ? std::min(a.Sk, i0 + mq) : a.Sk;

  std::fill(m, m + mq, -std::numeric_limits<T>::infinity());
  std::fill(l, l + mq, T(0));
  std::memset(O, 0, sizeof(T) * mq * Dv);
  for (int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int64_t nk = std::min(BK, kend - j0);
    if (tile_hidden(a, b, h, i0, mq, j0, nk)) continue;
    gemm<T>(mq, nk, D, T(1), qp, a.qs[2], 1, kp + j0 * a.ks[2], 1, a.ks[2], T(0), S, BK, 1);
    online_softmax(a, b, h, i0, mq, j0, nk, S, BK, m, l, alpha);
    for (int64_t r = 0; r < mq; ++r) {
      if (alpha[r] == T(1)) continue;
      T* o = O + r * Dv;
#pragma omp simd
      for (int64_t d = 0; d < Dv; ++d) o[d] *= alpha[r];
    }
    gemm<T>(mq, Dv, nk, T(1), S, BK, 1, vp + j0 * a.vs[2], a.vs[2], 1, T(1), O, Dv, 1);
  }
  finalize_rows(mq, Dv, O, m, l, a.out + ((b * a.H + h) * a.Sq + i0) * Dv,
                a.lse + (b * a.H + h) * a.Sq + i0);
}

#if defined(__AVX512F__) || defined(__AVX2__)
// ---- float32 on AVX-512 / AVX2: own register-blocked tile products, no per-tile packing ----
// K^T of a head is packed once per task into PW-key panels (Kp[p][d][PW]); each query block is
// packed (pre-scaled) into MQK-row panels (Qp[c][d][MQK]). S = Q K^T runs an MQK x PW micro-
// kernel (AVX-512: 12 x 32, 24 accumulators, 2 loads + 12 broadcasts per 24 FMAs; AVX2: 6 x 16
// in 12 ymm); O = alpha O + P V runs a 6-row micro-kernel (64 columns on AVX-512, 16 on AVX2)
// that broadcasts P straight from the score tile and loads V rows in place (V is row-major with
// unit stride, so it needs no packing at all), folding the online-softmax rescale into its
// store.
namespace fast {

#if defined(__AVX512F__)
constexpr int64_t PW = 32, MQK = 12;
#else
constexpr int64_t PW = 16, MQK = 6;
#endif
constexpr int64_t BQ = 96, BK = 256, MPV = 6;  // BQ: a multiple of MQK and MPV; BK of PW

inline void pack_kt(const float* k, int64_t ldk, int64_t nkeys, int64_t D, float* Kp) {
  for (int64_t p = 0; p * PW < nkeys; ++p) {
    float* dst = Kp + p * D * PW;
    const int64_t n = std::min<int64_t>(PW, nkeys - p * PW);
    if (n < PW) std::memset(dst, 0, sizeof(float) * D * PW);
    for (int64_t jj = 0; jj < n; ++jj) {
      const float* src = k + (p * PW + jj) * ldk;
      for (int64_t d = 0; d < D; ++d) dst[d * PW + jj] = src[d];
    }
  }
}

inline void pack_q(const float* q, int64_t ldq, int64_t mq, int64_t D, float scale, float* Qp) {
  for (int64_t c = 0; c * MQK < mq; ++c) {
    float* dst = Qp + c * D * MQK;
    const int64_t n = std::min<int64_t>(MQK, mq - c * MQK);
    if (n < MQK) std::memset(dst, 0, sizeof(float) * D * MQK);
    for (int64_t r = 0; r < n; ++r) {
      const float* src = q + (c * MQK + r) * ldq;
      for (int64_t d = 0; d < D; ++d) dst[d * MQK + r] = scale * src[d];
    }
  }
}

#if defined(__AVX512F__)
// S[r][0..32) = sum_d Qp[d][r] Kp[d][0..32) for r < 12; S rows BK apart.
inline void ukr_qk(const float* Qp, const float* Kp, int64_t D, float* S) {
  __m512 acc[MQK][2];
#pragma GCC unroll 12
  for (int r = 0; r < MQK; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const __m512 b0 = _mm512_loadu_ps(Kp + d * 32), b1 = _mm512_loadu_ps(Kp + d * 32 + 16);
#pragma GCC unroll 12
    for (int r = 0; r < MQK; ++r) {
      const __m512 x = _mm512_set1_ps(Qp[d * MQK + r]);
      acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 12
  for (int r = 0; r < MQK; ++r) {
    _mm512_storeu_ps(S + r * BK, acc[r][0]);
    _mm512_storeu_ps(S + r * BK + 16, acc[r][1]);
  }
}

// C[r][0..16 NV) = beta[r] C[r] + gamma * sum_{k < K} A(r, k) B[k][0..16 NV) for r < m (<= 6),
// with A(r, k) = A[r BK + k] (a score tile) or, TA, A[k BK + r] (its transpose); B rows are
// ldb apart and used in place. beta == nullptr means 1. The last vector is masked by `last`.
template <int NV, bool TA>
inline void ukr_pv(const float* A, const float* B, int64_t ldb, int64_t K, float* C,
                   int64_t ldc, const float* beta, float gamma, int m, __mmask16 last) {
  __m512 acc[MPV][NV];
#pragma GCC unroll 6
  for (int r = 0; r < MPV; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v)
      bv[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, B + k * ldb + 16 * v)
                          : _mm512_loadu_ps(B + k * ldb + 16 * v);
#pragma GCC unroll 6
    for (int r = 0; r < MPV; ++r) {
      const __m512 x = _mm512_set1_ps(TA ? A[k * BK + r] : A[r * BK + k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
  const __m512 g = _mm512_set1_ps(gamma);
  // Static trip counts everywhere: a runtime index into acc would push it to the stack.
#pragma GCC unroll 6
  for (int r = 0; r < MPV; ++r) {
    if (r >= m) break;
    const __m512 be = _mm512_set1_ps(beta ? beta[r] : 1.f);
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      const __mmask16 k = v == NV - 1 ? last : __mmask16(0xffff);
      float* c = C + r * ldc + 16 * v;
      const __m512 old = _mm512_maskz_loadu_ps(k, c);
      _mm512_mask_storeu_ps(c, k, _mm512_fmadd_ps(acc[r][v], g, _mm512_mul_ps(old, be)));
    }
  }
}

// C (m x N) = beta C + gamma A B over column chunks of 64, m <= 6 rows.
template <bool TA>
inline void pv_rows(const float* A, const float* B, int64_t ldb, int64_t K, float* C,
                    int64_t ldc, int64_t N, const float* beta, float gamma, int m) {
  for (int64_t c0 = 0; c0 < N; c0 += 64) {
    const int64_t w = std::min<int64_t>(64, N - c0);
    const int nv = static_cast<int>((w + 15) / 16);
    const int tail = static_cast<int>(w - 16 * (nv - 1));
    const __mmask16 last = tail >= 16 ? __mmask16(0xffff) : __mmask16((1u << tail) - 1);
    switch (nv) {
      case 1: ukr_pv<1, TA>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, last); break;
      case 2: ukr_pv<2, TA>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, last); break;
      case 3: ukr_pv<3, TA>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, last); break;
      default: ukr_pv<4, TA>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, last); break;
    }
  }
}
#else  // AVX2: 8-wide, 16 registers

// S[r][0..16) = sum_d Qp[d][r] Kp[d][0..16) for r < 6; S rows BK apart.
inline void ukr_qk(const float* Qp, const float* Kp, int64_t D, float* S) {
  __m256 acc[MQK][2];
#pragma GCC unroll 6
  for (int r = 0; r < MQK; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t d = 0; d < D; ++d) {
    const __m256 b0 = _mm256_loadu_ps(Kp + d * PW), b1 = _mm256_loadu_ps(Kp + d * PW + 8);
#pragma GCC unroll 6
    for (int r = 0; r < MQK; ++r) {
      const __m256 x = _mm256_broadcast_ss(Qp + d * MQK + r);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < MQK; ++r) {
    _mm256_storeu_ps(S + r * BK, acc[r][0]);
    _mm256_storeu_ps(S + r * BK + 8, acc[r][1]);
  }
}

// C[r][0..w) = beta[r] C[r] + gamma * sum_{k < K} A(r, k) B[k][0..w) for r < m (<= 6), w <= 16
// columns (FULL: w == 16; else masked with k0 / k1). A(r, k) as in the AVX-512 kernel.
template <bool TA, bool FULL>
inline void ukr_pv(const float* A, const float* B, int64_t ldb, int64_t K, float* C,
                   int64_t ldc, const float* beta, float gamma, int m, __m256i k0, __m256i k1) {
  __m256 acc[MPV][2];
#pragma GCC unroll 6
  for (int r = 0; r < MPV; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const float* bk = B + k * ldb;
    const __m256 b0 = FULL ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, k0);
    const __m256 b1 = FULL ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, k1);
#pragma GCC unroll 6
    for (int r = 0; r < MPV; ++r) {
      const __m256 x = _mm256_broadcast_ss(TA ? A + k * BK + r : A + r * BK + k);
      acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
    }
  }
  const __m256 g = _mm256_set1_ps(gamma);
#pragma GCC unroll 6
  for (int r = 0; r < MPV; ++r) {
    if (r >= m) break;
    const __m256 be = _mm256_set1_ps(beta ? beta[r] : 1.f);
    float* c = C + r * ldc;
    if (FULL) {
      _mm256_storeu_ps(c, _mm256_fmadd_ps(acc[r][0], g, _mm256_mul_ps(_mm256_loadu_ps(c), be)));
      _mm256_storeu_ps(c + 8, _mm256_fmadd_ps(acc[r][1], g, _mm256_mul_ps(_mm256_loadu_ps(c + 8), be)));
    } else {
      _mm256_maskstore_ps(c, k0, _mm256_fmadd_ps(acc[r][0], g, _mm256_mul_ps(_mm256_maskload_ps(c, k0), be)));
      _mm256_maskstore_ps(c + 8, k1, _mm256_fmadd_ps(acc[r][1], g, _mm256_mul_ps(_mm256_maskload_ps(c + 8, k1), be)));
    }
  }
}

template <bool TA>
inline void pv_rows(const float* A, const float* B, int64_t ldb, int64_t K, float* C,
                    int64_t ldc, int64_t N, const float* beta, float gamma, int m) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c0 = 0; c0 < N; c0 += 16) {
    const int w = static_cast<int>(std::min<int64_t>(16, N - c0));
    if (w == 16) {
      ukr_pv<TA, true>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, lane, lane);
    } else {
      const __m256i k0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(w), lane);
      const __m256i k1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(w - 8), lane);
      ukr_pv<TA, false>(A, B + c0, ldb, K, C + c0, ldc, beta, gamma, m, k0, k1);
    }
  }
}
#endif

struct Scratch {
  float *Kp, *Qp, *S, *O, *m, *l, *alpha;
};

// Query blocks [qb0, qb1) of head (b, h). `a1` is `a` with scale 1 (Q is packed pre-scaled).
inline void forward_task(const AttnArgs<float>& a1, float scale, int64_t b, int64_t h,
                         int64_t qb0, int64_t qb1, const Scratch& w) {
  const int64_t D = a1.D, Dv = a1.Dv, Sq = a1.Sq, Sk = a1.Sk;
  const float* qp = a1.q + b * a1.qs[0] + h * a1.qs[1];
  const float* kp = a1.k + b * a1.ks[0] + h * a1.ks[1];
  const float* vp = a1.v + b * a1.vs[0] + h * a1.vs[1];
  const int64_t last_row = std::min(Sq, qb1 * BQ) - 1;
  const int64_t kmax = a1.causal ? std::min(Sk, last_row + 1) : Sk;
  pack_kt(kp, a1.ks[2], kmax, D, w.Kp);
  for (int64_t qb = qb0; qb < qb1; ++qb) {
    const int64_t i0 = qb * BQ, mq = std::min(BQ, Sq - i0);
    const int64_t kend = a1.causal ? std::min(Sk, i0 + mq) : Sk;
    pack_q(qp + i0 * a1.qs[2], a1.qs[2], mq, D, scale, w.Qp);
    std::fill(w.m, w.m + BQ, -std::numeric_limits<float>::infinity());
    std::fill(w.l, w.l + BQ, 0.f);
    std::fill(w.alpha, w.alpha + BQ, 1.f);
    std::memset(w.O, 0, sizeof(float) * BQ * Dv);
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
      const int64_t nk = std::min(BK, kend - j0);
      if (tile_hidden(a1, b, h, i0, mq, j0, nk)) continue;
      // Causal: a row chunk ending at query i needs keys < i + 1 only; the panels past that
      // are never computed (mask_row writes -inf there without reading) and P is 0 there, so
      // the PV product stops early too.
      auto visible = [&](int64_t rows_end) {
        return a1.causal ? std::clamp<int64_t>(i0 + rows_end - j0, 0, nk) : nk;
      };
      for (int64_t c = 0; c * MQK < mq; ++c) {
        const int64_t nkc = visible(std::min(mq, (c + 1) * MQK));
        for (int64_t p = 0; p * PW < nkc; ++p)
          ukr_qk(w.Qp + c * D * MQK, w.Kp + (j0 / PW + p) * D * PW, D, w.S + c * MQK * BK + p * PW);
      }
      online_softmax(a1, b, h, i0, mq, j0, nk, w.S, BK, w.m, w.l, w.alpha);
      for (int64_t c = 0; c * MPV < mq; ++c) {
        const int64_t rows = std::min(MPV, mq - c * MPV);
        pv_rows<false>(w.S + c * MPV * BK, vp + j0 * a1.vs[2], a1.vs[2],
                       visible(c * MPV + rows), w.O + c * MPV * Dv, Dv, Dv, w.alpha + c * MPV,
                       1.f, static_cast<int>(rows));
      }
    }
    finalize_rows(mq, Dv, w.O, w.m, w.l, a1.out + ((b * a1.H + h) * Sq + i0) * Dv,
                  a1.lse + (b * a1.H + h) * Sq + i0);
  }
}

inline void forward(const AttnArgs<float>& a) {
  const int64_t nqb = (a.Sq + BQ - 1) / BQ, nbh = a.B * a.H;
  if (nbh == 0 || nqb == 0) return;
  const int nt0 = num_threads();
  // Whole heads per task (K^T packed once per head) unless there are too few heads to keep
  // every thread busy; then heads split into groups of query blocks.
  const int64_t groups = std::min<int64_t>(nqb, std::max<int64_t>(1, (4 * nt0 + nbh - 1) / nbh));
  const int64_t ntask = nbh * groups;
  const int nt = static_cast<int>(std::min<int64_t>(nt0, ntask));
  AttnArgs<float> a1 = a;
  a1.scale = 1.f;
  const int64_t kpad = (a.Sk + PW - 1) / PW * PW;
  attn::ErrorSink err;
#pragma omp parallel num_threads(nt)
  {
    Scratch w;
    const bool ok = err.run([&] {
      w.Kp = thread_scratch<float>(size_t(kpad) * a.D, 3);
      w.S = thread_scratch<float>(size_t(BQ) * BK + 2 * BQ * a.D, 4);
      w.Qp = w.S + BQ * BK;
      w.O = thread_scratch<float>(size_t(BQ) * a.Dv + 3 * BQ, 5);
      w.m = w.O + BQ * a.Dv;
      w.l = w.m + BQ;
      w.alpha = w.l + BQ;
    });
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) {
      if (!ok) continue;
      const int64_t bh = t / groups, g = t % groups;
      err.run([&] {
        forward_task(a1, a.scale, bh / a.H, bh % a.H, nqb * g / groups, nqb * (g + 1) / groups, w);
      });
    }
  }
  err.rethrow();
}

// Backward of one head (FlashAttention-2 alg. 2, key blocks outer): Q (pre-scaled), dO, K^T
// and V^T are packed once per head, so both score-shaped products (S = Q K^T, dP = dO V^T) run
// ukr_qk; the three accumulations (dV += P^T dO, dQ += scale dS K, dK += scale dS^T Q) run
// ukr_pv straight from the tile and the row-major inputs, into the (zeroed) outputs.
// Query rows (multiple of 12) and keys (multiple of 32, <= BK: tiles keep the BK row stride)
// per backward tile; small key blocks waste less on the causal diagonal.
constexpr int64_t BQB = 48, BKB = 128;
struct BwdScratch {
  float *Qp, *dOp, *Kp, *Vp, *P, *dP, *Dd;
};

// Key blocks kb0, kb0 + kstep, ... of head (b, h); dQ accumulates into dqp (the output, or a
// partial buffer when a head's key blocks are split between threads: strided, so that causal
// work, heavier for early keys, spreads evenly).
inline void backward_head(const AttnArgs<float>& a1, float scale, int64_t b, int64_t h,
                          int64_t kb0, int64_t kstep, float* dqp, const BwdScratch& w) {
  const int64_t D = a1.D, Dv = a1.Dv, Sq = a1.Sq, Sk = a1.Sk, bh = b * a1.H + h;
  const float ninf = -std::numeric_limits<float>::infinity();
  const float* qp = a1.q + b * a1.qs[0] + h * a1.qs[1];
  const float* kp = a1.k + b * a1.ks[0] + h * a1.ks[1];
  const float* vp = a1.v + b * a1.vs[0] + h * a1.vs[1];
  const float* op = a1.out + bh * Sq * Dv;
  const float* dop = a1.dout + bh * Sq * Dv;
  const float* lsep = a1.lse + bh * Sq;
  float* dkp = a1.dk + bh * Sk * D;
  float* dvp = a1.dv + bh * Sk * Dv;
  for (int64_t i = 0; i < Sq; ++i) {
    const float *x = op + i * Dv, *y = dop + i * Dv;
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < Dv; ++d) s += x[d] * y[d];
    w.Dd[i] = s;
  }
  pack_q(qp, a1.qs[2], Sq, D, scale, w.Qp);
  pack_q(dop, Dv, Sq, Dv, 1.f, w.dOp);
  pack_kt(kp, a1.ks[2], Sk, D, w.Kp);
  pack_kt(vp, a1.vs[2], Sk, Dv, w.Vp);
  for (int64_t j0 = kb0 * BKB; j0 < Sk; j0 += kstep * BKB) {
    const int64_t nk = std::min(BKB, Sk - j0);
    const int64_t istart = a1.causal ? j0 / BQB * BQB : 0;
    for (int64_t i0 = istart; i0 < Sq; i0 += BQB) {
      const int64_t mq = std::min(BQB, Sq - i0);
      if (tile_hidden(a1, b, h, i0, mq, j0, nk)) continue;
      for (int64_t c = 0; c * MQK < mq; ++c)
        for (int64_t p = 0; p * PW < nk; ++p) {
          ukr_qk(w.Qp + (i0 / MQK + c) * D * MQK, w.Kp + (j0 / PW + p) * D * PW, D,
                 w.P + c * MQK * BK + p * PW);
          ukr_qk(w.dOp + (i0 / MQK + c) * Dv * MQK, w.Vp + (j0 / PW + p) * Dv * PW, Dv,
                 w.dP + c * MQK * BK + p * PW);
        }
      for (int64_t r = 0; r < mq; ++r) {
        const int64_t i = i0 + r;
        float* row = w.P + r * BK;
        const float L = lsep[i];
        if (L == ninf) {
          std::memset(row, 0, sizeof(float) * nk);
          continue;
        }
        if (!plain_row(a1, i, j0 + nk - 1)) mask_row(a1, b, h, i, j0, nk, row);
        vm::exp_row(row, nk, 1.f, L);
      }
      // dV_j += P^T dO_i (before P becomes dS)
      for (int64_t c = 0; c * MPV < nk; ++c)
        pv_rows<true>(w.P + c * MPV, dop + i0 * Dv, Dv, mq, dvp + (j0 + c * MPV) * Dv, Dv, Dv,
                      nullptr, 1.f, static_cast<int>(std::min(MPV, nk - c * MPV)));
      for (int64_t r = 0; r < mq; ++r) {
        float* p = w.P + r * BK;
        const float* g = w.dP + r * BK;
        const float di = w.Dd[i0 + r];
#pragma omp simd
        for (int64_t j = 0; j < nk; ++j) p[j] *= g[j] - di;
      }
      for (int64_t c = 0; c * MPV < mq; ++c)
        pv_rows<false>(w.P + c * MPV * BK, kp + j0 * a1.ks[2], a1.ks[2], nk,
                       dqp + (i0 + c * MPV) * D, D, D, nullptr, scale,
                       static_cast<int>(std::min(MPV, mq - c * MPV)));
      for (int64_t c = 0; c * MPV < nk; ++c)
        pv_rows<true>(w.P + c * MPV, qp + i0 * a1.qs[2], a1.qs[2], mq, dkp + (j0 + c * MPV) * D,
                      D, D, nullptr, scale, static_cast<int>(std::min(MPV, nk - c * MPV)));
    }
  }
}

inline void backward(const AttnArgs<float>& a) {
  const int64_t nbh = a.B * a.H, nkb = (a.Sk + BKB - 1) / BKB;
  const int nt0 = num_threads();
  // One task per head when there are enough heads; otherwise each head's key blocks are split
  // into G groups and every group accumulates its dQ in a partial buffer (G * heads * Sq * D
  // floats, G * heads ~ 2 threads), summed afterwards.
  const int64_t G = nbh >= 2 * nt0 ? 1 : std::min<int64_t>(nkb, (2 * nt0 + nbh - 1) / nbh);
  const int64_t ntask = nbh * G;
  const int nt = static_cast<int>(std::min<int64_t>(nt0, ntask));
  const int64_t head_q = a.Sq * a.D;
  std::vector<float> part(G > 1 ? size_t(ntask) * head_q : 0, 0.f);
  AttnArgs<float> a1 = a;
  a1.scale = 1.f;
  const int64_t qpad = (a.Sq + MQK - 1) / MQK * MQK, kpad = (a.Sk + PW - 1) / PW * PW;
  attn::ErrorSink err;
#pragma omp parallel num_threads(nt)
  {
    BwdScratch w;
    const bool ok = err.run([&] {
      w.Qp = thread_scratch<float>(size_t(qpad) * (a.D + a.Dv) + a.Sq, 3);
      w.dOp = w.Qp + qpad * a.D;
      w.Dd = w.dOp + qpad * a.Dv;
      w.Kp = thread_scratch<float>(size_t(kpad) * (a.D + a.Dv), 4);
      w.Vp = w.Kp + kpad * a.D;
      w.P = thread_scratch<float>(2 * size_t(BQB) * BK, 5);
      w.dP = w.P + BQB * BK;
    });
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) {
      if (!ok) continue;
      const int64_t bh = t / G, g = t % G;
      float* dq = G > 1 ? part.data() + t * head_q : a.dq + bh * head_q;
      err.run([&] { backward_head(a1, a.scale, bh / a.H, bh % a.H, g, G, dq, w); });
    }
    if (G > 1) {
#pragma omp for schedule(static)
      for (int64_t bh = 0; bh < nbh; ++bh)
        for (int64_t g = 0; g < G; ++g) {
          const float* src = part.data() + (bh * G + g) * head_q;
          float* dst = a.dq + bh * head_q;
#pragma omp simd
          for (int64_t x = 0; x < head_q; ++x) dst[x] += src[x];
        }
    }
  }
  err.rethrow();
}

}  // namespace fast
#endif

template <typename T>
void forward(const AttnArgs<T>& a) {
#if defined(__AVX512F__) || defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) return fast::forward(a);
#endif
  const int64_t nqb = (a.Sq + kFwdBQ - 1) / kFwdBQ;
  const int64_t ntask = a.B * a.H * nqb;
  if (ntask == 0) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), ntask));
  ErrorSink err;
#pragma omp parallel num_threads(nt)
  {
    T *S = nullptr, *O = nullptr, *st = nullptr;
    const bool ok = err.run([&] {
      S = thread_scratch<T>(size_t(kFwdBQ) * kFwdBK, 3);
      O = thread_scratch<T>(size_t(kFwdBQ) * a.Dv, 4);
      st = thread_scratch<T>(3 * size_t(kFwdBQ), 5);
    });
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) {
      if (!ok) continue;
      const int64_t bh = t / nqb;
      int64_t qb = t % nqb;
      if (a.causal) qb = nqb - 1 - qb;  // longest rows first: better dynamic balance
      err.run([&] {
        forward_block(a, bh / a.H, bh % a.H, qb, S, O, st, st + kFwdBQ, st + 2 * kFwdBQ);
      });
    }
  }
  err.rethrow();
}

template <typename T>
void backward_head(const AttnArgs<T>& a, int64_t b, int64_t h, T* P, T* dP, T* Dd) {
  constexpr int64_t BQ = kBwdBQ, BK = kBwdBK;
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t D = a.D, Dv = a.Dv, Sq = a.Sq, Sk = a.Sk, bh = b * a.H + h;
  const T* qp = a.q + b * a.qs[0] + h * a.qs[1];
  const T* kp = a.k + b * a.ks[0] + h * a.ks[1];
  const T* vp = a.v + b * a.vs[0] + h * a.vs[1];
  const T* op = a.out + bh * Sq * Dv;
  const T* dop = a.dout + bh * Sq * Dv;
  const T* lsep = a.lse + bh * Sq;
  T* dqp = a.dq + bh * Sq * D;
  T* dkp = a.dk + bh * Sk * D;
  T* dvp = a.dv + bh * Sk * Dv;

  for (int64_t i = 0; i < Sq; ++i) {
    const T *x = op + i * Dv, *y = dop + i * Dv;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t d = 0; d < Dv; ++d) s += x[d] * y[d];
    Dd[i] = s;
  }
  for (int64_t j0 = 0; j0 < Sk; j0 += BK) {
    const int64_t nk = std::min(BK, Sk - j0);
    const int64_t istart = a.causal ? j0 : 0;  // rows above the diagonal see none of these keys
    for (int64_t i0 = istart; i0 < Sq; i0 += BQ) {
      const int64_t mq = std::min(BQ, Sq - i0);
      if (tile_hidden(a, b, h, i0, mq, j0, nk)) continue;
      gemm<T>(mq, nk, D, T(1), qp + i0 * a.qs[2], a.qs[2], 1, kp + j0 * a.ks[2], 1, a.ks[2],
              T(0), P, BK, 1);
      for (int64_t r = 0; r < mq; ++r) {
        const int64_t i = i0 + r;
        T* row = P + r * BK;
        const T L = lsep[r + i0];
        if (L == ninf) {
          std::memset(row, 0, sizeof(T) * nk);
          continue;
        }
        if (plain_row(a, i, j0 + nk - 1)) {
          vm::exp_row(row, nk, a.scale, L);
        } else {
          mask_row(a, b, h, i, j0, nk, row);
          vm::exp_row(row, nk, T(1), L);
        }
      }
      // dV_j += P^T dO_i
      gemm<T>(nk, Dv, mq, T(1), P, 1, BK, dop + i0 * Dv, Dv, 1, T(1), dvp + j0 * Dv, Dv, 1);
      // dP = dO_i V_j^T
      gemm<T>(mq, nk, Dv, T(1), dop + i0 * Dv, Dv, 1, vp + j0 * a.vs[2], 1, a.vs[2], T(0), dP,
              BK, 1);
      // dS = P * (dP - Dd_i), in place of P
      for (int64_t r = 0; r < mq; ++r) {
        T* p = P + r * BK;
        const T* g = dP + r * BK;
        const T di = Dd[i0 + r];
#pragma omp simd
        for (int64_t j = 0; j < nk; ++j) p[j] *= g[j] - di;
      }
      // dQ_i += scale dS K_j ; dK_j += scale dS^T Q_i
      gemm<T>(mq, D, nk, a.scale, P, BK, 1, kp + j0 * a.ks[2], a.ks[2], 1, T(1), dqp + i0 * D, D,
              1);
      gemm<T>(nk, D, mq, a.scale, P, 1, BK, qp + i0 * a.qs[2], a.qs[2], 1, T(1), dkp + j0 * D, D,
              1);
    }
  }
}

template <typename T>
void backward(const AttnArgs<T>& a) {
  const int64_t ntask = a.B * a.H;
  if (ntask == 0 || a.Sq == 0 || a.Sk == 0) return;
#if defined(__AVX512F__) || defined(__AVX2__)
  if constexpr (std::is_same_v<T, float>) return fast::backward(a);
#endif
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), ntask));
  ErrorSink err;
#pragma omp parallel num_threads(nt)
  {
    T *P = nullptr, *dP = nullptr, *Dd = nullptr;
    const bool ok = err.run([&] {
      P = thread_scratch<T>(size_t(kBwdBQ) * kBwdBK, 3);
      dP = thread_scratch<T>(size_t(kBwdBQ) * kBwdBK, 4);
      Dd = thread_scratch<T>(size_t(a.Sq), 5);
    });
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) {
      if (!ok) continue;
      err.run([&] { backward_head(a, t / a.H, t % a.H, P, dP, Dd); });
    }
  }
  err.rethrow();
}

}  // namespace attn

void attention_forward(const AttnArgs<float>& a) { attn::forward(a); }
void attention_backward(const AttnArgs<float>& a) { attn::backward(a); }
void attention_forward(const AttnArgs<double>& a) { attn::forward(a); }
void attention_backward(const AttnArgs<double>& a) { attn::backward(a); }

}  // namespace BM_ISA_NS
}  // namespace bm
