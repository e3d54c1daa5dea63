// Fused attention on the GPU, FlashAttention-2 style (Dao 2023, alg. 1 and 2), fp32 SIMT
// (float64: the same kernels in double). Layouts and mask semantics: cuda/attention.h.
//
// Every kernel has 128 threads seen as 16 (ty) x 8 (tx). A CTA owns a block of 16*RM "rows"
// (query rows in forward and dQ, key rows in dK/dV); thread (ty, tx) owns rows ty*RM .. +RM-1:
//   - of a score tile (rows x BK columns), columns tx + 8j: a row's 8 owners are 8 adjacent
//     lanes, so row max / row sum are 3 xor-shuffles;
//   - of an output accumulator (rows x DC head-dim columns, in registers), columns
//     tx*4 + 32j .. +3: each shared-memory read of the right operand is one conflict-free float4.
// Both tile products read shared memory in float4s along their reduction axis (mma_abt: head dim,
// mma_ab: keys/queries); rows are padded by 4 elements so that the 8 rows read at once by a warp
// fall in different banks.
//
// Forward (attention_forward_kernel), per CTA = (b, h, block of BQ query rows, DC-wide slice of
// Dv): Q tile resident in shared memory; for each key tile (stopping at the diagonal when causal):
//   S = Q K^T (K tile in shared), scale + mask, online softmax in registers (running max m and
//   sum l per row, the O accumulator rescaled by exp(m_old - m_new)), P to shared memory,
//   V tile into the same buffer as K, O += P V.
// out = O / l, lse = m + log l (-inf and zeros for rows with every key hidden).
// Backward, deterministic (no atomics), P recomputed from lse:
//   attention_backward_dot_kernel   dd_i = rowsum(dO_i * O_i), a warp per row;
//   attention_backward_dq_kernel    per query block: over key tiles S = Q K^T, dP = dO V^T,
//                                   dS = P * (dP - dd), dQ += scale dS K (registers);
//   attention_backward_dkdv_kernel  per key block: over query tiles (from the diagonal when
//                                   causal) S^T = K Q^T, dP^T = V dO^T, dV += P^T dO,
//                                   dK += scale dS^T Q (registers).
// Head dims: DC (chunk width, template) is the smallest of 32 / 64 / 128 (double: 32 / 64)
// holding max(D, Dv). Larger D is walked in DC-wide chunks (Q is then reloaded per key tile) and
// larger Dv / D outputs are split over gridDim.y slices, each recomputing the scores: the
// generic, slower path.
// Tiles are fixed by the 48 KiB of static shared memory (the emulator needs static sizes).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <vector>

#include "cuda/attention.h"
#include "cuda/cuda_check.cuh"
#include "cuda/kernel_util.cuh"

