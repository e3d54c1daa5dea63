// The Goto/BLIS loop nest around a register-blocked micro-kernel; included by each per-ISA
// translation unit (gemm.cpp, gemm_avx2.cpp, gemm_avx512.cpp) with that ISA's micro-kernel.
//
// Roles. The micro-kernel computes an MR x NR tile of C, vectorised along N (NR = a few SIMD
// registers) and broadcasting MR elements of A per k. So the B micro-panel (KC x NR) is the one
// streamed from L2 and the A micro-panel (MR x KC) is the one that sits in L1 while the kernel
// sweeps the B block. Two orders:
//
// Large M:                                    Small M (M <= kSmallM: a batch of rows x weights)
//   for jb over N in NC   (B block in L2)       for pc over K in KC
//     for pc over K in KC                         A slice M x KC ready once (L2)
//       pack B block KC x NC                      for jr over N in NR    (threads split these)
//       for ir over M in MR                         pack B micro-panel (B streamed exactly once)
//         A micro-panel ready (L1)                  for ir over M in MR -> micro-kernel
//         for jr over the block in NR -> micro-kernel
//
// "A ready" means one of: packed k-major (A[i,k] at a[k*MR + i]: transposed A, or kernels
// without row mode); copied row-major into a compact buffer whose leading dimension avoids L1
// set aliasing (kRowA kernels, row-major A, many B panels to amortise the copy over); or read in
// place (row-major A, few B panels: the kernel's own loads then overlap A's cache misses with the
// FMAs, where a separate copy would stall on them). A is never packed as a whole block, so the
// skinny layer shapes never write a packed copy of A to memory. K is cut into equal slices (a
// short last slice cost 15% at K = 2048). Packing pads B with zeros to full NR / KU, so the
// kernel masks only its stores; rows >= m of A are clamped (row mode) or zero (packed).
//
// Threads (large M): when whole NC blocks split the columns evenly between the threads, each
// thread owns whole column blocks and packs its own B (no barriers). Otherwise (N small, or
// blocks that split unevenly) the threads pack one shared B block together and split the MR
// panels of M. Small M: threads split the NR panels of N.
//
// Kernel requirements (struct Kern):
//   TP packed element type, TC accumulator/output type, MR, NR, KU (k per step: 1, or 2 for bf16
//   pairs), KC, NC (multiple of NR), kSmallM, kRowA (supports row-major A), kInPlaceMaxN (N up
//   to which row-major A is read in place), and
//     template <bool RA> static void ukr(int64_t ksteps, const TP* a, int64_t lda, const TP* b,
//                                        TC* c, int64_t rs_c, int64_t cs_c, int m, int n,
//                                        TC alpha, TC beta);   // beta == 0: C is not read
//   RA: a[i*lda + k] row-major (lda in TP elements); else a packed micro-panel. b is a packed
//   micro-panel: b[(k/KU)*NR*KU + j*KU + k%KU].
//   Optional kF32Convert (TP != float): static f32_to_tp(const float*, TP*, int64_t n) and
//   pack_b_rows(const T* B, int64_t rs_b, int64_t kc, int n, TP* dst) for unit-stride B, T float
//   or TP. Optional kStreamPrefetch: ukr takes a PfStream& last (see PfStream).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "common/scratch.h"
#include "cpu/gemm.h"
#include "cpu/gemv.h"

