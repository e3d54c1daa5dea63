// AVX-512 GEMM micro-kernels (fp32, fp64, bf16 -> fp32) and their entry points.
// Compiled with -mavx512f/bw/vl/dq/bf16; only called when cpu_features says the CPU has them.
//
// Tiles (rows x columns of C): fp32 6x64, fp64 12x16, bf16 12x32 (k in pairs). 24 accumulator
// registers + 2-4 for B + 1 broadcast fit the 32 zmm registers, and 24 independent FMA chains
// cover Zen 4's 4-cycle FMA latency at one 512-bit FMA per cycle (two 256-bit pipes).
// Blocking: A micro-panel MR x KC in L1 (KC 384), B block KC x NC in L2 (384 x 512 x 4 =
// 768 KiB of the 1 MiB L2). See benchmarks/NOTES.md for the tuning runs.
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "cpu/gemm.h"
#include "cpu/gemm_driver.h"

// fp32 tile: 6 x 64 (6 broadcasts per 24 FMAs) measured 1.05-1.2x the 12 x 32 tile (12 per 24)
// on the skinny layer shapes and equal on squares (benchmarks/NOTES.md). -DBM_F32_MR=12
// -DBM_F32_NV=2 builds the other one.
#ifndef BM_F32_MR
#define BM_F32_MR 6
#define BM_F32_NV 4
#endif

namespace bm {
namespace avx512 {
namespace {

using gemm_detail::clamped_rows;
using gemm_detail::with_rows;
using gemm_detail::with_vecs;

// Mask of the lanes of vector v (of L lanes) that hold one of the first n columns.
template <int L>
inline unsigned lane_mask(int n, int v) {
  const int left = n - L * v;
  return left >= L ? (1u << L) - 1 : left <= 0 ? 0u : (1u << left) - 1;
}

// Vector operations of one element type, so that one store and one direct tile serve fp32
// and fp64.
template <typename T>
struct Zmm;
template <>
struct Zmm<float> {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float x) { return _mm512_set1_ps(x); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V loadu(const float* p) { return _mm512_loadu_ps(p); }
  static V loadm(unsigned k, const float* p) { return _mm512_maskz_loadu_ps(__mmask16(k), p); }
  static void store(float* p, V v) { _mm512_store_ps(p, v); }
  static void storeu(float* p, V v) { _mm512_storeu_ps(p, v); }
  static void storem(unsigned k, float* p, V v) { _mm512_mask_storeu_ps(p, __mmask16(k), v); }
};
template <>
struct Zmm<double> {
  using V = __m512d;
  static constexpr int W = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V set1(double x) { return _mm512_set1_pd(x); }
  static V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V loadu(const double* p) { return _mm512_loadu_pd(p); }
  static V loadm(unsigned k, const double* p) { return _mm512_maskz_loadu_pd(__mmask8(k), p); }
  static void store(double* p, V v) { _mm512_store_pd(p, v); }
  static void storeu(double* p, V v) { _mm512_storeu_pd(p, v); }
  static void storem(unsigned k, double* p, V v) { _mm512_mask_storeu_pd(p, __mmask8(k), v); }
};

// Writes acc (R rows x NV vectors) times alpha, plus beta times C (not read when beta is 0), to
// C: the first m rows and n columns. The loops over the rows are unrolled with a break: a loop
// to the run-time m indexes acc with a variable, and where registers are short (the direct
// tiles) GCC then kept acc in memory and stored all of it on every k step.
template <int R, int NV, typename T>
__attribute__((always_inline)) inline void store_tile(typename Zmm<T>::V (&acc)[R][NV], T* c,
                                                      int64_t rs_c, int64_t cs_c, int m, int n,
                                                      T alpha, T beta) {
  using O = Zmm<T>;
  constexpr int W = O::W;
  if (cs_c != 1) {
    alignas(64) T tile[R * NV * W];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) O::store(tile + (i * NV + v) * W, acc[i][v]);
    gemm_detail::store_tile_generic(tile, NV * W, c, rs_c, cs_c, m, n, alpha, beta);
    return;
  }
  const typename O::V va = O::set1(alpha), vb = O::set1(beta);
  if (n == NV * W) {  // full width: plain loads and stores (a masked store costs more on Zen 4)
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i) {
      if (i >= m) break;
      T* row = c + i * rs_c;
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        typename O::V r = O::mul(acc[i][v], va);
        if (beta != T(0)) r = O::fma(O::loadu(row + W * v), vb, r);
        O::storeu(row + W * v, r);
      }
    }
    return;
  }
  unsigned km[NV];
#pragma GCC unroll 4
  for (int v = 0; v < NV; ++v) km[v] = lane_mask<W>(n, v);
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) {
    if (i >= m) break;
    T* row = c + i * rs_c;
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      typename O::V r = O::mul(acc[i][v], va);
      if (beta != T(0)) r = O::fma(O::loadm(km[v], row + W * v), vb, r);
      O::storem(km[v], row + W * v, r);
    }
  }
}