namespace bm::cuda {
namespace fa {

using kutil::fexp;
using kutil::flog;
using kutil::group_max;
using kutil::group_sum;
using kutil::imin;
using kutil::ld4;
using kutil::neg_inf;
using kutil::st4;

constexpr int kThreads = 128;

template <class T>
struct AttnParams {
  const T *q, *k, *v;
  long long qs0, qs1, qs2, ks0, ks1, ks2, vs0, vs1, vs2;
  int H, Sq, Sk, D, Dv;
  int nblk;        // row blocks per head (query blocks, or key blocks in dK/dV)
  long long rows;  // B*H*Sq (attention_backward_dot_kernel)
  int mask_kind;   // 0 none, 1 boolean, 2 additive
  const unsigned char* mask_b;
  const T* mask_a;
  long long ms0, ms1, ms2, ms3;
  bool causal;
  T scale;
  bool vec_q, vec_k, vec_v, vec_do, vec_o;  // 16-byte loads / stores of 4-element chunks
  T* out;
  T* lse;
  const T* dout;
  T* dd;
  T *dq, *dk, *dv;
};

// scale * s (+ additive mask) for query i and key j, or -inf where the key is hidden (causal,
// boolean mask) or (i, j) is outside the problem.
template <class T>
__device__ __forceinline__ T masked_score(const AttnParams<T>& p, long long mbase, int i, int j,
                                          T s) {
  if (i >= p.Sq || j >= p.Sk || (p.causal && j > i)) return neg_inf<T>();
  T x = s * p.scale;
  if (p.mask_kind == 1) {
    if (!p.mask_b[mbase + i * p.ms2 + j * p.ms3]) return neg_inf<T>();
  } else if (p.mask_kind == 2) {
    x += p.mask_a[mbase + i * p.ms2 + j * p.ms3];
  }
  return x;
}

// Rows [0, ROWS) x columns [0, DC) of a row-major source g (row stride rs, unit column stride)
// into sm (row stride LD), zeros where row >= nrows or column >= ncols (so that padded rows and
// head-dim columns add nothing, and never NaN, to the tile products). Consecutive threads take
// consecutive 4-element chunks of a row: coalesced, and one 16-byte load where `vec`.
template <class T, int ROWS, int DC, int LD>
__device__ __forceinline__ void load_tile(T* sm, const T* g, long long rs, int nrows, int ncols,
                                          bool vec) {
  constexpr int C4 = DC / 4, CHUNKS = ROWS * C4;
  for (int idx = threadIdx.x; idx < CHUNKS; idx += kThreads) {
    const int r = idx / C4, c = (idx % C4) * 4;
    T v[4] = {T(0), T(0), T(0), T(0)};
    if (r < nrows && c < ncols) {
      const T* src = g + r * rs + c;
      if (vec && c + 4 <= ncols) {
        ld4(src, v);
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e)
          if (c + e < ncols) v[e] = src[e];
      }
    }
    st4(sm + r * LD + c, v);
  }
}

// acc[i][j] += sum_{d < DC} A[(ty*RM + i)*LDA + d] * B[(tx + 8j)*LDB + d]   (A B^T on a tile)
template <class T, int RM, int CN, int DC, int LDA, int LDB>
__device__ __forceinline__ void mma_abt(T (&acc)[RM][CN], const T* A, const T* B, int ty, int tx) {
#pragma unroll 2
  for (int d = 0; d < DC; d += 4) {
    T a[RM][4], b[CN][4];
#pragma unroll
    for (int i = 0; i < RM; ++i) ld4(A + (ty * RM + i) * LDA + d, a[i]);
#pragma unroll
    for (int j = 0; j < CN; ++j) ld4(B + (tx + 8 * j) * LDB + d, b[j]);
#pragma unroll
    for (int e = 0; e < 4; ++e)
#pragma unroll
      for (int i = 0; i < RM; ++i)
#pragma unroll
        for (int j = 0; j < CN; ++j) acc[i][j] = fma(a[i][e], b[j][e], acc[i][j]);
  }
}

// acc[i][4j + e] += sum_{k < NK} P[(ty*RM + i)*LDP + k] * B[k*LDB + tx*4 + 32j + e]   (P B)
template <class T, int RM, int DC, int NK, int LDP, int LDB>
__device__ __forceinline__ void mma_ab(T (&acc)[RM][DC / 8], const T* P, const T* B, int ty,
                                       int tx) {
#pragma unroll 2
  for (int k = 0; k < NK; k += 4) {
    T pk[RM][4];
#pragma unroll
    for (int i = 0; i < RM; ++i) ld4(P + (ty * RM + i) * LDP + k, pk[i]);
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
#pragma unroll
      for (int j = 0; j < DC / 32; ++j) {
        T b[4];
        ld4(B + (k + kk) * LDB + tx * 4 + 32 * j, b);
#pragma unroll
        for (int i = 0; i < RM; ++i)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][4 * j + e] = fma(pk[i][kk], b[e], acc[i][4 * j + e]);
      }
    }
  }
}

// Writes alpha * acc for one row (columns tx*4 + 32j + e < n) at dst.
template <class T, int DC>
__device__ __forceinline__ void store_row(T* dst, const T (&acc)[DC / 8], T alpha, int n, int tx,
                                          bool vec) {
#pragma unroll
  for (int j = 0; j < DC / 32; ++j) {
    const int c = tx * 4 + 32 * j;
    T v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = alpha * acc[4 * j + e];
    if (vec && c + 4 <= n) {
      st4(dst + c, v);
    } else {
#pragma unroll
      for (int e = 0; e < 4; ++e)
        if (c + e < n) dst[c + e] = v[e];
    }
  }
}

// ---- forward -----------------------------------------------------------------------------------

