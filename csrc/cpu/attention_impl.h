// FlashAttention-2 forward and backward on the CPU; the body shared by the per-ISA translation
// units (attention.cpp = portable, attention_avx2.cpp, attention_avx512.cpp), each of which
// defines BM_ISA_NS and includes this file once. Layouts and mask semantics: cpu/attention.h.
//
// Forward (Dao 2023, "FlashAttention-2", alg. 1), one task per (b, h, query block of BQ rows):
//   for each key block of BK keys (stopping at the diagonal when causal):
//     S = Q_i K_j^T                  (bm::gemm, BQ x BK tile in a per-thread buffer)
//     per row: scale, mask, new running max m, P = exp(S - m), l = l*e^(m_old-m) + sum P,
//              O row *= e^(m_old-m)  (online softmax: the Sq x Sk matrix never exists)
//     O += P V_j                     (bm::gemm, beta = 1)
//   out = O / l, lse = m + log l (saved for backward).
// Backward (alg. 2), one task per (b, h) so that dq, dk, dv accumulate without races:
//   Dd_i = rowsum(dO_i * O_i); for each key block j, for each query block i at or below the
//   diagonal: P = exp(scale S - lse) recomputed, dV_j += P^T dO_i, dP = dO_i V_j^T,
//   dS = P * (dP - Dd), dQ_i += scale dS K_j, dK_j += scale dS^T Q_i.
// Block sizes: the forward keeps Q_i (BQ x D), the S tile (BQ x BK) and the packed K_j / V_j
// blocks (BK x D each) in the 1 MiB L2; key blocks past the causal diagonal are skipped.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common/cpu_features.h"
#include "common/scratch.h"
#include "cpu/attention.h"
#include "cpu/gemm.h"
#include "cpu/vmath.h"

namespace bm {
namespace BM_ISA_NS {
namespace attn {

constexpr int64_t kFwdBQ = 64, kFwdBK = 512;
constexpr int64_t kBwdBQ = 64, kBwdBK = 128;

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

template <typename T>
void forward_block(const AttnArgs<T>& a, int64_t b, int64_t h, int64_t qb, T* S, T* O, T* m,
                   T* l) {
  constexpr int64_t BQ = kFwdBQ, BK = kFwdBK;
  const T ninf = -std::numeric_limits<T>::infinity();
  const int64_t D = a.D, Dv = a.Dv;
  const int64_t i0 = qb * BQ, mq = std::min(BQ, a.Sq - i0);
  const T* qp = a.q + b * a.qs[0] + h * a.qs[1] + i0 * a.qs[2];
  const T* kp = a.k + b * a.ks[0] + h * a.ks[1];
  const T* vp = a.v + b * a.vs[0] + h * a.vs[1];
  T* outp = a.out + ((b * a.H + h) * a.Sq + i0) * Dv;
  T* lsep = a.lse + (b * a.H + h) * a.Sq + i0;
  const int64_t kend = a.causal ? std::min(a.Sk, i0 + mq) : a.Sk;

  std::fill(m, m + mq, ninf);
  std::fill(l, l + mq, T(0));
  std::memset(O, 0, sizeof(T) * mq * Dv);
  for (int64_t j0 = 0; j0 < kend; j0 += BK) {
    const int64_t nk = std::min(BK, kend - j0);
    gemm<T>(mq, nk, D, T(1), qp, a.qs[2], 1, kp + j0 * a.ks[2], 1, a.ks[2], T(0), S, BK, 1);
    for (int64_t r = 0; r < mq; ++r) {
      const int64_t i = i0 + r;
      T* row = S + r * BK;
      const bool plain = plain_row(a, i, j0 + nk - 1);
      T mx;
      if (plain) {
        mx = a.scale * vm::max_row(row, nk);
      } else {
        mask_row(a, b, h, i, j0, nk, row);
        mx = vm::max_row(row, nk);
      }
      const T m_new = std::max(m[r], mx);
      if (m_new == ninf) {  // every key so far hidden: P row is zero
        std::memset(row, 0, sizeof(T) * nk);
        continue;
      }
      const T alpha = std::exp(m[r] - m_new);
      const T sum = vm::exp_row(row, nk, plain ? a.scale : T(1), m_new);
      l[r] = l[r] * alpha + sum;
      m[r] = m_new;
      if (alpha != T(1)) {
        T* o = O + r * Dv;
#pragma omp simd
        for (int64_t d = 0; d < Dv; ++d) o[d] *= alpha;
      }
    }
    gemm<T>(mq, Dv, nk, T(1), S, BK, 1, vp + j0 * a.vs[2], a.vs[2], 1, T(1), O, Dv, 1);
  }
  for (int64_t r = 0; r < mq; ++r) {
    T* dst = outp + r * Dv;
    if (l[r] > T(0)) {
      const T inv = T(1) / l[r];
      const T* o = O + r * Dv;
#pragma omp simd
      for (int64_t d = 0; d < Dv; ++d) dst[d] = o[d] * inv;
      lsep[r] = m[r] + std::log(l[r]);
    } else {
      std::memset(dst, 0, sizeof(T) * Dv);
      lsep[r] = ninf;
    }
  }
}

template <typename T>
void forward(const AttnArgs<T>& a) {
  const int64_t nqb = (a.Sq + kFwdBQ - 1) / kFwdBQ;
  const int64_t ntask = a.B * a.H * nqb;
  if (ntask == 0) return;
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), ntask));
#pragma omp parallel num_threads(nt)
  {
    T* S = thread_scratch<T>(size_t(kFwdBQ) * kFwdBK, 3);
    T* O = thread_scratch<T>(size_t(kFwdBQ) * a.Dv, 4);
    T* st = thread_scratch<T>(2 * size_t(kFwdBQ), 5);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) {
      const int64_t bh = t / nqb;
      int64_t qb = t % nqb;
      if (a.causal) qb = nqb - 1 - qb;  // longest rows first: better dynamic balance
      forward_block(a, bh / a.H, bh % a.H, qb, S, O, st, st + kFwdBQ);
    }
  }
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
  const int nt = static_cast<int>(std::min<int64_t>(num_threads(), ntask));
#pragma omp parallel num_threads(nt)
  {
    T* P = thread_scratch<T>(size_t(kBwdBQ) * kBwdBK, 3);
    T* dP = thread_scratch<T>(size_t(kBwdBQ) * kBwdBK, 4);
    T* Dd = thread_scratch<T>(size_t(a.Sq), 5);
#pragma omp for schedule(dynamic, 1)
    for (int64_t t = 0; t < ntask; ++t) backward_head(a, t / a.H, t % a.H, P, dP, Dd);
  }
}

}  // namespace attn

void attention_forward(const AttnArgs<float>& a) { attn::forward(a); }
void attention_backward(const AttnArgs<float>& a) { attn::backward(a); }
void attention_forward(const AttnArgs<double>& a) { attn::forward(a); }
void attention_backward(const AttnArgs<double>& a) { attn::backward(a); }

}  // namespace BM_ISA_NS
}  // namespace bm
