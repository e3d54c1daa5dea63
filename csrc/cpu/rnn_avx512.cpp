// RNN gate kernels (rnn_gates.h) compiled for AVX512 (this file gets the per-ISA flags).
#include <cstdint>
#include <cstring>

#include <algorithm>

#include "common/scratch.h"
#include "cpu/rnn.h"

#define BM_RNN_VBYTES 64
#define BM_RNN_MR 6
#define BM_RNN_NV 4
namespace bm::avx512 {
#include "cpu/rnn_gates.h"
}  // namespace bm::avx512

// ---- bf16 recurrent product (AVX512_BF16, vdpbf16ps: bf16 pairs, fp32 accumulation) ----------
// Same panel scheme as rec_pack / rec_run (NR = 64 columns, last panel shifted to end at N), but
// panel p stores ceil(K/2) rows of 64 (k, k+1) bf16 pairs, and A is rounded to bf16 pairs once
// per call of the product (by every thread for the rows it needs: cheap, B x K).
#include <immintrin.h>

#include "cpu/gemm.h"

namespace bm::avx512 {
namespace {
constexpr int kNR = 64, kMR = 6;

template <int MR>
void bf16_tile(int64_t K2, const uint32_t* A, int64_t lda2, const uint32_t* Bp, float* C,
               int64_t ldc, bool accumulate) {
  __m512 acc[MR][4];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K2; ++k) {
    __m512bh b[4];
    for (int v = 0; v < 4; ++v) b[v] = (__m512bh)_mm512_loadu_si512(Bp + k * kNR + v * 16);
    for (int i = 0; i < MR; ++i) {
      const __m512bh a = (__m512bh)_mm512_set1_epi32(static_cast<int>(A[i * lda2 + k]));
      for (int v = 0; v < 4; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], a, b[v]);
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < 4; ++v) {
      float* c = C + i * ldc + v * 16;
      const __m512 r = accumulate ? _mm512_add_ps(acc[i][v], _mm512_loadu_ps(c)) : acc[i][v];
      _mm512_storeu_ps(c, r);
    }
}

template <int MR>
void bf16_rows(int mb, int64_t K2, const uint32_t* A, int64_t lda2, const uint32_t* Bp, float* C,
               int64_t ldc, bool acc) {
  if constexpr (MR > 0) {
    if (mb == MR) return bf16_tile<MR>(K2, A, lda2, Bp, C, ldc, acc);
    return bf16_rows<MR - 1>(mb, K2, A, lda2, Bp, C, ldc, acc);
  }
}

inline uint32_t pair(float lo, float hi) {
  return uint32_t(float_to_bf16(lo)) | (uint32_t(float_to_bf16(hi)) << 16);
}
}  // namespace

int64_t rnn_rec_bf16_packed_size(int64_t K, int64_t N) {  // in uint32 words
  return (N + kNR - 1) / kNR * kNR * ((K + 1) / 2);
}

void rnn_rec_bf16_pack(int64_t K, int64_t N, const float* B, int64_t rs, int64_t cs,
                       uint32_t* out) {
  const int64_t P = (N + kNR - 1) / kNR, K2 = (K + 1) / 2, nb = std::min<int64_t>(N, kNR);
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = N >= kNR ? std::min(p * kNR, N - kNR) : 0;
    uint32_t* o = out + p * K2 * kNR;
    for (int64_t c = 0; c < kNR; ++c)
      for (int64_t k2 = 0; k2 < K2; ++k2) {
        const int64_t k = 2 * k2;
        const float lo = c < nb ? B[k * rs + (c0 + c) * cs] : 0.0f;
        const float hi = c < nb && k + 1 < K ? B[(k + 1) * rs + (c0 + c) * cs] : 0.0f;
        o[k2 * kNR + c] = pair(lo, hi);
      }
  }
}

void rnn_rec_bf16_run(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                      const uint32_t* Bp, float* C, int64_t ldc, bool accumulate) {
  const int64_t K2 = (K + 1) / 2, P = (N + kNR - 1) / kNR, ntiles = (M + kMR - 1) / kMR;
  uint32_t* a2 = thread_scratch<uint32_t>(size_t(M) * K2, 0);  // GEMM slots: unused in the loop
  float* tile = thread_scratch<float>(size_t(kMR) * kNR, 1);
  for (int64_t i = 0; i < M; ++i) {
    const float* r = A + i * lda;
    int64_t k2 = 0;
    for (; 2 * k2 + 32 <= K; k2 += 16) {  // 32 floats -> 16 bf16 pairs
      // cvtne2ps_pbh(a, b) = [bf16(b0..b15), bf16(a0..a15)]: the 32 values in memory order, so
      // word j holds the pair (r[2j], r[2j+1]).
      const __m512bh v =
          _mm512_cvtne2ps_pbh(_mm512_loadu_ps(r + 2 * k2 + 16), _mm512_loadu_ps(r + 2 * k2));
      _mm512_storeu_si512(a2 + i * K2 + k2, (__m512i)v);
    }
    for (; k2 < K2; ++k2) a2[i * K2 + k2] = pair(r[2 * k2], 2 * k2 + 1 < K ? r[2 * k2 + 1] : 0.0f);
  }
  for (int64_t p = 0; p < P; ++p) {
    const int64_t c0 = N >= kNR ? std::min(p * kNR, N - kNR) : 0, first = p * kNR;
    const bool full = c0 == first && first + kNR <= N;
    const uint32_t* bp = Bp + p * K2 * kNR;
    for (int64_t t = 0; t < ntiles; ++t) {
      const int64_t m0 = M * t / ntiles;
      const int mb = int(M * (t + 1) / ntiles - m0);
      if (full) {
        bf16_rows<kMR>(mb, K2, a2 + m0 * K2, K2, bp, C + m0 * ldc + c0, ldc, accumulate);
        continue;
      }
      bf16_rows<kMR>(mb, K2, a2 + m0 * K2, K2, bp, tile, kNR, false);
      const int64_t nb = N - first;
      for (int r = 0; r < mb; ++r) {
        float* c = C + (m0 + r) * ldc + first;
        const float* tt = tile + r * kNR + (first - c0);
        for (int64_t j = 0; j < nb; ++j) c[j] = accumulate ? c[j] + tt[j] : tt[j];
      }
    }
  }
}

}  // namespace bm::avx512