namespace bm {
namespace gemm_detail {
// Internal linkage: each per-ISA translation unit compiles its own copy with its own flags (a
// shared inline symbol such as scale_c<float> would let the linker keep one ISA's code for all).
namespace {

template <typename TP, typename TIn>
inline TP convert(TIn x) { return static_cast<TP>(x); }
template <>
inline uint16_t convert<uint16_t, float>(float x) { return float_to_bf16(x); }

template <class Kern, class = void>
struct has_f32_convert : std::false_type {};
template <class Kern>
struct has_f32_convert<Kern, std::void_t<decltype(Kern::kF32Convert)>> : std::true_type {};

// Rows of the operand the next micro-kernel calls will read (the next A panel's rows at large
// M, the next B panels' rows at small M), fetched towards L2 a line at a time: 64-byte steps,
// the last one at the row's last byte (as many as the first row spans when every row has its
// alignment, else row_bytes / 64 + 1, enough for any). `left` is how many the current kernel
// call may issue. A kernel declaring kStreamPrefetch takes the stream and issues one per k step
// (one() in its loop, burst() after it), so the misses overlap its FMAs: bursts of a few
// hundred before each call stalled on the full miss queue (perf: the copy of the next bf16 A
// panel waiting on its loads). For the other kernels run_ukr issues them all before the call.
struct PfStream {
  const char* base = nullptr;
  int64_t stride = 0, lines = 0, last = 0;  // row stride and last byte offset, in bytes
  int64_t row = 0, line = 0, left = 0;
  PfStream() = default;
  PfStream(const void* p, int64_t stride_bytes, int64_t row_bytes)
      : base(static_cast<const char*>(p)), stride(stride_bytes), last(row_bytes - 1) {
    const int64_t lead = int64_t(reinterpret_cast<uintptr_t>(p) & 63);
    lines = stride % 64 == 0 ? (lead + row_bytes + 63) / 64 : row_bytes / 64 + 1;
  }
  __attribute__((always_inline)) inline void one() {
    if (left <= 0) return;
    __builtin_prefetch(base + row * stride + (line + 1 < lines ? 64 * line : last), 0, 2);
    if (++line == lines) {
      line = 0;
      ++row;
    }
    --left;
  }
  inline void burst() {
    while (left > 0) one();
  }
};

template <class Kern, class = void>
struct has_stream_prefetch : std::false_type {};
template <class Kern>
struct has_stream_prefetch<Kern, std::void_t<decltype(Kern::kStreamPrefetch)>>
    : std::true_type {};

template <class Kern, bool RA>
inline void run_ukr(PfStream& pf, int64_t ksteps, const typename Kern::TP* a, int64_t lda,
                    const typename Kern::TP* b, typename Kern::TC* c, int64_t rs_c, int64_t cs_c,
                    int m, int n, typename Kern::TC alpha, typename Kern::TC beta) {
  if constexpr (has_stream_prefetch<Kern>::value) {
    Kern::template ukr<RA>(ksteps, a, lda, b, c, rs_c, cs_c, m, n, alpha, beta, pf);
  } else {
    pf.burst();
    Kern::template ukr<RA>(ksteps, a, lda, b, c, rs_c, cs_c, m, n, alpha, beta);
  }
}

// dst[0, n) = src[0, n) and dst[n, L) = 0: one k row of a packed panel (L = MR or NR) from a
// unit-stride source, nothing read past src[n). Masked vector moves where this translation unit
// has AVX-512 (a scalar loop plus a memset of the whole panel took a quarter of a 20x1682x20
// fp64 product with transposed A); a scalar loop elsewhere.
template <int L, typename T>
inline void copy_pad(T* dst, const T* src, int n) {
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value || std::is_same<T, double>::value) {
    constexpr int W = 64 / int(sizeof(T));
    auto mask = [](int lanes) {
      return lanes >= W ? (1u << W) - 1 : lanes <= 0 ? 0u : (1u << lanes) - 1;
    };
#pragma GCC unroll 4
    for (int j = 0; j < L; j += W) {
      const unsigned valid = mask(n - j), all = mask(L - j);
      if constexpr (std::is_same<T, float>::value)
        _mm512_mask_storeu_ps(dst + j, __mmask16(all),
                              _mm512_maskz_loadu_ps(__mmask16(valid), src + j));
      else
        _mm512_mask_storeu_pd(dst + j, __mmask8(all),
                              _mm512_maskz_loadu_pd(__mmask8(valid), src + j));
    }
    return;
  }
#endif
  for (int j = 0; j < L; ++j) dst[j] = j < n ? src[j] : T(0);
}

// Packed A micro-panel: dst[(k / KU) * MR * KU + i * KU + k % KU] = A[i, k]; zero-padded.
template <class Kern, typename TIn>
inline void pack_a_panel(const TIn* A, int64_t rs_a, int64_t cs_a, int m, int64_t kc,
                         typename Kern::TP* dst) {
  using TP = typename Kern::TP;
  constexpr int MR = Kern::MR, KU = Kern::KU;
  if constexpr (KU == 1 && std::is_same<TIn, TP>::value) {
    if (cs_a != 1 && rs_a == 1) {  // transposed A: each k is m contiguous elements
      for (int64_t k = 0; k < kc; ++k) copy_pad<MR>(dst + k * MR, A + k * cs_a, m);
      return;
    }
  }
  const int64_t kpad = (kc + KU - 1) / KU * KU;
  if (m < MR || kpad != kc) std::memset(dst, 0, sizeof(TP) * MR * kpad);
  if (cs_a == 1) {
    for (int i = 0; i < m; ++i) {
      const TIn* src = A + i * rs_a;
      for (int64_t k = 0; k < kc; ++k)
        dst[(k / KU) * MR * KU + i * KU + k % KU] = convert<TP>(src[k]);
    }
  } else {
    for (int64_t k = 0; k < kc; ++k) {
      const TIn* src = A + k * cs_a;
      TP* d = dst + (k / KU) * MR * KU + k % KU;
      for (int i = 0; i < m; ++i) d[i * KU] = convert<TP>(src[i * rs_a]);
    }
  }
}

// Packed B micro-panel: dst[(k / KU) * NR * KU + j * KU + k % KU] = B[k, j]; zero-padded.
template <class Kern, typename TIn>
inline void pack_b_panel(const TIn* B, int64_t rs_b, int64_t cs_b, int64_t kc, int n,
                         typename Kern::TP* dst) {
  using TP = typename Kern::TP;
  constexpr int NR = Kern::NR, KU = Kern::KU;
  if constexpr (has_f32_convert<Kern>::value &&
                (std::is_same<TIn, float>::value || std::is_same<TIn, TP>::value)) {
    if (cs_b == 1) return Kern::pack_b_rows(B, rs_b, kc, n, dst);
  }
  if constexpr (KU == 1 && std::is_same<TIn, TP>::value) {
    if (cs_b == 1) {
      for (int64_t k = 0; k < kc; ++k) copy_pad<NR>(dst + k * NR, B + k * rs_b, n);
      return;
    }
  }
  const int64_t kpad = (kc + KU - 1) / KU * KU;
  if (n < NR || kpad != kc) std::memset(dst, 0, sizeof(TP) * NR * kpad);
  if (cs_b == 1) {
    for (int64_t k = 0; k < kc; ++k) {
      const TIn* src = B + k * rs_b;
      TP* d = dst + (k / KU) * NR * KU + k % KU;
      if (KU == 1 && n == NR) {
        for (int j = 0; j < NR; ++j) d[j] = convert<TP>(src[j]);
      } else {
        for (int j = 0; j < n; ++j) d[j * KU] = convert<TP>(src[j]);
      }
    }
  } else {
    for (int j = 0; j < n; ++j) {
      const TIn* src = B + j * cs_b;
      for (int64_t k = 0; k < kc; ++k)
        dst[(k / KU) * NR * KU + j * KU + k % KU] = convert<TP>(src[k * rs_b]);
    }
  }
}

// Leading dimension of a compact row-major copy of A: rounded up, plus 16 so that consecutive
// rows fall in different L1 sets (A's own row stride is often a multiple of 4 KiB).
inline int64_t a_rows_ld(int64_t kc) { return (kc + 15) / 16 * 16 + 16; }

// Rows whose stride is a multiple of 4 KiB map to the same L1 set: read in place, 12 of them
// thrash the 8-way L1.
inline bool rows_alias(int64_t row_stride, size_t elem_bytes) {
  const int64_t bytes = (row_stride < 0 ? -row_stride : row_stride) * int64_t(elem_bytes);
  return bytes % 4096 == 0;
}

// m rows x kc of a row-major A into dst (leading dimension ld), converted to TP; an odd kc is
// padded with one zero (bf16 pairs).
template <class Kern, typename TIn>
inline void copy_a_rows(const TIn* A, int64_t rs_a, int m, int64_t kc,
                        typename Kern::TP* dst, int64_t ld) {
  using TP = typename Kern::TP;
  const int64_t kpad = (kc + Kern::KU - 1) / Kern::KU * Kern::KU;
  for (int i = 0; i < m; ++i) {
    TP* d = dst + i * ld;
    const TIn* s = A + i * rs_a;
    if constexpr (std::is_same<TIn, TP>::value) {
      std::memcpy(d, s, sizeof(TP) * kc);
    } else if constexpr (has_f32_convert<Kern>::value && std::is_same<TIn, float>::value) {
      Kern::f32_to_tp(s, d, kc);
    } else {
      for (int64_t k = 0; k < kc; ++k) d[k] = convert<TP>(s[k]);
    }
    for (int64_t k = kc; k < kpad; ++k) d[k] = TP(0);
  }
}

template <typename TC>
void scale_c(int64_t M, int64_t N, TC beta, TC* C, int64_t rs_c, int64_t cs_c) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      TC& c = C[i * rs_c + j * cs_c];
      c = beta == TC(0) ? TC(0) : beta * c;
    }
}