// grid.x = nblk * B * H (query block fastest), grid.y = Dv slices of DC columns.
template <class T, int DC, int RM, int BK>
__global__ void __launch_bounds__(kThreads) attention_forward_kernel(AttnParams<T> p) {
  constexpr int BQ = 16 * RM, LD = DC + 4, LDP = BK + 4, CN = BK / 8, CO = DC / 8;
  static_assert(sizeof(T) * (BQ * LD + BK * LD + BQ * LDP) <= 48 * 1024, "static smem > 48 KiB");
  __shared__ __align__(16) T Qs[BQ * LD];
  __shared__ __align__(16) T KVs[BK * LD];  // K tile, then V tile
  __shared__ __align__(16) T Ps[BQ * LDP];
  const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
  const int qb = blockIdx.x % p.nblk, bh = blockIdx.x / p.nblk;
  const int b = bh / p.H, h = bh % p.H;
  const int i0 = qb * BQ, dv0 = blockIdx.y * DC, nq = p.Sq - i0;
  const T* qp = p.q + b * p.qs0 + h * p.qs1 + i0 * p.qs2;
  const T* kp = p.k + b * p.ks0 + h * p.ks1;
  const T* vp = p.v + b * p.vs0 + h * p.vs1 + dv0;
  const long long mbase = b * p.ms0 + h * p.ms1;
  const bool q_resident = p.D <= DC;
  if (q_resident) load_tile<T, BQ, DC, LD>(Qs, qp, p.qs2, nq, p.D, p.vec_q);

  T m[RM], l[RM], acc[RM][CO];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    m[i] = neg_inf<T>();
    l[i] = T(0);
#pragma unroll
    for (int c = 0; c < CO; ++c) acc[i][c] = T(0);
  }

  const int kend = p.causal ? imin(p.Sk, i0 + BQ) : p.Sk;
  for (int j0 = 0; j0 < kend; j0 += BK) {
    T s[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) s[i][j] = T(0);
    for (int d0 = 0; d0 < p.D; d0 += DC) {
      if (!q_resident) load_tile<T, BQ, DC, LD>(Qs, qp + d0, p.qs2, nq, p.D - d0, p.vec_q);
      load_tile<T, BK, DC, LD>(KVs, kp + j0 * p.ks2 + d0, p.ks2, p.Sk - j0, p.D - d0, p.vec_k);
      __syncthreads();
      mma_abt<T, RM, CN, DC, LD, LD>(s, Qs, KVs, ty, tx);
      __syncthreads();
    }
    // Online softmax (max subtraction for stability; rows fully hidden so far keep m = -inf
    // and P = 0 instead of exp(-inf + inf) = NaN).
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int gi = i0 + ty * RM + i;
      T mx = neg_inf<T>();
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        s[i][j] = masked_score(p, mbase, gi, j0 + tx + 8 * j, s[i][j]);
        mx = fmax(mx, s[i][j]);
      }
      mx = group_max<8>(mx);
      const T m_new = fmax(m[i], mx);
      T alpha = T(1), sum = T(0);
      if (m_new != neg_inf<T>()) {
        alpha = fexp(m[i] - m_new);
#pragma unroll
        for (int j = 0; j < CN; ++j) {
          s[i][j] = fexp(s[i][j] - m_new);
          sum += s[i][j];
        }
      } else {
#pragma unroll
        for (int j = 0; j < CN; ++j) s[i][j] = T(0);
      }
      sum = group_sum<8>(sum);
      l[i] = l[i] * alpha + sum;
      m[i] = m_new;
#pragma unroll
      for (int c = 0; c < CO; ++c) acc[i][c] *= alpha;
#pragma unroll
      for (int j = 0; j < CN; ++j) Ps[(ty * RM + i) * LDP + tx + 8 * j] = s[i][j];
    }
    load_tile<T, BK, DC, LD>(KVs, vp + j0 * p.vs2, p.vs2, p.Sk - j0, p.Dv - dv0, p.vec_v);
    __syncthreads();
    mma_ab<T, RM, DC, BK, LDP, LD>(acc, Ps, KVs, ty, tx);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int gi = i0 + ty * RM + i;
    if (gi >= p.Sq) continue;
    const long long row = static_cast<long long>(bh) * p.Sq + gi;
    const T inv = l[i] > T(0) ? T(1) / l[i] : T(0);
    store_row<T, DC>(p.out + row * p.Dv + dv0, acc[i], inv, p.Dv - dv0, tx, p.vec_o);
    if (blockIdx.y == 0 && tx == 0) p.lse[row] = l[i] > T(0) ? m[i] + flog(l[i]) : neg_inf<T>();
  }
}

// ---- backward ----------------------------------------------------------------------------------

// dd[row] = sum_c dout[row, c] * out[row, c]; a warp per row.
template <class T>
__global__ void __launch_bounds__(kThreads) attention_backward_dot_kernel(AttnParams<T> p) {
  const long long row = static_cast<long long>(blockIdx.x) * (kThreads / 32) + threadIdx.x / 32;
  if (row >= p.rows) return;  // whole warps leave together: the shuffles below stay full-warp
  const int lane = threadIdx.x % 32;
  const T* o = p.out + row * p.Dv;
  const T* g = p.dout + row * p.Dv;
  T s = T(0);
  for (int c = lane; c < p.Dv; c += 32) s = fma(o[c], g[c], s);
  s = group_sum<32>(s);
  if (lane == 0) p.dd[row] = s;
}

