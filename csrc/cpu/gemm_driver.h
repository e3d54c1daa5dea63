// The Goto/BLIS loop nest around a register-blocked micro-kernel; included by each per-ISA
// translation unit (gemm.cpp, gemm_avx2.cpp, gemm_avx512.cpp) with that ISA's micro-kernel.
//
// Roles. The micro-kernel computes an MR x NR tile of C, vectorised along N (NR = a few SIMD
// registers) and broadcasting MR elements of A per k. So the B micro-panel (KC x NR) is the one
// streamed from L2 and the A micro-panel (MR x KC) is the one that sits in L1 while the kernel
// sweeps the B block:
//   for jb over N in NC columns          (B block KC x NC packed once per (jb, pc): lives in L2)
//     for pc over K in KC                (C tile gets beta on the first pc, +1 afterwards)
//       pack B block
//       for ir over M in MR rows         (A micro-panel packed into a per-thread L1 buffer)
//         for jr over the block in NR    -> micro-kernel
// A is packed one micro-panel at a time into L1, never as a whole block, so skinny shapes
// (N small, M and K large: the layer shapes) never pay for writing a packed copy of A to memory.
// Packing pads with zeros to full MR / NR / KU, so the micro-kernel always runs a full tile and
// masks only its stores.
//
// Threads: with at least as many NC blocks as threads, each thread owns whole column blocks and
// packs its own B (no barriers at all). Otherwise (N small) the threads pack one shared B block
// together and split the MR panels of M.
//
// Kernel requirements (struct K):
//   TP packed element type, TC accumulator/output type, MR, NR, KU (k per packed step: 1, or 2
//   for bf16 pairs), KC (multiple of KU), NC (multiple of NR), kSmallM (M at or below which the
//   small-M order is used), and either (kDirect = false)
//     static void ukr(int64_t ksteps, const TP* a, const TP* b, TC* c, int64_t rs_c,
//                     int64_t cs_c, int m, int n, TC alpha, TC beta)   // beta == 0: overwrite C
//   or (kDirect = true, TIn == TP, plus kDirectAMaxN) a template<bool DA, bool DB> ukr that also
//   takes lda after a and ldb after b (see call_ukr).
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <cstdlib>

#include "common/scratch.h"
#include "cpu/gemm.h"