// K from which driver_direct takes small products (M <= kSmallM, N <= kDirectMaxN and at most
// three column panels: every MR x NR tile re-reads the K chunk, and fp64 with N = 64 (four
// 16-wide panels) ran 15% slower than packing).
constexpr int64_t kDirectMinK = 1024, kDirectMaxN = 64;

// Small-M order: packed B panels per group, at most this many bytes (L2-resident).
constexpr int64_t kSmallMBlockBytes = 256 * 1024;

// How the A operand reaches the kernel (see the file header).
enum class AMode { packed, rows_copy, rows_in_place, rows_convert };

template <class Kern, class = void>
struct has_convert_in_kernel : std::false_type {};
template <class Kern>
struct has_convert_in_kernel<Kern, std::void_t<decltype(Kern::kConvertInKernelMaxN)>>
    : std::true_type {};

// Large-M order, one KC slice: panels [ir0, ir1) of M against a packed B block of nc columns.
template <class Kern, AMode MODE, typename TIn>
inline void macro_rows(int64_t ir0, int64_t ir1, int64_t M, int64_t nc, int64_t kc,
                       const TIn* A, int64_t rs_a, int64_t cs_a, const typename Kern::TP* bpack,
                       typename Kern::TP* abuf, typename Kern::TC alpha, typename Kern::TC beta,
                       typename Kern::TC* C, int64_t rs_c, int64_t cs_c) {
  using TP = typename Kern::TP;
  constexpr int MR = Kern::MR, NR = Kern::NR, KU = Kern::KU;
  constexpr bool RA = MODE != AMode::packed;
  const int64_t ksteps = (kc + KU - 1) / KU;
  for (int64_t ir = ir0; ir < ir1; ++ir) {
    const int64_t i0 = ir * MR;
    const int m = static_cast<int>(std::min<int64_t>(MR, M - i0));
    const TP* ap = abuf;
    int64_t lda = MR;
    if constexpr (MODE == AMode::rows_in_place) {
      ap = reinterpret_cast<const TP*>(A + i0 * rs_a);
      lda = rs_a;
    } else if constexpr (MODE == AMode::rows_copy) {
      lda = a_rows_ld(kc);
      copy_a_rows<Kern>(A + i0 * rs_a, rs_a, m, kc, abuf, lda);
    } else if constexpr (MODE == AMode::packed) {
      pack_a_panel<Kern>(A + i0 * rs_a, rs_a, cs_a, m, kc, abuf);
    }
    // The next panel's rows are MR separate pages, and at large M they come from DRAM (A no
    // longer fits in L3): start them towards L2 while this panel's kernel calls run, so the
    // next copy (or in-kernel conversion) does not stall on the misses.
    const int64_t next_rows = RA && ir + 1 < ir1 ? std::min<int64_t>(MR, M - i0 - MR) : 0;
    PfStream pf(next_rows ? A + (i0 + MR) * rs_a : A, rs_a * int64_t(sizeof(TIn)),
                kc * int64_t(sizeof(TIn)));
    const int64_t pf_total = next_rows * pf.lines;
    auto pf_share = [&](int64_t calls) {  // this call's share of what is left, calls to go
      const int64_t left = pf_total - (pf.row * pf.lines + pf.line);
      return (left + calls - 1) / calls;
    };
    if constexpr (MODE == AMode::rows_convert) {
      // N <= 64: one call per kConvertRows rows covers every column (see the kernel).
      constexpr int R = Kern::kConvertRows;
      for (int h = 0; h < m; h += R) {
        pf.left = pf_share((m - h + R - 1) / R);
        Kern::ukr_cvt(ksteps, kc, A + (i0 + h) * rs_a, rs_a, bpack, bpack + ksteps * KU * NR,
                      C + (i0 + h) * rs_c, rs_c, cs_c, std::min(R, m - h), static_cast<int>(nc),
                      alpha, beta, pf);
      }
    } else {
      for (int64_t j0 = 0; j0 < nc; j0 += NR) {
        const int n = static_cast<int>(std::min<int64_t>(NR, nc - j0));
        pf.left = pf_share((nc - j0 + NR - 1) / NR);
        run_ukr<Kern, RA>(pf, ksteps, ap, lda, bpack + j0 * ksteps * KU,
                          C + i0 * rs_c + j0 * cs_c, rs_c, cs_c, m, n, alpha, beta);
      }
    }
  }
}