// grid.x = nblk * B * H query blocks, grid.y = slices of DC columns of dQ.
template <class T, int DC, int RM>
__global__ void __launch_bounds__(kThreads) attention_backward_dq_kernel(AttnParams<T> p) {
  constexpr int BQ = 16 * RM, BK = BQ, LD = DC + 4, LDP = BK + 4, CN = BK / 8, CO = DC / 8;
  static_assert(sizeof(T) * (4 * BQ * LD + BQ * LDP) <= 48 * 1024, "static smem > 48 KiB");
  __shared__ __align__(16) T Qs[BQ * LD];
  __shared__ __align__(16) T dOs[BQ * LD];
  __shared__ __align__(16) T Ks[BK * LD];
  __shared__ __align__(16) T Vs[BK * LD];
  __shared__ __align__(16) T dSs[BQ * LDP];
  const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
  const int qb = blockIdx.x % p.nblk, bh = blockIdx.x / p.nblk;
  const int b = bh / p.H, h = bh % p.H;
  const int i0 = qb * BQ, c0 = blockIdx.y * DC, nq = p.Sq - i0;
  const long long row0 = static_cast<long long>(bh) * p.Sq + i0;
  const T* qp = p.q + b * p.qs0 + h * p.qs1 + i0 * p.qs2;
  const T* dop = p.dout + row0 * p.Dv;
  const T* kp = p.k + b * p.ks0 + h * p.ks1;
  const T* vp = p.v + b * p.vs0 + h * p.vs1;
  const long long mbase = b * p.ms0 + h * p.ms1;
  const bool q_resident = p.D <= DC, do_resident = p.Dv <= DC;
  if (q_resident) load_tile<T, BQ, DC, LD>(Qs, qp, p.qs2, nq, p.D, p.vec_q);
  if (do_resident) load_tile<T, BQ, DC, LD>(dOs, dop, p.Dv, nq, p.Dv, p.vec_do);

  T L[RM], Dd[RM], acc[RM][CO];
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    const int gi = i0 + ty * RM + i;
    L[i] = gi < p.Sq ? p.lse[row0 + ty * RM + i] : neg_inf<T>();
    Dd[i] = gi < p.Sq ? p.dd[row0 + ty * RM + i] : T(0);
#pragma unroll
    for (int c = 0; c < CO; ++c) acc[i][c] = T(0);
  }

  const int kend = p.causal ? imin(p.Sk, i0 + BQ) : p.Sk;
  for (int j0 = 0; j0 < kend; j0 += BK) {
    T s[RM][CN], dp[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) s[i][j] = dp[i][j] = T(0);
    for (int d0 = 0; d0 < p.D; d0 += DC) {  // S = Q K^T
      if (!q_resident) load_tile<T, BQ, DC, LD>(Qs, qp + d0, p.qs2, nq, p.D - d0, p.vec_q);
      load_tile<T, BK, DC, LD>(Ks, kp + j0 * p.ks2 + d0, p.ks2, p.Sk - j0, p.D - d0, p.vec_k);
      __syncthreads();
      mma_abt<T, RM, CN, DC, LD, LD>(s, Qs, Ks, ty, tx);
      __syncthreads();
    }
    for (int d0 = 0; d0 < p.Dv; d0 += DC) {  // dP = dO V^T
      if (!do_resident) load_tile<T, BQ, DC, LD>(dOs, dop + d0, p.Dv, nq, p.Dv - d0, p.vec_do);
      load_tile<T, BK, DC, LD>(Vs, vp + j0 * p.vs2 + d0, p.vs2, p.Sk - j0, p.Dv - d0, p.vec_v);
      __syncthreads();
      mma_abt<T, RM, CN, DC, LD, LD>(dp, dOs, Vs, ty, tx);
      __syncthreads();
    }
#pragma unroll
    for (int i = 0; i < RM; ++i) {
      const int gi = i0 + ty * RM + i;
#pragma unroll
      for (int j = 0; j < CN; ++j) {
        const T x = masked_score(p, mbase, gi, j0 + tx + 8 * j, s[i][j]);
        const T pij = (x != neg_inf<T>() && L[i] != neg_inf<T>()) ? fexp(x - L[i]) : T(0);
        dSs[(ty * RM + i) * LDP + tx + 8 * j] = pij * (dp[i][j] - Dd[i]);
      }
    }
    // dQ += dS K[:, c0 : c0 + DC]; Ks already holds that slice unless D was chunked.
    if (!q_resident)
      load_tile<T, BK, DC, LD>(Ks, kp + j0 * p.ks2 + c0, p.ks2, p.Sk - j0, p.D - c0, p.vec_k);
    __syncthreads();
    mma_ab<T, RM, DC, BK, LDP, LD>(acc, dSs, Ks, ty, tx);
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < RM; ++i) {
    if (i0 + ty * RM + i >= p.Sq) continue;
    store_row<T, DC>(p.dq + (row0 + ty * RM + i) * p.D + c0, acc[i], p.scale, p.D - c0, tx,
                     p.vec_o);
  }
}

