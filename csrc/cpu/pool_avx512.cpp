// AVX-512 2x2 stride-2 unpadded pooling (the CNN workhorse), float32.
//
// 16 outputs of a row come from 32 columns of two input rows: two loads per row, then vpermt2ps
// splits even and odd columns. Max keeps a per-lane choice 0 / 1 / W / W+1 (int32) with torch's
// rule (greater, or NaN) in scan order, widened to int64 indices at the store. Memory-bound:
// one pass over x and one over y (and the indices).
// GCC 12's AVX-512 headers trip -Wuninitialized on their own `__Y = __Y` placeholders.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include "cpu/conv2d_detail.h"
#include "cpu/pool.h"

namespace bm {
namespace avx512 {
namespace {

using conv_detail::parallel_for;

inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Even and odd columns of row[0 .. 2n), n <= 16.
inline void load_pairs(const float* row, int64_t n, __m512& even, __m512& odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 a = _mm512_maskz_loadu_ps(mask16(2 * n), row);
  const __m512 b = _mm512_maskz_loadu_ps(mask16(2 * n - 16), row + 16);
  even = _mm512_permutex2var_ps(a, ie, b);
  odd = _mm512_permutex2var_ps(a, io, b);
}

bool applies(const Pool2dParams& p) {
  return p.kh == 2 && p.kw == 2 && p.sh == 2 && p.sw == 2 && p.ph == 0 && p.pw == 0 &&
         p.P == p.H / 2 && p.Q == p.W / 2 && p.W < (int64_t(1) << 29);
}

inline void take_if(__m512 v, __m512& best, __m512i& sel, int32_t choice) {
  const __mmask16 m = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  best = _mm512_mask_mov_ps(best, m, v);
  sel = _mm512_mask_mov_epi32(sel, m, _mm512_set1_epi32(choice));
}

}  // namespace

bool maxpool2d_2x2_forward(const Pool2dParams& p, const float* x, float* y, int64_t* indices) {
  if (!applies(p)) return false;
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q, W = p.W, Q = p.Q;
  const __m512i iota2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  parallel_for(p.N * p.C, [&](int64_t plane) {
    const float* xp = x + plane * HW;
    float* yp = y + plane * PQ;
    int64_t* ip = indices ? indices + plane * PQ : nullptr;
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const float* r0 = xp + 2 * oh * W;
      const float* r1 = r0 + W;
      for (int64_t ow = 0; ow < Q; ow += 16) {
        const int64_t n = std::min<int64_t>(16, Q - ow);
        __m512 e0, o0, e1, o1;
        load_pairs(r0 + 2 * ow, n, e0, o0);
        load_pairs(r1 + 2 * ow, n, e1, o1);
        __m512 best = e0;
        __m512i sel = _mm512_setzero_si512();
        take_if(o0, best, sel, 1);
        take_if(e1, best, sel, int32_t(W));
        take_if(o1, best, sel, int32_t(W + 1));
        const __mmask16 m = mask16(n);
        _mm512_mask_storeu_ps(yp + oh * Q + ow, m, best);
        if (ip) {
          // index = 2*oh*W + 2*(ow + lane) + choice; the in-row part fits int32 (W < 2^29).
          const __m512i col = _mm512_add_epi32(_mm512_add_epi32(sel, iota2),
                                               _mm512_set1_epi32(int32_t(2 * ow)));
          const __m512i base = _mm512_set1_epi64(2 * oh * W);
          const __m512i lo = _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_castsi512_si256(col)));
          const __m512i hi = _mm512_add_epi64(base, _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(col, 1)));
          _mm512_mask_storeu_epi64(ip + oh * Q + ow, __mmask8(m & 0xff), lo);
          _mm512_mask_storeu_epi64(ip + oh * Q + ow + 8, __mmask8(m >> 8), hi);
        }
      }
    }
  });
  return true;
}

bool avgpool2d_2x2_forward(const Pool2dParams& p, const float* x, float* y) {
  if (!applies(p)) return false;
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q, W = p.W, Q = p.Q;
  parallel_for(p.N * p.C, [&](int64_t plane) {
    const float* xp = x + plane * HW;
    float* yp = y + plane * PQ;
    const __m512 quarter = _mm512_set1_ps(0.25f);
    for (int64_t oh = 0; oh < p.P; ++oh) {
      const float* r0 = xp + 2 * oh * W;
      for (int64_t ow = 0; ow < Q; ow += 16) {
        const int64_t n = std::min<int64_t>(16, Q - ow);
        __m512 e0, o0, e1, o1;
        load_pairs(r0 + 2 * ow, n, e0, o0);
        load_pairs(r0 + W + 2 * ow, n, e1, o1);
        // Same summation order as the generic loop: ((x00 + x01) + x10) + x11.
        const __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(e0, o0), e1), o1);
        _mm512_mask_storeu_ps(yp + oh * Q + ow, mask16(n), _mm512_mul_ps(s, quarter));
      }
    }
  });
  return true;
}