template <class Kern, AMode MODE, typename TIn>
void driver_large_m(int64_t M, int64_t N, int64_t K, int64_t KC, typename Kern::TC alpha,
                    const TIn* A, int64_t rs_a, int64_t cs_a, const TIn* B, int64_t rs_b,
                    int64_t cs_b, typename Kern::TC beta, typename Kern::TC* C, int64_t rs_c,
                    int64_t cs_c, int nt) {
  using TP = typename Kern::TP;
  using TC = typename Kern::TC;
  constexpr int MR = Kern::MR, NR = Kern::NR, KU = Kern::KU;
  // Column blocks of at most Kern::NC, as many as a multiple of the thread count so every thread
  // gets the same width (N = 768 with NC 512 would otherwise split 512 : 256).
  const int64_t per_thread = (N + int64_t(nt) * Kern::NC - 1) / (int64_t(nt) * Kern::NC);
  const int64_t want_blocks = std::max<int64_t>(1, int64_t(nt) * per_thread);
  // In-kernel conversion (N <= 64) takes all columns in one block and splits the rows between
  // the threads: with a column block per thread each thread would read and convert all of A
  // (bf16 4096x1024x64 on two threads: 1.6 -> see NOTES.md).
  const int64_t NC =
      MODE == AMode::rows_convert
          ? (N + NR - 1) / NR * NR
          : std::min<int64_t>(Kern::NC, ((N + want_blocks - 1) / want_blocks + NR - 1) / NR * NR);
  const int64_t n_ir = (M + MR - 1) / MR;
  const int64_t n_jb = (N + NC - 1) / NC;
  // Whole column blocks per thread (no barriers, each thread packs its own B) only when that
  // splits the columns evenly: blocks are multiples of NR, so a narrow N can split 64 : 16
  // (N = 80) or 192 : 108 (N = 300), and the row split then runs the same shapes 1.1-1.2x
  // faster on two threads (NOTES.md GEMM item 16). libgomp's static schedule gives thread t a
  // contiguous run of q or q + 1 blocks, the first n_jb % nt threads the longer ones.
  auto widest_share = [&] {
    const int64_t q = n_jb / nt, r = n_jb % nt;
    const int64_t first = q + (r ? 1 : 0);  // blocks of thread 0, the widest run
    return std::min<int64_t>(N, first * NC);
  };
  const bool by_columns = n_jb >= nt && 20 * widest_share() * nt <= 21 * N;
  const int64_t nc_max = std::min<int64_t>(NC, (N + NR - 1) / NR * NR);
  const size_t abuf_size = size_t(MR) * std::max<int64_t>(a_rows_ld(KC), KC);
  // The shared B block (row-split mode) belongs to the calling thread; slot 2 keeps it apart
  // from the per-thread slots 0 and 1 used inside the region.
  TP* bshared = by_columns ? nullptr : thread_scratch<TP>(size_t(KC) * nc_max, 2);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    TP* abuf = thread_scratch<TP>(abuf_size, 0);
    if (by_columns) {
      TP* bpack = thread_scratch<TP>(size_t(KC) * nc_max, 1);
#pragma omp for schedule(static)
      for (int64_t jb = 0; jb < n_jb; ++jb) {
        const int64_t j0 = jb * NC, nc = std::min<int64_t>(NC, N - j0);
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min<int64_t>(KC, K - pc);
          const int64_t kpad = (kc + KU - 1) / KU * KU;
          for (int64_t jr = 0; jr < nc; jr += NR)
            pack_b_panel<Kern>(B + pc * rs_b + (j0 + jr) * cs_b, rs_b, cs_b, kc,
                               static_cast<int>(std::min<int64_t>(NR, nc - jr)), bpack + jr * kpad);
          macro_rows<Kern, MODE>(0, n_ir, M, nc, kc, A + pc * cs_a, rs_a, cs_a, bpack, abuf,
                                 alpha, pc == 0 ? beta : TC(1), C + j0 * cs_c, rs_c, cs_c);
        }
      }
    } else {
      for (int64_t jb = 0; jb < n_jb; ++jb) {
        const int64_t j0 = jb * NC, nc = std::min<int64_t>(NC, N - j0);
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min<int64_t>(KC, K - pc);
          const int64_t kpad = (kc + KU - 1) / KU * KU;
          const int64_t n_jr = (nc + NR - 1) / NR;
#pragma omp for schedule(static)
          for (int64_t p = 0; p < n_jr; ++p)
            pack_b_panel<Kern>(B + pc * rs_b + (j0 + p * NR) * cs_b, rs_b, cs_b, kc,
                               static_cast<int>(std::min<int64_t>(NR, nc - p * NR)),
                               bshared + p * NR * kpad);
          // Static split of the M panels: the same thread owns the same C rows for every pc.
          const int t = omp_get_thread_num(), T = omp_get_num_threads();
          macro_rows<Kern, MODE>(n_ir * t / T, n_ir * (t + 1) / T, M, nc, kc, A + pc * cs_a,
                                 rs_a, cs_a, bshared, abuf, alpha, pc == 0 ? beta : TC(1),
                                 C + j0 * cs_c, rs_c, cs_c);
#pragma omp barrier
        }
      }
    }
  }
}