// grid.x = nblk * B * H key blocks, grid.y = slices of DC columns of dK and dV.
template <class T, int DC, int RM>
__global__ void __launch_bounds__(kThreads) attention_backward_dkdv_kernel(AttnParams<T> p) {
  constexpr int BK = 16 * RM, BQ = BK, LD = DC + 4, LDP = BQ + 4, CN = BQ / 8, CO = DC / 8;
  static_assert(sizeof(T) * (4 * BK * LD + 2 * BK * LDP) <= 48 * 1024, "static smem > 48 KiB");
  __shared__ __align__(16) T Ks[BK * LD];
  __shared__ __align__(16) T Vs[BK * LD];
  __shared__ __align__(16) T Qs[BQ * LD];
  __shared__ __align__(16) T dOs[BQ * LD];
  __shared__ __align__(16) T Ps[BK * LDP];   // P^T: rows keys, columns queries
  __shared__ __align__(16) T dSs[BK * LDP];  // dS^T
  const int ty = threadIdx.x / 8, tx = threadIdx.x % 8;
  const int kb = blockIdx.x % p.nblk, bh = blockIdx.x / p.nblk;
  const int b = bh / p.H, h = bh % p.H;
  const int j0 = kb * BK, c0 = blockIdx.y * DC, nk = p.Sk - j0;
  const long long qrow0 = static_cast<long long>(bh) * p.Sq;
  const T* qp = p.q + b * p.qs0 + h * p.qs1;
  const T* dop = p.dout + qrow0 * p.Dv;
  const T* kp = p.k + b * p.ks0 + h * p.ks1 + j0 * p.ks2;
  const T* vp = p.v + b * p.vs0 + h * p.vs1 + j0 * p.vs2;
  const long long mbase = b * p.ms0 + h * p.ms1;
  const bool k_resident = p.D <= DC, v_resident = p.Dv <= DC;
  const bool want_k = c0 < p.D, want_v = c0 < p.Dv;  // this CTA's slice exists for dK / dV
  if (k_resident) load_tile<T, BK, DC, LD>(Ks, kp, p.ks2, nk, p.D, p.vec_k);
  if (v_resident) load_tile<T, BK, DC, LD>(Vs, vp, p.vs2, nk, p.Dv, p.vec_v);

  T acck[RM][CO], accv[RM][CO];
#pragma unroll
  for (int i = 0; i < RM; ++i)
#pragma unroll
    for (int c = 0; c < CO; ++c) acck[i][c] = accv[i][c] = T(0);

  // Causal: queries above the diagonal see none of these keys (BQ == BK, so j0 starts a block).
  for (int i0 = p.causal ? j0 : 0; i0 < p.Sq; i0 += BQ) {
    const int nq = p.Sq - i0;
    T st[RM][CN], dpt[RM][CN];
#pragma unroll
    for (int i = 0; i < RM; ++i)
#pragma unroll
      for (int j = 0; j < CN; ++j) st[i][j] = dpt[i][j] = T(0);
    for (int d0 = 0; d0 < p.D; d0 += DC) {  // S^T = K Q^T
      if (!k_resident) load_tile<T, BK, DC, LD>(Ks, kp + d0, p.ks2, nk, p.D - d0, p.vec_k);
      load_tile<T, BQ, DC, LD>(Qs, qp + i0 * p.qs2 + d0, p.qs2, nq, p.D - d0, p.vec_q);
      __syncthreads();
      mma_abt<T, RM, CN, DC, LD, LD>(st, Ks, Qs, ty, tx);
      __syncthreads();
    }
    for (int d0 = 0; d0 < p.Dv; d0 += DC) {  // dP^T = V dO^T
      if (!v_resident) load_tile<T, BK, DC, LD>(Vs, vp + d0, p.vs2, nk, p.Dv - d0, p.vec_v);
      load_tile<T, BQ, DC, LD>(dOs, dop + static_cast<long long>(i0) * p.Dv + d0, p.Dv, nq,
                               p.Dv - d0, p.vec_do);
      __syncthreads();
      mma_abt<T, RM, CN, DC, LD, LD>(dpt, Vs, dOs, ty, tx);
      __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < CN; ++j) {
      const int gi = i0 + tx + 8 * j;
      const T L = gi < p.Sq ? p.lse[qrow0 + gi] : neg_inf<T>();
      const T Dd = gi < p.Sq ? p.dd[qrow0 + gi] : T(0);
#pragma unroll
      for (int i = 0; i < RM; ++i) {
        const T x = masked_score(p, mbase, gi, j0 + ty * RM + i, st[i][j]);
        const T pij = (x != neg_inf<T>() && L != neg_inf<T>()) ? fexp(x - L) : T(0);
        Ps[(ty * RM + i) * LDP + tx + 8 * j] = pij;
        dSs[(ty * RM + i) * LDP + tx + 8 * j] = pij * (dpt[i][j] - Dd);
      }
    }
    // The products need columns c0 .. c0+DC of Q and dO; the buffers hold them unless chunked.
    if (!k_resident && want_k)
      load_tile<T, BQ, DC, LD>(Qs, qp + i0 * p.qs2 + c0, p.qs2, nq, p.D - c0, p.vec_q);
    if (!v_resident && want_v)
      load_tile<T, BQ, DC, LD>(dOs, dop + static_cast<long long>(i0) * p.Dv + c0, p.Dv, nq,
                               p.Dv - c0, p.vec_do);
    __syncthreads();
    if (want_v) mma_ab<T, RM, DC, BQ, LDP, LD>(accv, Ps, dOs, ty, tx);
    if (want_k) mma_ab<T, RM, DC, BQ, LDP, LD>(acck, dSs, Qs, ty, tx);
    __syncthreads();
  }

  const long long krow0 = static_cast<long long>(bh) * p.Sk + j0;
#pragma unroll
  for (int i = 0; i < RM; ++i) {
    if (j0 + ty * RM + i >= p.Sk) continue;
    const long long r = krow0 + ty * RM + i;
    if (want_k) store_row<T, DC>(p.dk + r * p.D + c0, acck[i], p.scale, p.D - c0, tx, p.vec_o);
    if (want_v) store_row<T, DC>(p.dv + r * p.Dv + c0, accv[i], T(1), p.Dv - c0, tx, p.vec_o);
  }
}