// The fp32 / fp64 vector operations as gemm_detail::DirectTile wants them.
template <typename T>
struct ZmmOps : Zmm<T> {
  using O = Zmm<T>;
  static typename O::V bcast(const T* p) { return O::set1(*p); }
  static typename O::V loadn(const T* p, int valid) {
    return O::loadm(valid >= O::W ? (1u << O::W) - 1 : (1u << valid) - 1, p);
  }
  template <int R, int NV>
  static void tile_store(typename O::V (&acc)[R][NV], T* c, int64_t rs_c, int64_t cs_c, int m,
                         int n, T alpha, T beta) {
    store_tile<R, NV, T>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
};

// Starts the C tile's cache lines (NR elements per row) on their way while the k loop runs.
template <int NR, typename T>
inline void prefetch_c(const T* c, int64_t rs_c, int64_t cs_c, int m) {
  if (cs_c != 1) return;
  for (int i = 0; i < m; ++i)
    for (int off = 0; off < NR * int(sizeof(T)); off += 64)
      _mm_prefetch(reinterpret_cast<const char*>(c + i * rs_c) + off, _MM_HINT_T0);
}

// fp32 MR x (16*NV) tile. RA: A row-major (a[i*lda + k], rows >= m clamped to the last valid
// one, so nothing outside A is read); otherwise a packed micro-panel. B is a packed, aligned
// panel. MR*NV accumulators + NV B vectors + 1 broadcast must fit the 32 zmm registers.
template <int MR_, int NV>
struct KernF32T {
  using TP = float;
  using TC = float;
  static constexpr int MR = MR_, NR = 16 * NV, KU = 1;
  static constexpr int64_t KC = 384, NC = 512;
  static constexpr bool kRowA = true;
  static constexpr int64_t kSmallM = 96, kInPlaceMaxN = 256;
  template <bool RA>
  static void ukr(int64_t ks, const float* a, int64_t lda, const float* b, float* c,
                  int64_t rs_c, int64_t cs_c, int m, int n, float alpha, float beta) {
    with_rows<MR>(m, [&](auto r) {
      with_vecs<NV, 16>(n, [&](auto v) {
        ukr_rows<RA, decltype(r)::value, decltype(v)::value>(ks, a, lda, b, c, rs_c, cs_c, m, n,
                                                             alpha, beta);
      });
    });
  }
  // R rows x NVE of the panel's NV vectors (the packed panel keeps its NR stride per k).
  template <bool RA, int R, int NVE>
  __attribute__((noinline))  // inlined into the drivers, edge tiles spilled (NOTES GEMM 19)
  static void ukr_rows(int64_t ks, const float* a, int64_t lda, const float* b, float* c,
                       int64_t rs_c, int64_t cs_c, int m, int n, float alpha, float beta) {
    prefetch_c<16 * NVE>(c, rs_c, cs_c, m);
    __m512 acc[R][NVE];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_setzero_ps();
    const float* ar[R];
    if constexpr (RA) clamped_rows(ar, a, lda, m);
    for (int64_t k = 0; k < ks; ++k) {
      __m512 bv[NVE];
#pragma GCC unroll 4
      for (int v = 0; v < NVE; ++v) {
        bv[v] = _mm512_load_ps(b + 16 * v);
        _mm_prefetch(reinterpret_cast<const char*>(b + 8 * NR + 16 * v), _MM_HINT_T0);
      }
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        const __m512 ai = _mm512_set1_ps(RA ? ar[i][k] : a[i]);
#pragma GCC unroll 4
        for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_fmadd_ps(ai, bv[v], acc[i][v]);
      }
      if constexpr (!RA) a += MR;
      b += NR;
    }
    store_tile<R, NVE, float>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
  static constexpr bool kDirect = true;  // see gemm_detail::DirectTile
  static void ukr_direct(int64_t ks, const float* a, int64_t a_rs, int64_t a_ks, const float* b,
                         int64_t ldb, float* c, int64_t rs_c, int64_t cs_c, int m, int n,
                         float alpha, float beta) {
    gemm_detail::DirectTile<ZmmOps<float>, float, MR, NV>::run(ks, a, a_rs, a_ks, b, ldb, c,
                                                               rs_c, cs_c, m, n, alpha, beta);
  }
};
using KernF32 = KernF32T<BM_F32_MR, BM_F32_NV>;

// bf16: packed A holds, per k pair, MR (a[i,k], a[i,k+1]) pairs as 32-bit words; packed B holds,
// per k pair, NR (b[k,j], b[k+1,j]) pairs = two zmm of 32 bf16. vdpbf16ps adds both products.
struct KernBF16 {
  using TP = uint16_t;
  using TC = float;
  static constexpr int MR = 12, NR = 32, KU = 2;
  static constexpr int64_t KC = 768, NC = 512;
  static constexpr bool kRowA = true, kF32Convert = true, kStreamPrefetch = true;
  static constexpr int64_t kSmallM = 96, kInPlaceMaxN = 0;
  // RA: row-major bf16 A, so the (k, k+1) pair of row i is the 32-bit word at a + i*lda + 2*kstep.
  template <bool RA>
  static void ukr(int64_t ks, const uint16_t* a, int64_t lda, const uint16_t* b, float* c,
                  int64_t rs_c, int64_t cs_c, int m, int n, float alpha, float beta,
                  gemm_detail::PfStream& pf) {
    with_rows<MR>(m, [&](auto r) {
      with_vecs<2, 16>(n, [&](auto v) {
        ukr_rows<RA, decltype(r)::value, decltype(v)::value>(ks, a, lda, b, c, rs_c, cs_c, m, n,
                                                             alpha, beta, pf);
      });
    });
  }
  // R rows x NVE of the panel's two vectors of 16 outputs (the packed panel keeps its stride).
  template <bool RA, int R, int NVE>
  __attribute__((noinline))  // inlined into the drivers, edge tiles spilled (NOTES GEMM 19)
  static void ukr_rows(int64_t ks, const uint16_t* a, int64_t lda, const uint16_t* b, float* c,
                       int64_t rs_c, int64_t cs_c, int m, int n, float alpha, float beta,
                       gemm_detail::PfStream& pf) {
    prefetch_c<16 * NVE>(c, rs_c, cs_c, m);
    __m512 acc[R][NVE];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 2
      for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_setzero_ps();
    const int32_t* a32 = reinterpret_cast<const int32_t*>(a);
    const int32_t* ar[R];
    if constexpr (RA) clamped_rows(ar, a, lda, m);
    const bool two = pf.left > ks;  // more lines to fetch than k steps
    for (int64_t k = 0; k < ks; ++k) {
      __m512bh bv[NVE];
#pragma GCC unroll 2
      for (int v = 0; v < NVE; ++v) {
        bv[v] = (__m512bh)_mm512_load_si512(b + 32 * v);
        _mm_prefetch(reinterpret_cast<const char*>(b + 16 * NR + 32 * v), _MM_HINT_T0);
      }
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        int32_t word;
        if constexpr (RA) std::memcpy(&word, ar[i] + k, 4);
        else word = a32[i];
        const __m512bh ai = (__m512bh)_mm512_set1_epi32(word);
#pragma GCC unroll 2
        for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
      }
      if constexpr (!RA) a32 += MR;
      b += NR * 2;
      pf.one();
      if (two) pf.one();
    }
    pf.burst();
    store_tile<R, NVE, float>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }

  // Large M, N <= 64: 6 x 64 tiles reading float A in place, each (k, k+1) pair converted in
  // registers (a 64-bit load, vcvtneps2bf16, vpbroadcastd) on the way to the dot products: no
  // copy of A and one conversion per element. b0, b1: the packed 32-column panels of columns
  // 0-31 and 32-63 (b1 unused when n <= 32). kc: valid elements per row (odd: the last pair's
  // second half reads as zero).
  static constexpr int64_t kConvertInKernelMaxN = 64;
  static constexpr int kConvertRows = 6;
  static void ukr_cvt(int64_t ks, int64_t kc, const float* a, int64_t lda, const uint16_t* b0,
                      const uint16_t* b1, float* c, int64_t rs_c, int64_t cs_c, int m, int n,
                      float alpha, float beta, gemm_detail::PfStream& pf) {
    if (n > 32) ukr_cvt_t<2>(ks, kc, a, lda, b0, b1, c, rs_c, cs_c, m, n, alpha, beta, pf);
    else ukr_cvt_t<1>(ks, kc, a, lda, b0, b1, c, rs_c, cs_c, m, n, alpha, beta, pf);
  }
  template <int NP>
  static void ukr_cvt_t(int64_t ks, int64_t kc, const float* a, int64_t lda, const uint16_t* b0,
                        const uint16_t* b1, float* c, int64_t rs_c, int64_t cs_c, int m, int n,
                        float alpha, float beta, gemm_detail::PfStream& pf) {
    constexpr int R = kConvertRows, NV = 2 * NP;
    prefetch_c<16 * NV>(c, rs_c, cs_c, m);
    __m512 acc[R][NV];
#pragma GCC unroll 6
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
    const float* ar[R];
    clamped_rows(ar, a, lda, m);
    const bool two = pf.left > ks;
    const int64_t full = kc / 2;  // pairs with both halves inside the row
    auto step = [&](int64_t k, bool last_half) {
      __m512bh bv[NV];
      bv[0] = (__m512bh)_mm512_load_si512(b0 + 64 * k);
      bv[1] = (__m512bh)_mm512_load_si512(b0 + 64 * k + 32);
      if constexpr (NP == 2) {
        bv[2] = (__m512bh)_mm512_load_si512(b1 + 64 * k);
        bv[3] = (__m512bh)_mm512_load_si512(b1 + 64 * k + 32);
      }
#pragma GCC unroll 6
      for (int i = 0; i < R; ++i) {
        // 64-bit load through an unaligned type: an odd K leaves rows 4-byte aligned only.
        const float* p = ar[i] + 2 * k;
        const __m128 x = last_half
            ? _mm_maskz_loadu_ps(1, p)
            : _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i_u*>(p)));
        // maskz with all lanes: the unmasked intrinsic's _mm512_undefined_epi32 trips GCC 12's
        // -Wmaybe-uninitialized; the instruction is the same vpbroadcastd.
        const __m512bh ai = (__m512bh)_mm512_maskz_broadcastd_epi32(
            __mmask16(0xFFFF), (__m128i)_mm_cvtneps_pbh(x));
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_dpbf16_ps(acc[i][v], ai, bv[v]);
      }
    };
    for (int64_t k = 0; k < full; ++k) {
      step(k, false);
      pf.one();
      if (two) pf.one();
    }
    if (full < ks) step(full, true);
    pf.burst();
    store_tile<R, NV, float>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }

  // Contiguous float -> bf16 (round to nearest even, as vcvtneps2bf16 does).
  static void f32_to_tp(const float* src, uint16_t* dst, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i),
                          (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
    if (i < n) {
      const __mmask16 mk = __mmask16((1u << (n - i)) - 1);
      const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mk, src + i));
      _mm256_mask_storeu_epi16(dst + i, mk, v);
    }
  }

  // B panel of kc rows x n (<= 32) columns from row-major float B: for each k pair, 32 columns
  // of (b[k, j], b[k+1, j]) bf16 pairs = two zmm. Missing rows/columns are zeros.
  static void pack_b_rows(const float* B, int64_t rs_b, int64_t kc, int n, uint16_t* dst) {
    if (n == NR) pack_b_f32_w<true>(B, rs_b, kc, n, dst);  // plain loads: masked ones cost more
    else pack_b_f32_w<false>(B, rs_b, kc, n, dst);
  }
  // The same panel from row-major bf16 B (ml_dtypes.bfloat16 arrays): one 64-byte row of 32
  // values per k, interleaved with the next row's by two vpermt2w.
  static void pack_b_rows(const uint16_t* B, int64_t rs_b, int64_t kc, int n, uint16_t* dst) {
    const __mmask32 mk = n >= 32 ? ~__mmask32(0) : __mmask32((1u << n) - 1);
    // Word 2j of the first result is row k's column j, word 2j + 1 row k+1's (index 32 + j).
    alignas(64) uint16_t lo[32], hi[32];
    for (int j = 0; j < 16; ++j) {
      lo[2 * j] = uint16_t(j), lo[2 * j + 1] = uint16_t(32 + j);
      hi[2 * j] = uint16_t(16 + j), hi[2 * j + 1] = uint16_t(48 + j);
    }
    const __m512i ilo = _mm512_load_si512(lo), ihi = _mm512_load_si512(hi);
    for (int64_t k = 0; k < kc; k += 2) {
      const uint16_t* r0 = B + k * rs_b;
      const __m512i x0 = _mm512_maskz_loadu_epi16(mk, r0);
      const __m512i x1 = k + 1 < kc ? _mm512_maskz_loadu_epi16(mk, r0 + rs_b)
                                    : _mm512_setzero_si512();
      uint16_t* d = dst + (k / 2) * NR * 2;
      _mm512_store_si512(d, _mm512_permutex2var_epi16(x0, ilo, x1));
      _mm512_store_si512(d + 32, _mm512_permutex2var_epi16(x0, ihi, x1));
    }
  }
  template <bool Full>
  static void pack_b_f32_w(const float* B, int64_t rs_b, int64_t kc, int n, uint16_t* dst) {
    const __mmask16 m0 = __mmask16(lane_mask<16>(n, 0)), m1 = __mmask16(lane_mask<16>(n, 1));
    // Interleave: result word j = (low half j, high half j) for the 16 columns of one vector.
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9,
                                         24, 8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1,
                                         16, 0);
    auto load = [&](const float* p, __mmask16 mk) {
      return Full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(mk, p);
    };
    for (int64_t k = 0; k < kc; k += 2) {
      const float* r0 = B + k * rs_b;
      const bool has1 = k + 1 < kc;
#pragma GCC unroll 2
      for (int v = 0; v < 2; ++v) {
        const __mmask16 mk = v ? m1 : m0;
        const __m512 x0 = load(r0 + 16 * v, mk);
        const __m512 x1 = has1 ? load(r0 + rs_b + 16 * v, mk) : _mm512_setzero_ps();
        // cvtne2ps: high 16 lanes from the first operand, low 16 from the second.
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(x1, x0);
        _mm512_store_si512(dst + (k / 2) * NR * 2 + 32 * v, _mm512_permutexvar_epi16(idx, both));
      }
    }
  }
};