template <class Kern, AMode MODE, typename TIn>
void driver_small_m(int64_t M, int64_t N, int64_t K, int64_t KC, typename Kern::TC alpha,
                    const TIn* A, int64_t rs_a, int64_t cs_a, const TIn* B, int64_t rs_b,
                    int64_t cs_b, typename Kern::TC beta, typename Kern::TC* C, int64_t rs_c,
                    int64_t cs_c, int nt) {
  using TP = typename Kern::TP;
  using TC = typename Kern::TC;
  constexpr int MR = Kern::MR, NR = Kern::NR, KU = Kern::KU;
  constexpr bool RA = MODE != AMode::packed;
  const int64_t n_ir = (M + MR - 1) / MR;
  const int64_t n_jr = (N + NR - 1) / NR;
  nt = static_cast<int>(std::min<int64_t>(nt, n_jr));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), T = omp_get_num_threads();
    const int64_t jr0 = n_jr * t / T, jr1 = n_jr * (t + 1) / T;
    TP* abuf = thread_scratch<TP>(size_t(n_ir) * MR * std::max<int64_t>(a_rows_ld(KC), KC), 0);
    // B is packed G adjacent panels at a time, 8 k rows of all G panels per step, so that each
    // row of B is read as G NR contiguous elements rather than NR-wide pieces of kc different
    // rows per panel (DRAM and the hardware prefetchers do better on the longer runs).
    const int64_t G = std::max<int64_t>(1, kSmallMBlockBytes / (int64_t(sizeof(TP)) * NR * KC));
    // A B of up to 512 KB stays in L2 from call to call: packed whole panels, no prefetch (the
    // 8-row steps cost 9% at 64x784x128 bf16, two threads).
    const bool big_b = K * N * int64_t(sizeof(TIn)) > (int64_t(1) << 19);
    TP* bblock = thread_scratch<TP>(size_t(G) * NR * KC, 1);
    for (int64_t pc = 0; pc < K && jr0 < jr1; pc += KC) {
      const int64_t kc = std::min<int64_t>(KC, K - pc);
      const int64_t ksteps = (kc + KU - 1) / KU;
      const int64_t kpad = ksteps * KU;
      const TC beta_pc = pc == 0 ? beta : TC(1);
      const TP* abase = abuf;
      int64_t lda = MR * ksteps * KU;  // distance between consecutive MR panels (packed)
      if constexpr (MODE == AMode::rows_in_place) {
        abase = reinterpret_cast<const TP*>(A + pc);
        lda = rs_a;
      } else if constexpr (MODE == AMode::rows_copy) {
        lda = a_rows_ld(kc);
        copy_a_rows<Kern>(A + pc, rs_a, static_cast<int>(M), kc, abuf, lda);
      } else {
        for (int64_t ir = 0; ir < n_ir; ++ir)
          pack_a_panel<Kern>(A + ir * MR * rs_a + pc * cs_a, rs_a, cs_a,
                             static_cast<int>(std::min<int64_t>(MR, M - ir * MR)), kc,
                             abuf + ir * MR * ksteps * KU);
      }
      for (int64_t jg = jr0; jg < jr1; jg += G) {
        const int64_t g = std::min<int64_t>(G, jr1 - jg);
        const int64_t kstep = cs_b == 1 && big_b ? 8 : kc;  // 8: a multiple of KU
        for (int64_t k0 = 0; k0 < kc; k0 += kstep)
          for (int64_t p = 0; p < g; ++p) {
            const int64_t j0 = (jg + p) * NR;
            const int n = static_cast<int>(std::min<int64_t>(NR, N - j0));
            pack_b_panel<Kern>(B + (pc + k0) * rs_b + j0 * cs_b, rs_b, cs_b,
                               std::min(kstep, kc - k0), n, bblock + p * NR * kpad + k0 * NR);
          }
        // The next group's rows are separate pages (no hardware prefetch across them): fetch
        // them over this group's kernel calls, so the misses overlap the FMAs. Towards L2, not
        // L1: kc rows of the group (87 KB per bf16 panel at 64x4096x4096) would evict the
        // kernel's own operands from the 32 KB L1 (bf16 there 18.6 -> 17.2 ms, one thread).
        const int64_t jn = jg + g, gn = std::min<int64_t>(G, jr1 - jn);
        const bool pf_next = cs_b == 1 && gn > 0 && big_b;
        const int64_t next_cols = pf_next ? std::min<int64_t>(gn * NR, N - jn * NR) : 0;
        PfStream pf(pf_next ? B + pc * rs_b + jn * NR : B, rs_b * int64_t(sizeof(TIn)),
                    next_cols * int64_t(sizeof(TIn)));
        const int64_t pf_total = pf_next ? kc * pf.lines : 0;
        const int64_t pf_chunk = (pf_total + g * n_ir - 1) / (g * n_ir);
        for (int64_t p = 0; p < g; ++p) {
          const int64_t j0 = (jg + p) * NR;
          const int n = static_cast<int>(std::min<int64_t>(NR, N - j0));
          for (int64_t ir = 0; ir < n_ir; ++ir) {
            const int64_t i0 = ir * MR;
            const int m = static_cast<int>(std::min<int64_t>(MR, M - i0));
            pf.left = std::min(pf_chunk, pf_total - (pf.row * pf.lines + pf.line));
            const TP* ap = RA ? abase + i0 * lda : abase + ir * lda;
            run_ukr<Kern, RA>(pf, ksteps, ap, lda, bblock + p * NR * kpad,
                              C + i0 * rs_c + j0 * cs_c, rs_c, cs_c, m, n, alpha, beta_pc);
          }
        }
      }
    }
  }
}