// ---- launchers ---------------------------------------------------------------------------------

// Tile shapes per (dtype, DC), all within 48 KiB of static shared memory:
// forward RM rows per thread (BQ = 16*RM) and key tile BK; backward RM (BQ = BK = 16*RM).
template <class T, int DC>
struct Cfg;
template <> struct Cfg<float, 32> { static constexpr int kFwdRM = 4, kFwdBK = 64, kBwdRM = 2; };
template <> struct Cfg<float, 64> { static constexpr int kFwdRM = 4, kFwdBK = 32, kBwdRM = 2; };
template <> struct Cfg<float, 128> { static constexpr int kFwdRM = 2, kFwdBK = 32, kBwdRM = 1; };
template <> struct Cfg<double, 32> { static constexpr int kFwdRM = 2, kFwdBK = 32, kBwdRM = 1; };
template <> struct Cfg<double, 64> { static constexpr int kFwdRM = 2, kFwdBK = 32, kBwdRM = 1; };

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// x-dimension of a grid of `blocks` row blocks per head times B*H heads.
unsigned flat_grid(const AttnProblem& pr, int64_t blocks, const char* op) {
  const int64_t n = blocks * pr.B * pr.H;
  BM_CHECK(n <= INT_MAX, op, ": too many thread blocks (", blocks, " row blocks x B*H=",
           pr.B * pr.H, ")");
  return static_cast<unsigned>(n);
}

template <class T, int DC>
void forward_dc(AttnParams<T> k, const AttnProblem& pr, cudaStream_t stream) {
  using C = Cfg<T, DC>;
  k.nblk = static_cast<int>(ceil_div(pr.Sq, 16 * C::kFwdRM));
  // A Dv of 0 still needs one slice: it writes lse.
  const dim3 grid(flat_grid(pr, k.nblk, "attention"),
                  static_cast<unsigned>(std::max<int64_t>(1, ceil_div(pr.Dv, DC))));
  attention_forward_kernel<T, DC, C::kFwdRM, C::kFwdBK><<<grid, kThreads, 0, stream>>>(k);
  BM_CUDA_CHECK_LAUNCH();
}

template <class T, int DC>
void backward_dc(AttnParams<T> k, const AttnProblem& pr, cudaStream_t stream) {
  using C = Cfg<T, DC>;
  constexpr int BR = 16 * C::kBwdRM;
  if (pr.Sq > 0 && pr.D > 0) {
    k.nblk = static_cast<int>(ceil_div(pr.Sq, BR));
    const dim3 grid(flat_grid(pr, k.nblk, "attention_backward"),
                    static_cast<unsigned>(ceil_div(pr.D, DC)));
    attention_backward_dq_kernel<T, DC, C::kBwdRM><<<grid, kThreads, 0, stream>>>(k);
    BM_CUDA_CHECK_LAUNCH();
  }
  if (pr.Sk > 0 && (pr.D > 0 || pr.Dv > 0)) {
    k.nblk = static_cast<int>(ceil_div(pr.Sk, BR));
    const int64_t slices = std::max(ceil_div(pr.D, DC), ceil_div(pr.Dv, DC));
    const dim3 grid(flat_grid(pr, k.nblk, "attention_backward"), static_cast<unsigned>(slices));
    attention_backward_dkdv_kernel<T, DC, C::kBwdRM><<<grid, kThreads, 0, stream>>>(k);
    BM_CUDA_CHECK_LAUNCH();
  }
}