// fp64 MR x (8*NV) tile, same conventions as KernF32T. 12 x 16 (12 broadcasts per 24 FMAs);
// 6 x 32 (-DBM_F64_MR=6 -DBM_F64_NV=4, half the broadcasts) measured within 5% of it on the
// SVD's skinny products and 10% slower with a transposed A (160x943x32), so 12 x 16 stays.
template <int MR_, int NV>
struct KernF64T {
  using TP = double;
  using TC = double;
  static constexpr int MR = MR_, NR = 8 * NV, KU = 1;
  static constexpr int64_t KC = 256, NC = 384;
  static constexpr bool kRowA = true;
  static constexpr int64_t kSmallM = 96, kInPlaceMaxN = 128;
  template <bool RA>
  static void ukr(int64_t ks, const double* a, int64_t lda, const double* b, double* c,
                  int64_t rs_c, int64_t cs_c, int m, int n, double alpha, double beta) {
    with_rows<MR>(m, [&](auto r) {
      with_vecs<NV, 8>(n, [&](auto v) {
        ukr_rows<RA, decltype(r)::value, decltype(v)::value>(ks, a, lda, b, c, rs_c, cs_c, m, n,
                                                             alpha, beta);
      });
    });
  }
  // R rows x NVE of the panel's vectors (see KernF32T).
  template <bool RA, int R, int NVE>
  __attribute__((noinline))  // inlined into the drivers, edge tiles spilled (NOTES GEMM 19)
  static void ukr_rows(int64_t ks, const double* a, int64_t lda, const double* b, double* c,
                       int64_t rs_c, int64_t cs_c, int m, int n, double alpha, double beta) {
    __m512d acc[R][NVE];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_setzero_pd();
    const double* ar[R];
    if constexpr (RA) clamped_rows(ar, a, lda, m);
    for (int64_t k = 0; k < ks; ++k) {
      __m512d bv[NVE];
#pragma GCC unroll 4
      for (int v = 0; v < NVE; ++v) bv[v] = _mm512_load_pd(b + 8 * v);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        const __m512d ai = _mm512_set1_pd(RA ? ar[i][k] : a[i]);
#pragma GCC unroll 4
        for (int v = 0; v < NVE; ++v) acc[i][v] = _mm512_fmadd_pd(ai, bv[v], acc[i][v]);
      }
      if constexpr (!RA) a += MR;
      b += NR;
    }
    store_tile<R, NVE, double>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
  static constexpr bool kDirect = true;  // see gemm_detail::DirectTile
  static void ukr_direct(int64_t ks, const double* a, int64_t a_rs, int64_t a_ks, const double* b,
                         int64_t ldb, double* c, int64_t rs_c, int64_t cs_c, int m, int n,
                         double alpha, double beta) {
    gemm_detail::DirectTile<ZmmOps<double>, double, MR, NV>::run(ks, a, a_rs, a_ks, b, ldb, c,
                                                                 rs_c, cs_c, m, n, alpha,
                                                                 beta);
  }
};
#ifndef BM_F64_MR
#define BM_F64_MR 12
#define BM_F64_NV 2
#endif
using KernF64 = KernF64T<BM_F64_MR, BM_F64_NV>;

}  // namespace