template <class Kern, class = void>
struct has_direct : std::false_type {};
template <class Kern>
struct has_direct<Kern, std::void_t<decltype(Kern::kDirect)>> : std::true_type {};

// K rows per chunk of the direct driver: the chunk's rows of A and B (M + N elements each) stay
// in L2 while every MR-row tile of C reads them. Fixed by the shape alone, so the summation
// order, and the result's bits, do not depend on the thread count.
inline int64_t direct_chunk(int64_t M, int64_t N, size_t elem) {
  const int64_t rows = int64_t(256 * 1024) / (int64_t(M + N) * int64_t(elem));
  return std::max<int64_t>(256, std::min<int64_t>(8192, rows));
}

// Long K, small C (M <= kSmallM, N <= 64, see kDirectMaxN): Gram matrices X^T X, A^T B with
// few columns. The packed drivers would copy all of A and B into panels for a few FMAs per
// element (a 20 x 20 Gram of 100000 rows: one pass to pack, one to compute); here the kernel
// reads A (row-major, or transposed: k rows of m contiguous elements) and B's rows where they
// are, one K chunk per task. Chunks go in rounds of kDirectRound: the threads compute a round's
// partial products, then add them, element by element, to the running sum in chunk order. So
// the scratch stays (kDirectRound + 1) x M x N whatever K is, and the bits match one thread's.
constexpr int64_t kDirectRound = 16;

template <class Kern, typename T>
void driver_direct(int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t rs_a,
                   int64_t cs_a, const T* B, int64_t rs_b, T beta, T* C, int64_t rs_c,
                   int64_t cs_c, int nt) {
  constexpr int MR = Kern::MR, NR = Kern::NR;
  const int64_t a_rs = cs_a == 1 ? rs_a : 1, a_ks = cs_a == 1 ? 1 : cs_a;
  const int64_t n_ir = (M + MR - 1) / MR;
  const int64_t chunk = direct_chunk(M, N, sizeof(T));
  const int64_t nch = (K + chunk - 1) / chunk;
  auto tiles = [&](int64_t k0, int64_t kc, T* c, int64_t rsc, int64_t csc, T al, T be) {
    for (int64_t j0 = 0; j0 < N; j0 += NR)
      for (int64_t ir = 0; ir < n_ir; ++ir) {
        const int64_t i0 = ir * MR;
        Kern::ukr_direct(kc, A + i0 * a_rs + k0 * a_ks, a_rs, a_ks, B + k0 * rs_b + j0, rs_b,
                         c + i0 * rsc + j0 * csc, rsc, csc,
                         static_cast<int>(std::min<int64_t>(MR, M - i0)),
                         static_cast<int>(std::min<int64_t>(NR, N - j0)), al, be);
      }
  };
  if (nch == 1) return tiles(0, K, C, rs_c, cs_c, alpha, beta);
  const int64_t MN = M * N;
  // A round's partial products, then the running sum; the calling thread's GEMM slot 2.
  T* part = thread_scratch<T>(size_t(kDirectRound + 1) * MN, 2);
  T* acc = part + kDirectRound * MN;
#pragma omp parallel num_threads(static_cast<int>(std::min<int64_t>(nt, nch))) if (nt > 1)
  for (int64_t r0 = 0; r0 < nch; r0 += kDirectRound) {
    const int64_t g = std::min(kDirectRound, nch - r0);
#pragma omp for schedule(static)
    for (int64_t ch = 0; ch < g; ++ch) {
      const int64_t k0 = (r0 + ch) * chunk;
      tiles(k0, std::min(chunk, K - k0), part + ch * MN, N, 1, T(1), T(0));
    }
#pragma omp for schedule(static)
    for (int64_t e = 0; e < MN; ++e) {
      T sum = r0 == 0 ? part[e] : acc[e] + part[e];
      for (int64_t ch = 1; ch < g; ++ch) sum += part[ch * MN + e];
      acc[e] = sum;
    }
  }
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      T& dst = C[i * rs_c + j * cs_c];
      dst = beta == T(0) ? alpha * acc[i * N + j] : alpha * acc[i * N + j] + beta * dst;
    }
}