// Smallest chunk width holding max(D, Dv); float64 stops at 64 (shared memory).
template <class T>
int pick_dc(const AttnProblem& pr) {
  const int64_t d = std::max(pr.D, pr.Dv);
  if (d <= 32) return 32;
  if (d <= 64 || sizeof(T) == 8) return 64;
  return 128;
}

bool aligned16(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0; }

// 16-byte chunk loads need a 16-byte aligned base and strides in multiples of 4 floats.
template <class T>
bool vec_ok(const void* ptr, const int64_t* s, int n) {
  if constexpr (sizeof(T) != 4) {
    return false;
  } else {
    if (!aligned16(ptr)) return false;
    for (int i = 0; i < n; ++i)
      if (s[i] % 4) return false;
    return true;
  }
}

template <class T>
AttnParams<T> make_params(const AttnProblem& pr) {
  AttnParams<T> k{};
  k.q = static_cast<const T*>(pr.q), k.k = static_cast<const T*>(pr.k);
  k.v = static_cast<const T*>(pr.v);
  k.qs0 = pr.qs[0], k.qs1 = pr.qs[1], k.qs2 = pr.qs[2];
  k.ks0 = pr.ks[0], k.ks1 = pr.ks[1], k.ks2 = pr.ks[2];
  k.vs0 = pr.vs[0], k.vs1 = pr.vs[1], k.vs2 = pr.vs[2];
  k.H = static_cast<int>(pr.H), k.Sq = static_cast<int>(pr.Sq), k.Sk = static_cast<int>(pr.Sk);
  k.D = static_cast<int>(pr.D), k.Dv = static_cast<int>(pr.Dv);
  k.rows = pr.B * pr.H * pr.Sq;
  k.mask_kind = pr.mask_kind;
  k.mask_b = pr.mask_kind == 1 ? static_cast<const unsigned char*>(pr.mask) : nullptr;
  k.mask_a = pr.mask_kind == 2 ? static_cast<const T*>(pr.mask) : nullptr;
  k.ms0 = pr.ms[0], k.ms1 = pr.ms[1], k.ms2 = pr.ms[2], k.ms3 = pr.ms[3];
  k.causal = pr.causal;
  k.scale = static_cast<T>(pr.scale);
  k.vec_q = vec_ok<T>(pr.q, pr.qs, 3);
  k.vec_k = vec_ok<T>(pr.k, pr.ks, 3);
  k.vec_v = vec_ok<T>(pr.v, pr.vs, 3);
  const int64_t dv_stride[1] = {pr.Dv}, d_stride[1] = {pr.D};
  k.vec_do = vec_ok<T>(pr.dout, dv_stride, 1);
  // Outputs: out / dq / dk / dv rows are D or Dv long; all must allow float4 stores.
  k.vec_o = vec_ok<T>(pr.out, dv_stride, 1) && vec_ok<T>(pr.dq, d_stride, 1) &&
            vec_ok<T>(pr.dk, d_stride, 1) && vec_ok<T>(pr.dv, dv_stride, 1);
  k.out = static_cast<T*>(pr.out);
  k.lse = static_cast<T*>(pr.lse);
  k.dout = static_cast<const T*>(pr.dout);
  k.dd = static_cast<T*>(pr.dd);
  k.dq = static_cast<T*>(pr.dq), k.dk = static_cast<T*>(pr.dk), k.dv = static_cast<T*>(pr.dv);
  return k;
}