bool avgpool2d_2x2_backward(const Pool2dParams& p, const float* dy, float* dx) {
  if (!applies(p)) return false;
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q, W = p.W, Q = p.Q;
  const __m512i dup_lo = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
  const __m512i dup_hi = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
  parallel_for(p.N * p.C, [&](int64_t plane) {
    float* dxp = dx + plane * HW;
    const float* dyp = dy + plane * PQ;
    const __m512 quarter = _mm512_set1_ps(0.25f);
    for (int64_t oh = 0; oh < p.P; ++oh) {
      float* r0 = dxp + 2 * oh * W;
      for (int64_t ow = 0; ow < Q; ow += 16) {
        const int64_t n = std::min<int64_t>(16, Q - ow);
        const __m512 g = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask16(n), dyp + oh * Q + ow), quarter);
        const __m512 lo = _mm512_permutexvar_ps(dup_lo, g), hi = _mm512_permutexvar_ps(dup_hi, g);
        const __mmask16 ma = mask16(2 * n), mb = mask16(2 * n - 16);
        _mm512_mask_storeu_ps(r0 + 2 * ow, ma, lo);
        _mm512_mask_storeu_ps(r0 + 2 * ow + 16, mb, hi);
        _mm512_mask_storeu_ps(r0 + W + 2 * ow, ma, lo);
        _mm512_mask_storeu_ps(r0 + W + 2 * ow + 16, mb, hi);
      }
      if (W % 2) r0[W - 1] = r0[2 * W - 1] = 0.f;  // the unused last column
    }
    if (p.H % 2) std::fill(dxp + (p.H - 1) * W, dxp + HW, 0.f);  // the unused last row
  });
  return true;
}

// Max backward when the output is half the input (P = H/2, Q = W/2): indices almost surely come
// from 2x2 stride-2 windows, so each dx 2x2 block is written once (dy where the index points,
// zeros elsewhere) instead of zeroing dx and scattering. Every index is checked against its
// block; a plane with any other index is redone by the generic scatter (the caller's fallback).
bool maxpool2d_2x2_backward(const Pool2dParams& p, const float* dy, const int64_t* indices,
                            float* dx, bool* plane_ok) {
  if (!(p.P == p.H / 2 && p.Q == p.W / 2 && p.W < (int64_t(1) << 29))) return false;
  const int64_t HW = p.H * p.W, PQ = p.P * p.Q, W = p.W, Q = p.Q;
  const __m512i iota2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i ilo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ihi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  parallel_for(p.N * p.C, [&](int64_t plane) {
    float* dxp = dx + plane * HW;
    const float* dyp = dy + plane * PQ;
    const int64_t* ip = indices + plane * PQ;
    bool ok = true;
    for (int64_t oh = 0; oh < p.P; ++oh) {
      float* r0 = dxp + 2 * oh * W;
      for (int64_t ow = 0; ow < Q; ow += 16) {
        const int64_t n = std::min<int64_t>(16, Q - ow);
        const __mmask16 m = mask16(n);
        // rel = index - (2*oh*W + 2*ow + 2*lane): one of 0, 1, W, W+1 for a 2x2 window.
        const __m512i base = _mm512_set1_epi64(2 * oh * W);
        const __m512i i0 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(__mmask8(m), ip + oh * Q + ow), base);
        const __m512i i1 = _mm512_sub_epi64(_mm512_maskz_loadu_epi64(__mmask8(m >> 8), ip + oh * Q + ow + 8), base);
        // Indices outside [0, 2^31) relative to the row pair cannot be in the window: check
        // before narrowing to int32.
        const __m512i lim = _mm512_set1_epi64(int64_t(2) * W + 2 * Q + 2);
        if ((_mm512_cmpge_epu64_mask(i0, lim) & __mmask8(m)) || (_mm512_cmpge_epu64_mask(i1, lim) & __mmask8(m >> 8))) {
          ok = false;
          break;
        }
        const __m512i rel32 = _mm512_sub_epi32(
            _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(i0)), _mm512_cvtepi64_epi32(i1), 1),
            _mm512_add_epi32(iota2, _mm512_set1_epi32(int32_t(2 * ow))));
        const __mmask16 k00 = _mm512_cmpeq_epi32_mask(rel32, _mm512_setzero_si512()) & m;
        const __mmask16 k01 = _mm512_cmpeq_epi32_mask(rel32, _mm512_set1_epi32(1)) & m;
        const __mmask16 k10 = _mm512_cmpeq_epi32_mask(rel32, _mm512_set1_epi32(int32_t(W))) & m;
        const __mmask16 k11 = _mm512_cmpeq_epi32_mask(rel32, _mm512_set1_epi32(int32_t(W + 1))) & m;
        if (__mmask16(k00 | k01 | k10 | k11) != m) {
          ok = false;
          break;
        }
        const __m512 g = _mm512_maskz_loadu_ps(m, dyp + oh * Q + ow);
        const __m512 e0 = _mm512_maskz_mov_ps(k00, g), o0 = _mm512_maskz_mov_ps(k01, g);
        const __m512 e1 = _mm512_maskz_mov_ps(k10, g), o1 = _mm512_maskz_mov_ps(k11, g);
        const __mmask16 ma = mask16(2 * n), mb = mask16(2 * n - 16);
        _mm512_mask_storeu_ps(r0 + 2 * ow, ma, _mm512_permutex2var_ps(e0, ilo, o0));
        _mm512_mask_storeu_ps(r0 + 2 * ow + 16, mb, _mm512_permutex2var_ps(e0, ihi, o0));
        _mm512_mask_storeu_ps(r0 + W + 2 * ow, ma, _mm512_permutex2var_ps(e1, ilo, o1));
        _mm512_mask_storeu_ps(r0 + W + 2 * ow + 16, mb, _mm512_permutex2var_ps(e1, ihi, o1));
      }
      if (!ok) break;
      if (W % 2) r0[W - 1] = r0[2 * W - 1] = 0.f;  // the unused last column
    }
    if (ok && p.H % 2) std::fill(dxp + (p.H - 1) * W, dxp + HW, 0.f);  // the unused last row
    plane_ok[plane] = ok;
  });
  return true;
}

}  // namespace avx512
}  // namespace bm