template <class Kern, typename TIn>
void gemm_driver(int64_t M, int64_t N, int64_t K, typename Kern::TC alpha, const TIn* A,
                 int64_t rs_a, int64_t cs_a, const TIn* B, int64_t rs_b, int64_t cs_b,
                 typename Kern::TC beta, typename Kern::TC* C, int64_t rs_c, int64_t cs_c,
                 int nthreads) {
  using TC = typename Kern::TC;
  constexpr int KU = Kern::KU;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == TC(0)) {
    scale_c(M, N, beta, C, rs_c, cs_c);
    return;
  }
  if constexpr (std::is_same<TIn, TC>::value && std::is_same<typename Kern::TP, TC>::value) {
    // One output column or row: a matrix-vector product, read once (gemv.h).
    if (N == 1)
      return gemv_detail::gemv(M, K, alpha, A, rs_a, cs_a, B, rs_b, beta, C, rs_c, nthreads);
    if (M == 1)
      return gemv_detail::gemv(N, K, alpha, B, cs_b, rs_b, A, cs_a, beta, C, cs_c, nthreads);
  }
  const int64_t n_slices = (K + Kern::KC - 1) / Kern::KC;
  const int64_t KC = ((K + n_slices - 1) / n_slices + KU - 1) / KU * KU;
  // Parallel regions cost a few microseconds: give each thread at least ~2 MFLOP (~20 us).
  // 128^3 (4.2 MFLOP) on two threads: 49 -> 33 us; 4 MFLOP per thread kept it on one.
  const double flops = 2.0 * double(M) * double(N) * double(K);
  int nt = omp_in_parallel() ? 1 : std::max(1, nthreads);
  nt = static_cast<int>(std::min<double>(nt, std::max(1.0, flops / 2e6)));
  const bool small_m = M <= Kern::kSmallM;
  if constexpr (has_direct<Kern>::value && std::is_same<TIn, TC>::value) {
    // Long K, small C, operands whose k rows are contiguous runs (driver_direct).
    const bool a_ok = cs_a == 1 || rs_a == 1, b_ok = cs_b == 1;
    if (small_m && N <= std::min<int64_t>(kDirectMaxN, 3 * Kern::NR) && K >= kDirectMinK &&
        a_ok && b_ok)
      return driver_direct<Kern>(M, N, K, alpha, A, rs_a, cs_a, B, rs_b, beta, C, rs_c, cs_c, nt);
  }
  const bool row_major_a = Kern::kRowA && cs_a == 1;
  const bool same_type = std::is_same<TIn, typename Kern::TP>::value;
  const bool in_place = row_major_a && same_type && K % KU == 0 &&
                        (small_m ? !rows_alias(rs_a, sizeof(TIn)) : N <= Kern::kInPlaceMaxN);
#define BM_GEMM_RUN(DRIVER)                                                                        \
  do {                                                                                             \
    if constexpr (Kern::kRowA) {                                                                   \
      if constexpr (std::is_same<TIn, typename Kern::TP>::value)                                   \
        if (in_place)                                                                              \
          return DRIVER<Kern, AMode::rows_in_place>(M, N, K, KC, alpha, A, rs_a, cs_a, B, rs_b,    \
                                                    cs_b, beta, C, rs_c, cs_c, nt);                \
      if constexpr (has_convert_in_kernel<Kern>::value && std::is_same<TIn, float>::value)        \
        if (row_major_a && !small_m && N <= Kern::kConvertInKernelMaxN)                           \
          return driver_large_m<Kern, AMode::rows_convert>(M, N, K, KC, alpha, A, rs_a, cs_a, B,  \
                                                           rs_b, cs_b, beta, C, rs_c, cs_c, nt);  \
      if (row_major_a)                                                                             \
        return DRIVER<Kern, AMode::rows_copy>(M, N, K, KC, alpha, A, rs_a, cs_a, B, rs_b, cs_b,    \
                                              beta, C, rs_c, cs_c, nt);                            \
    }                                                                                              \
    return DRIVER<Kern, AMode::packed>(M, N, K, KC, alpha, A, rs_a, cs_a, B, rs_b, cs_b, beta, C,  \
                                       rs_c, cs_c, nt);                                            \
  } while (0)
  if (small_m) BM_GEMM_RUN(driver_small_m);
  BM_GEMM_RUN(driver_large_m);
#undef BM_GEMM_RUN
}