// Checks that need no GPU first (sizes, dtype, mask kind, null pointers), then that every
// pointer the kernels will touch is device memory of the current device.
void check_problem(const AttnProblem& p, bool backward) {
  const char* op = backward ? "attention_backward" : "attention";
  BM_CHECK(p.dtype == DType::f32 || p.dtype == DType::f64, op,
           ": dtype must be float32 or float64");
  BM_CHECK(p.B >= 0 && p.H >= 0 && p.Sq >= 0 && p.Sk >= 0 && p.D >= 0 && p.Dv >= 0, op,
           ": sizes must be >= 0, got B=", p.B, " H=", p.H, " Sq=", p.Sq, " Sk=", p.Sk, " D=", p.D,
           " Dv=", p.Dv);
  constexpr int64_t kMax = INT_MAX - 256;  // row indices + one tile stay inside int
  BM_CHECK(p.Sq <= kMax && p.Sk <= kMax && p.D <= kMax && p.Dv <= kMax, op,
           ": Sq, Sk, D and Dv must be < 2^31 - 256, got Sq=", p.Sq, " Sk=", p.Sk, " D=", p.D,
           " Dv=", p.Dv);
  BM_CHECK(p.B == 0 || p.H <= INT_MAX / p.B, op, ": B*H must be < 2^31, got B=", p.B, " H=", p.H);
  BM_CHECK(p.mask_kind >= 0 && p.mask_kind <= 2, op,
           ": mask_kind must be 0 (none), 1 (boolean) or 2 (additive), got ", p.mask_kind);
  // Head-dim slices go to gridDim.y (<= 65535 slices of at least 32 columns).
  BM_CHECK(std::max(p.D, p.Dv) <= int64_t(65535) * 32, op, ": D and Dv must be <= ",
           int64_t(65535) * 32, ", got D=", p.D, " Dv=", p.Dv);
  const int64_t BH = p.B * p.H;
  // A tensor's pointer is checked when the tensor is not empty (CuPy gives empty arrays a null
  // pointer); every non-empty input may be read.
  const bool q_used = BH > 0 && p.Sq > 0 && p.D > 0;
  const bool k_used = BH > 0 && p.Sk > 0 && p.D > 0;
  const bool v_used = BH > 0 && p.Sk > 0 && p.Dv > 0;
  const bool mask_used = p.mask_kind != 0 && BH > 0 && p.Sq > 0 && p.Sk > 0;
  const bool rows = BH > 0 && p.Sq > 0;
  struct Ptr {
    const void* ptr;
    const char* name;
    bool used;
  };
  std::vector<Ptr> ptrs = {{p.q, "q", q_used}, {p.k, "k", k_used}, {p.v, "v", v_used},
                           {p.mask, "mask", mask_used}, {p.lse, "lse", rows},
                           {p.out, "out", rows && p.Dv > 0}};
  if (backward) {
    ptrs.push_back({p.dout, "dout", rows && p.Dv > 0});
    ptrs.push_back({p.dd, "dd (workspace)", rows});
    ptrs.push_back({p.dq, "dq", rows && p.D > 0});
    ptrs.push_back({p.dk, "dk", BH > 0 && p.Sk > 0 && p.D > 0});
    ptrs.push_back({p.dv, "dv", BH > 0 && p.Sk > 0 && p.Dv > 0});
  }
  for (const auto& x : ptrs)
    BM_CHECK(!x.used || x.ptr != nullptr, op, ": ", x.name, " is a null pointer (B=", p.B,
             " H=", p.H, " Sq=", p.Sq, " Sk=", p.Sk, " D=", p.D, " Dv=", p.Dv, ")");
  for (const auto& x : ptrs)
    if (x.used) kutil::check_device_ptr(op, x.name, x.ptr);
}

template <class T>
void forward_t(const AttnProblem& pr, cudaStream_t stream) {
  const AttnParams<T> k = make_params<T>(pr);
  const int dc = pick_dc<T>(pr);
  if (dc == 32) return forward_dc<T, 32>(k, pr, stream);
  if constexpr (sizeof(T) == 4) {
    if (dc == 128) return forward_dc<T, 128>(k, pr, stream);
  }
  forward_dc<T, 64>(k, pr, stream);
}

template <class T>
void backward_t(const AttnProblem& pr, cudaStream_t stream) {
  AttnParams<T> k = make_params<T>(pr);
  if (k.rows > 0) {  // dd = rowsum(dO * O) (0 when Dv = 0)
    const int64_t blocks = ceil_div(k.rows, kThreads / 32);
    BM_CHECK(blocks <= INT_MAX, "attention_backward: too many rows (B*H*Sq=", k.rows, ")");
    attention_backward_dot_kernel<T><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(k);
    BM_CUDA_CHECK_LAUNCH();
  }
  const int dc = pick_dc<T>(pr);
  if (dc == 32) return backward_dc<T, 32>(k, pr, stream);
  if constexpr (sizeof(T) == 4) {
    if (dc == 128) return backward_dc<T, 128>(k, pr, stream);
  }
  backward_dc<T, 64>(k, pr, stream);
}

}  // namespace fa

void launch_attention_forward(const AttnProblem& p, std::uintptr_t stream_ptr) {
  fa::check_problem(p, false);
  if (p.B * p.H * p.Sq == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (p.dtype == DType::f32) fa::forward_t<float>(p, stream);
  else fa::forward_t<double>(p, stream);
}

void launch_attention_backward(const AttnProblem& p, std::uintptr_t stream_ptr) {
  fa::check_problem(p, true);
  if (p.B * p.H == 0) return;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  if (p.dtype == DType::f32) fa::backward_t<float>(p, stream);
  else fa::backward_t<double>(p, stream);
}

}  // namespace bm::cuda