void sgemm(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
           int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  // N <= 32: a 64-wide tile would compute twice the columns needed; the 12 x 32 tile does none
  // extra (943x32x32, one thread: 45 -> see NOTES.md GEMM item 12).
  if (N <= 32 && KernF32::NR > 32)
    return gemm_detail::gemm_driver<KernF32T<12, 2>>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b,
                                                     cs_b, beta, C, rs_c, cs_c, nt);
  gemm_detail::gemm_driver<KernF32>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                    cs_c, nt);
}

void dgemm(int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t rs_a,
           int64_t cs_a, const double* B, int64_t rs_b, int64_t cs_b, double beta, double* C,
           int64_t rs_c, int64_t cs_c, int nt) {
  // 16 < N <= 24: the 16-wide tile would run a second, mostly empty panel (N = 20: 32 columns
  // of FMAs for 20); an 8 x 24 tile (24 accumulators, 8 broadcasts per 24 FMAs) runs none.
  if (N > 16 && N <= 24 && KernF64::NR == 16)
    return gemm_detail::gemm_driver<KernF64T<8, 3>>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b,
                                                    beta, C, rs_c, cs_c, nt);
  gemm_detail::gemm_driver<KernF64>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                    cs_c, nt);
}

void sgemm_bf16(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rs_a,
                int64_t cs_a, const float* B, int64_t rs_b, int64_t cs_b, float beta, float* C,
                int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernBF16>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                     cs_c, nt);
}

void sgemm_bf16in(int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A, int64_t rs_a,
                  int64_t cs_a, const uint16_t* B, int64_t rs_b, int64_t cs_b, float beta,
                  float* C, int64_t rs_c, int64_t cs_c, int nt) {
  gemm_detail::gemm_driver<KernBF16>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c,
                                     cs_c, nt);
}

}  // namespace avx512
}  // namespace bm