// Tile helpers shared by the per-ISA micro-kernels.

// Calls f(std::integral_constant<int, R>{}) for the shortest of MR, 2MR/3 and MR/3 rows that
// covers m: edge panels with few rows run a shorter tile, no FMAs on padding rows (M = 64 with
// 12-row panels is 5 x 12 + 4).
template <int MR, class F>
inline void with_rows(int m, F&& f) {
  constexpr int R2 = (2 * MR) / 3, R3 = MR / 3;
  if (m > R2) f(std::integral_constant<int, MR>{});
  else if (m > R3) f(std::integral_constant<int, R2>{});
  else f(std::integral_constant<int, R3>{});
}

// Calls f(std::integral_constant<int, V>{}) for the fewest vectors of W lanes, at most NV, that
// cover n columns: a narrow last panel (N = 80 with 64-wide panels is 64 + 16) runs only the
// vectors it needs, no FMAs on the zero padding of the packed B panel.
template <int NV, int W, class F>
inline void with_vecs(int n, F&& f) {
  if constexpr (NV == 1) {
    f(std::integral_constant<int, 1>{});
  } else {
    if (n > (NV - 1) * W) f(std::integral_constant<int, NV>{});
    else with_vecs<NV - 1, W>(n, f);
  }
}

// Row pointers of a row-major A panel (as P*), rows >= m clamped to the last valid one so that
// nothing outside A is read.
template <int R, typename P, typename T>
inline void clamped_rows(const P* (&ar)[R], const T* a, int64_t lda, int m) {
#pragma GCC unroll 12
  for (int i = 0; i < R; ++i) ar[i] = reinterpret_cast<const P*>(a + (i < m ? i : m - 1) * lda);
}

// The micro-kernel of driver_direct, written once for every ISA. Element (i, k) of A at
// a[i*a_rs + k*a_ks] (one of the two strides is 1: row-major A, or a transposed one read k row
// by k row), row k of B at b + k*ldb with its n valid columns (the last vector's lanes past n
// neither read nor counted). Rows >= m of A are clamped to the last valid one. An MR x NV-vector
// tile as the packed kernels use, the same edge tiles. Ops: the translation unit's vector
// operations on T -- V, W (lanes), zero(), bcast(const T*), fma(a, b, c), loadu(const T*),
// loadn(const T*, valid lanes) and tile_store<R, NV>(acc, c, rs_c, cs_c, m, n, alpha, beta)
// (named apart from the vector store(T*, V) it would otherwise hide in a derived ops struct).
template <class Ops, typename T, int MR, int NV>
struct DirectTile {
  static void run(int64_t ks, const T* a, int64_t a_rs, int64_t a_ks, const T* b, int64_t ldb,
                  T* c, int64_t rs_c, int64_t cs_c, int m, int n, T alpha, T beta) {
    with_rows<MR>(m, [&](auto r) {
      with_vecs<NV, Ops::W>(n, [&](auto v) {
        rows<decltype(r)::value, decltype(v)::value>(ks, a, a_rs, a_ks, b, ldb, c, rs_c, cs_c, m,
                                                     n, alpha, beta);
      });
    });
  }
  // Not inlined: inlined into the driver's loops, some instantiations had their accumulators
  // spilled and stored on every k step (20000x33 fp32 ran at half speed).
  template <int R, int NVE>
  __attribute__((noinline)) static void rows(int64_t ks, const T* a, int64_t a_rs, int64_t a_ks,
                                             const T* b, int64_t ldb, T* c, int64_t rs_c,
                                             int64_t cs_c, int m, int n, T alpha, T beta) {
    constexpr int W = Ops::W;
    typename Ops::V acc[R][NVE];
#pragma GCC unroll 12
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NVE; ++v) acc[i][v] = Ops::zero();
    const T* ar[R];
    clamped_rows(ar, a, a_rs, m);
    const int last = n - W * (NVE - 1);  // valid lanes of the last vector, 1..W
    int64_t ka = 0;
    for (int64_t k = 0; k < ks; ++k, ka += a_ks, b += ldb) {
      typename Ops::V bv[NVE];
#pragma GCC unroll 4
      for (int v = 0; v + 1 < NVE; ++v) bv[v] = Ops::loadu(b + W * v);
      bv[NVE - 1] = Ops::loadn(b + W * (NVE - 1), last);
#pragma GCC unroll 12
      for (int i = 0; i < R; ++i) {
        const typename Ops::V ai = Ops::bcast(ar[i] + ka);
#pragma GCC unroll 4
        for (int v = 0; v < NVE; ++v) acc[i][v] = Ops::fma(ai, bv[v], acc[i][v]);
      }
    }
    Ops::template tile_store<R, NVE>(acc, c, rs_c, cs_c, m, n, alpha, beta);
  }
};

// Stores an MR x NR accumulator tile held in a plain array (edge tiles and strided C).
template <typename TC>
inline void store_tile_generic(const TC* tile, int ld, TC* c, int64_t rs_c, int64_t cs_c, int m,
                               int n, TC alpha, TC beta) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      TC& dst = c[i * rs_c + j * cs_c];
      dst = beta == TC(0) ? alpha * tile[i * ld + j] : alpha * tile[i * ld + j] + beta * dst;
    }
}

}  // namespace
}  // namespace gemm_detail
}  // namespace bm