namespace bm {
namespace gemm_detail {

template <typename TP, typename TIn>
inline TP convert(TIn x) { return static_cast<TP>(x); }
template <>
inline uint16_t convert<uint16_t, float>(float x) { return float_to_bf16(x); }

// A micro-panel: dst[(k / KU) * MR * KU + i * KU + k % KU] = A[i, k]; zero-padded to MR x kpad.
template <class Kern, typename TIn>
inline void pack_a_panel(const TIn* A, int64_t rs_a, int64_t cs_a, int m, int64_t kc,
                         typename Kern::TP* dst) {
  using TP = typename Kern::TP;
  constexpr int MR = Kern::MR, KU = Kern::KU;
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

// B micro-panel: dst[(k / KU) * NR * KU + j * KU + k % KU] = B[k, j]; zero-padded to kpad x NR.
template <class Kern, typename TIn>
inline void pack_b_panel(const TIn* B, int64_t rs_b, int64_t cs_b, int64_t kc, int n,
                         typename Kern::TP* dst) {
  using TP = typename Kern::TP;
  constexpr int NR = Kern::NR, KU = Kern::KU;
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

// Row-major copy of m rows x kc of a row-major A (unit column stride) into dst with leading
// dimension ld_dst. The kernel's row-major A mode reads it in place; ld_dst = kc + 16 keeps the
// rows out of each other's L1 sets (A's own row stride is often a multiple of 4 KiB).
template <typename T>
inline void copy_a_rows(const T* A, int64_t rs_a, int m, int64_t kc, T* dst, int64_t ld_dst) {
  for (int i = 0; i < m; ++i) std::memcpy(dst + i * ld_dst, A + i * rs_a, sizeof(T) * kc);
}

inline int64_t a_rows_ld(int64_t kc) { return (kc + 15) / 16 * 16 + 16; }

template <typename TC>
void scale_c(int64_t M, int64_t N, TC beta, TC* C, int64_t rs_c, int64_t cs_c) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      TC& c = C[i * rs_c + j * cs_c];
      c = beta == TC(0) ? TC(0) : beta * c;
    }
}

// Operand access for the micro-kernel. Packed: A micro-panel at a[k*MR + i], B micro-panel at
// b[k*NR + j] (zero-padded, aligned). Direct (Kern::kDirect only, unit inner stride): A rows at
// a[i*lda + k] and B rows at b[k*ldb + j] straight from the caller's arrays; the kernel clamps
// rows >= m and masks columns >= n so it never reads outside them.
template <class Kern, bool DA, bool DB>
inline void call_ukr(int64_t ksteps, const typename Kern::TP* a, int64_t lda,
                     const typename Kern::TP* b, int64_t ldb, typename Kern::TC* c, int64_t rs_c,
                     int64_t cs_c, int m, int n, typename Kern::TC alpha, typename Kern::TC beta) {
  if constexpr (Kern::kDirect)
    Kern::template ukr<DA, DB>(ksteps, a, lda, b, ldb, c, rs_c, cs_c, m, n, alpha, beta);
  else
    Kern::ukr(ksteps, a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

// Large-M order: for each MR panel of M (A micro-panel packed into L1, or read directly), sweep
// the packed B block (L2). Panels [ir0, ir1) of a KC-deep slice, nc columns.
template <class Kern, bool DA, typename TIn>
inline void macro_rows(int64_t ir0, int64_t ir1, int64_t M, int64_t nc, int64_t kc,
                       const TIn* A, int64_t rs_a, int64_t cs_a, const typename Kern::TP* bpack,
                       typename Kern::TP* apack, typename Kern::TC alpha, typename Kern::TC beta,
                       typename Kern::TC* C, int64_t rs_c, int64_t cs_c, bool in_place) {
  constexpr int MR = Kern::MR, NR = Kern::NR, KU = Kern::KU;
  const int64_t ksteps = (kc + KU - 1) / KU;
  for (int64_t ir = ir0; ir < ir1; ++ir) {
    const int64_t i0 = ir * MR;
    const int m = static_cast<int>(std::min<int64_t>(MR, M - i0));
    const typename Kern::TP* ap;
    int64_t lda = MR;
    if constexpr (DA && Kern::kDirect) {
      if (in_place) {  // few B panels: reading A where it is overlaps its misses with the FMAs
        lda = rs_a;
        ap = A + i0 * rs_a;
      } else {
        lda = a_rows_ld(kc);
        copy_a_rows(A + i0 * rs_a, rs_a, m, kc, apack, lda);
        ap = apack;
      }
    } else {
      pack_a_panel<Kern>(A + i0 * rs_a, rs_a, cs_a, m, kc, apack);
      ap = apack;
    }
    for (int64_t j0 = 0; j0 < nc; j0 += NR) {
      const int n = static_cast<int>(std::min<int64_t>(NR, nc - j0));
      call_ukr<Kern, DA, false>(ksteps, ap, lda, bpack + j0 * ksteps * KU, NR,
                                C + i0 * rs_c + j0 * cs_c, rs_c, cs_c, m, n, alpha, beta);
    }
  }
}

// Rows whose stride is a multiple of 4 KiB map to the same L1 set: 12 of them read together in
// place thrash the 8-way L1, so such A operands are packed instead.
inline bool rows_alias(int64_t row_stride, size_t elem_bytes) {
  const int64_t bytes = (row_stride < 0 ? -row_stride : row_stride) * int64_t(elem_bytes);
  return bytes % 4096 == 0;
}

template <class Kern, typename TIn>
void gemm_driver(int64_t M, int64_t N, int64_t K, typename Kern::TC alpha, const TIn* A,
                 int64_t rs_a, int64_t cs_a, const TIn* B, int64_t rs_b, int64_t cs_b,
                 typename Kern::TC beta, typename Kern::TC* C, int64_t rs_c, int64_t cs_c,
                 int nthreads) {
  using TP = typename Kern::TP;
  using TC = typename Kern::TC;
  constexpr int MR = Kern::MR, NR = Kern::NR, KU = Kern::KU;
  static const int64_t KC0 = getenv("BM_KC") ? atoi(getenv("BM_KC")) : Kern::KC;
  static const int64_t NC = getenv("BM_NC") ? atoi(getenv("BM_NC")) : Kern::NC;
  static const int64_t DAN = getenv("BM_DAN") ? atoi(getenv("BM_DAN")) : Kern::kDirectAMaxN;
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == TC(0)) {
    scale_c(M, N, beta, C, rs_c, cs_c);
    return;
  }
  // Split K into equal slices: a short last slice (2048 = 5 x 384 + 128) cost 15% measured.
  const int64_t n_slices = (K + KC0 - 1) / KC0;
  const int64_t KC = ((K + n_slices - 1) / n_slices + KU - 1) / KU * KU;
  // Parallel regions cost microseconds: give each thread at least ~4 MFLOP.
  const double flops = 2.0 * double(M) * double(N) * double(K);
  int nt = omp_in_parallel() ? 1 : std::max(1, nthreads);
  nt = static_cast<int>(std::min<double>(nt, std::max(1.0, flops / 4e6)));
  const int64_t n_ir = (M + MR - 1) / MR;
  const int64_t kc_max = std::min<int64_t>(KC, (K + KU - 1) / KU * KU);

  if (M <= Kern::kSmallM) {
    // Small M (a batch of rows times a big weight): B is streamed once, panel by panel, and each
    // B panel is used by every A panel while it is still in L1/L2. A (M x KC) is packed once per
    // slice (or read directly). Threads split the NR panels of N.
    // Direct B rows would be KC separate cache lines per panel, all in the same L1 set when the
    // row stride is a multiple of 4 KiB: B panels are always packed (measured 2-3x faster).
    const bool direct_a = Kern::kDirect && cs_a == 1;
    const bool a_in_place = direct_a && !rows_alias(rs_a, sizeof(TIn));
    const bool direct_b = false;
    const int64_t n_jr = (N + NR - 1) / NR;
    nt = static_cast<int>(std::min<int64_t>(nt, n_jr));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
      const int64_t jr0 = n_jr * t / T, jr1 = n_jr * (t + 1) / T;
      TP* apack = thread_scratch<TP>(size_t(n_ir) * MR * a_rows_ld(kc_max), 0);
      TP* bpanel = direct_b ? nullptr : thread_scratch<TP>(size_t(NR) * kc_max, 1);
      for (int64_t pc = 0; pc < K && jr0 < jr1; pc += KC) {
        const int64_t kc = std::min<int64_t>(KC, K - pc);
        const int64_t ksteps = (kc + KU - 1) / KU;
        const TC beta_pc = pc == 0 ? beta : TC(1);
        const int64_t lda_rows = a_in_place ? rs_a : a_rows_ld(kc);
        const TP* abase = a_in_place ? reinterpret_cast<const TP*>(A + pc) : apack;
        if (direct_a) {
          if constexpr (Kern::kDirect)
            if (!a_in_place)
              copy_a_rows(reinterpret_cast<const TP*>(A + pc), rs_a, static_cast<int>(M), kc,
                          apack, lda_rows);
        } else {
          for (int64_t ir = 0; ir < n_ir; ++ir)
            pack_a_panel<Kern>(A + ir * MR * rs_a + pc * cs_a, rs_a, cs_a,
                               static_cast<int>(std::min<int64_t>(MR, M - ir * MR)), kc,
                               apack + ir * MR * ksteps * KU);
        }
        for (int64_t jr = jr0; jr < jr1; ++jr) {
          const int64_t j0 = jr * NR;
          const int n = static_cast<int>(std::min<int64_t>(NR, N - j0));
          if (!direct_b) pack_b_panel<Kern>(B + pc * rs_b + j0 * cs_b, rs_b, cs_b, kc, n, bpanel);
          const TP* bp = direct_b ? reinterpret_cast<const TP*>(B + pc * rs_b + j0) : bpanel;
          const int64_t ldb = direct_b ? rs_b : NR;
          for (int64_t ir = 0; ir < n_ir; ++ir) {
            const int64_t i0 = ir * MR;
            const int m = static_cast<int>(std::min<int64_t>(MR, M - i0));
            TC* c = C + i0 * rs_c + j0 * cs_c;
            if (direct_a) {
              const TP* ap = abase + i0 * lda_rows;
              if (direct_b)
                call_ukr<Kern, true, true>(ksteps, ap, lda_rows, bp, ldb, c, rs_c, cs_c, m, n, alpha, beta_pc);
              else
                call_ukr<Kern, true, false>(ksteps, ap, lda_rows, bp, ldb, c, rs_c, cs_c, m, n, alpha, beta_pc);
            } else {
              const TP* ap = apack + ir * MR * ksteps * KU;
              if (direct_b)
                call_ukr<Kern, false, true>(ksteps, ap, MR, bp, ldb, c, rs_c, cs_c, m, n, alpha, beta_pc);
              else
                call_ukr<Kern, false, false>(ksteps, ap, MR, bp, ldb, c, rs_c, cs_c, m, n, alpha, beta_pc);
            }
          }
        }
      }
    }
    return;
  }

  // Large M. A is read directly (row-major A and few B panels to amortise a packed copy over)
  // or packed one micro-panel at a time into L1.
  const bool direct_a = Kern::kDirect && cs_a == 1;
  const bool in_place = N <= DAN;
  const int64_t n_jb = (N + NC - 1) / NC;
  const bool by_columns = n_jb >= nt;
  const int64_t nc_max = std::min<int64_t>(NC, (N + NR - 1) / NR * NR);
  // The shared B block (row-split mode) belongs to the calling thread; slot 2 keeps it apart
  // from the per-thread slots 0 and 1 used inside the region.
  TP* bshared = by_columns ? nullptr : thread_scratch<TP>(size_t(kc_max) * nc_max, 2);
  auto rows = [&](int64_t ir0, int64_t ir1, int64_t nc, int64_t kc, int64_t pc, const TP* bpack,
                  TP* apack, TC beta_pc, TC* Cb) {
    if (direct_a)
      macro_rows<Kern, true>(ir0, ir1, M, nc, kc, A + pc * cs_a, rs_a, cs_a, bpack, apack, alpha,
                             beta_pc, Cb, rs_c, cs_c, in_place);
    else
      macro_rows<Kern, false>(ir0, ir1, M, nc, kc, A + pc * cs_a, rs_a, cs_a, bpack, apack,
                              alpha, beta_pc, Cb, rs_c, cs_c, false);
  };

#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    TP* apack = thread_scratch<TP>(size_t(MR) * a_rows_ld(kc_max), 0);
    if (by_columns) {
      TP* bpack = thread_scratch<TP>(size_t(kc_max) * nc_max, 1);
#pragma omp for schedule(static)
      for (int64_t jb = 0; jb < n_jb; ++jb) {
        const int64_t j0 = jb * NC, nc = std::min<int64_t>(NC, N - j0);
        for (int64_t pc = 0; pc < K; pc += KC) {
          const int64_t kc = std::min<int64_t>(KC, K - pc);
          const int64_t kpad = (kc + KU - 1) / KU * KU;
          for (int64_t jr = 0; jr < nc; jr += NR)
            pack_b_panel<Kern>(B + pc * rs_b + (j0 + jr) * cs_b, rs_b, cs_b, kc,
                               static_cast<int>(std::min<int64_t>(NR, nc - jr)), bpack + jr * kpad);
          rows(0, n_ir, nc, kc, pc, bpack, apack, pc == 0 ? beta : TC(1), C + j0 * cs_c);
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
          rows(n_ir * t / T, n_ir * (t + 1) / T, nc, kc, pc, bshared, apack,
               pc == 0 ? beta : TC(1), C + j0 * cs_c);
#pragma omp barrier
        }
      }
    }
  }
}

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

}  // namespace gemm_detail
}  // namespace bm
