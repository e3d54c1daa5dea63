// conv2d kernels on CUDA cores: implicit-GEMM forward and dx, split-K dW, db, depthwise direct
// loops, and the host launchers. Layouts and the choice of kernel: see conv2d.h.
//
// The implicit GEMM (forward and dx share conv2d_igemm_kernel):
//   out[m, pix] = sum over red of A[m, red] * B[red, pix]
// A is the weight tensor seen through strides, B the virtual im2col matrix of the source image
// (x for the forward, dy for dx). A reduction index red decodes to (channel, tap_r, tap_s), a
// pixel to (n, i, j) on the output grid; source row h = i*mul_h + off_h + tap_r*tap_h (col alike),
// zero outside the source. Forward: mul = stride, off = -pad, tap = dilation. dx, per stride
// phase (ph, pw): pixels are the dx pixels h = ph + sh*i, taps the r with
// (ph + pad - r*dil) % sh == 0 (r = r0 + j*rst), which read dy row p = i + off_h - j*(rst*dil/sh).
//
// Tiles are staged global -> registers -> shared memory with two shared buffers: the next
// tile's global loads are in flight while the current one is multiplied (one __syncthreads per
// k-step), as in gemm.cu. Each thread gathers B elements for one (or two) fixed pixels and a
// run of consecutive reduction rows, so the (channel, r, s) decode happens once per tile and then
// steps; neighbouring threads take neighbouring pixels, so stride-1 gathers coalesce.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>

#include "cuda/conv2d.h"
#include "cuda/conv_common.cuh"
#include "cuda/cuda_check.cuh"

namespace bm::cuda {

__device__ __forceinline__ float conv_fma(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double conv_fma(double a, double b, double c) { return fma(a, b, c); }

// ---- register tiles ----------------------------------------------------------------------------

// fp32: warps as (BM/32) x (BN/64), each warp 32x64, lanes 4 x 8 owning two 4x4 sub-blocks 16 rows
// / 32 columns apart: every shared-memory read is a conflict-free float4 (gemm.cu's SIMT layout).
template <int BM_, int BN_>
struct SimtF32 {
  using T = float;
  static constexpr int BM = BM_, BN = BN_, BK = 16, TM = 8, TN = 8;
  static constexpr int kWarpsN = BN / 64;
  static constexpr int kThreads = (BM / 32) * kWarpsN * 32;
  // Blocks per SM for __launch_bounds__: 128 registers for the 128-row tile (as gemm.cu); the
  // smaller tiles stage more image elements per thread and would spill at 128.
  static constexpr int kMinBlocks = BM == 128 ? 2 : BM == 64 ? 3 : 5;
  static constexpr int LDA = BM + 4, LDB = BN + 4;  // +4: rows stay 16-byte aligned
  static_assert(BM % 32 == 0 && BN % 64 == 0, "warp tile is 32x64");
  int row0, col0;
  __device__ __forceinline__ SimtF32() {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    row0 = (warp / kWarpsN) * 32 + (lane / 8) * 4;
    col0 = (warp % kWarpsN) * 64 + (lane % 8) * 4;
  }
  __device__ __forceinline__ int row(int i) const { return row0 + (i < 4 ? i : 12 + i); }
  __device__ __forceinline__ int col(int j) const { return col0 + (j < 4 ? j : 28 + j); }
  __device__ __forceinline__ void mma(const float* As, const float* Bs, float (&acc)[TM][TN]) const {
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      const float4 a0 = *reinterpret_cast<const float4*>(As + kk * LDA + row0);
      const float4 a1 = *reinterpret_cast<const float4*>(As + kk * LDA + row0 + 16);
      const float4 b0 = *reinterpret_cast<const float4*>(Bs + kk * LDB + col0);
      const float4 b1 = *reinterpret_cast<const float4*>(Bs + kk * LDB + col0 + 32);
      const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
      const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
  }
};

// fp64 (not the hot path): 256 threads as 16 x 16, thread (ty, tx) owns rows ty + 16i and
// columns tx + 16j; scalar shared reads, odd row length against bank conflicts of the stores.
template <typename T_, int BM_, int BN_>
struct Scalar16 {
  using T = T_;
  static constexpr int BM = BM_, BN = BN_, BK = 16, TM = BM / 16, TN = BN / 16;
  static constexpr int kThreads = 256, kMinBlocks = 1;
  static constexpr int LDA = BM + 1, LDB = BN + 1;
  int ty, tx;
  __device__ __forceinline__ Scalar16() : ty(threadIdx.x / 16), tx(threadIdx.x % 16) {}
  __device__ __forceinline__ int row(int i) const { return ty + 16 * i; }
  __device__ __forceinline__ int col(int j) const { return tx + 16 * j; }
  __device__ __forceinline__ void mma(const T* As, const T* Bs, T (&acc)[TM][TN]) const {
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk * LDA + ty + 16 * i];
#pragma unroll
      for (int j = 0; j < TN; ++j) b[j] = Bs[kk * LDB + tx + 16 * j];
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = conv_fma(a[i], b[j], acc[i][j]);
    }
  }
};

// Double-buffered main loop over ktiles tiles of BK reduction rows. LA fills As[k][m] (BM rows),
// LB fills Bs[k][n] (BN columns); both have load(regs) / store(smem, regs) / advance().
template <class Cfg, class LA, class LB>
__device__ __forceinline__ void conv_mainloop(LA& la, LB& lb, int ktiles, typename Cfg::T* As,
                                              typename Cfg::T* Bs, const Cfg& cfg,
                                              typename Cfg::T (&acc)[Cfg::TM][Cfg::TN]) {
  using T = typename Cfg::T;
  constexpr int kA = Cfg::BK * Cfg::LDA, kB = Cfg::BK * Cfg::LDB;
  T ra[LA::kElems], rb[LB::kElems];
  la.load(ra);
  lb.load(rb);
  la.store(As, ra);
  lb.store(Bs, rb);
  __syncthreads();
  for (int t = 0; t < ktiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < ktiles;
    if (more) {  // issue the next tile's global loads before the math to hide their latency
      la.advance();
      lb.advance();
      la.load(ra);
      lb.load(rb);
    }
    cfg.mma(As + cur * kA, Bs + cur * kB, acc);
    if (more) {  // the other buffer was last read before the previous barrier: free to fill
      la.store(As + (cur ^ 1) * kA, ra);
      lb.store(Bs + (cur ^ 1) * kB, rb);
    }
    __syncthreads();
  }
}

// ---- implicit GEMM: forward and dx -------------------------------------------------------------

struct IgemmParams {
  const void* a;     // weights
  const void* b;     // source image: x (forward) or dy (dx)
  const void* bias;  // forward only; may be null
  void* out;         // y (forward) or dx
  int g0;            // first group of this launch (group = g0 + blockIdx.z)
  int M;             // rows: K/G (forward) or C/G (dx)
  int npix, HoWo, Wo;             // pixels n*Ho*Wo of the output grid
  int Kred, Cr, Rr, Sr;           // reduction = Cr channels x Rr x Sr taps
  // A[m, (c, r, s)] = a[g*a_gs + m*a_ms + c*a_cs + (r0 + r*rst)*S + s0 + s*sst]
  long long a_gs;
  int a_ms, a_cs, S, r0, rst, s0, sst;
  // B[(c, r, s), (n, i, j)] = b[g*b_gs + n*b_ns + c*b_cs + h*Wb + w] for 0 <= h < Hb, 0 <= w < Wb
  // with h = i*mul_h + off_h + r*tap_h, w = j*mul_w + off_w + s*tap_w; 0 outside.
  long long b_gs, b_ns;
  int b_cs, Hb, Wb, mul_h, mul_w, off_h, off_w, tap_h, tap_w;
  // out[g*o_gs + n*o_ns + m*o_cs + o_off + i*o_hs + j*o_ws] (+ bias[g*bias_gs + m])
  long long o_gs, o_ns;
  int o_cs, o_off, o_hs, o_ws, bias_gs;
};

// A tile (BM x BK) of the weights: thread t loads column t % BK (coalesced along the reduction)
// for rows t / BK + i * (threads / BK).
template <class Cfg>
struct WeightLoader {
  using T = typename Cfg::T;
  static constexpr int kStep = Cfg::kThreads / Cfg::BK;
  static constexpr int kElems = Cfg::BM / kStep;
  static_assert(Cfg::kThreads % Cfg::BK == 0 && Cfg::BM % kStep == 0, "weight tile split");
  const T* base;  // row m0 of this block's group
  int m_left, a_ms, a_cs, S, r0, rst, s0, sst, RS, Sr, Kred, k;

  __device__ __forceinline__ WeightLoader(const IgemmParams& p, int g, int m0)
      : base(static_cast<const T*>(p.a) + g * p.a_gs + static_cast<long long>(m0) * p.a_ms),
        m_left(p.M - m0), a_ms(p.a_ms), a_cs(p.a_cs), S(p.S), r0(p.r0), rst(p.rst), s0(p.s0),
        sst(p.sst), RS(p.Rr * p.Sr), Sr(p.Sr), Kred(p.Kred),
        k(static_cast<int>(threadIdx.x % Cfg::BK)) {}

  __device__ __forceinline__ void load(T (&r)[kElems]) const {
    const bool kv = k < Kred;
    int off = 0;
    if (kv) {
      const int c = k / RS, rs = k - c * RS, rr = rs / Sr, ss = rs - rr * Sr;
      off = c * a_cs + (r0 + rr * rst) * S + s0 + ss * sst;
    }
    const int m = static_cast<int>(threadIdx.x / Cfg::BK);
#pragma unroll
    for (int i = 0; i < kElems; ++i) {
      const int mi = m + i * kStep;
      r[i] = (kv && mi < m_left) ? base[static_cast<long long>(mi) * a_ms + off] : T(0);
    }
  }
  __device__ __forceinline__ void store(T* s, const T (&r)[kElems]) const {
    const int kk = threadIdx.x % Cfg::BK, m = threadIdx.x / Cfg::BK;
#pragma unroll
    for (int i = 0; i < kElems; ++i) s[kk * Cfg::LDA + m + i * kStep] = r[i];
  }
  __device__ __forceinline__ void advance() { k += Cfg::BK; }
};

// B tile (BK x BN) of the virtual im2col matrix: thread t owns pixel columns t % TNP (+ TNP) and
// KR consecutive reduction rows.
template <class Cfg>
struct ImageLoader {
  using T = typename Cfg::T;
  static constexpr int TNP = Cfg::kThreads < Cfg::BN ? Cfg::kThreads : Cfg::BN;
  static constexpr int NPIX = Cfg::BN / TNP;
  static constexpr int KR = Cfg::BK * TNP / Cfg::kThreads;
  static constexpr int kElems = NPIX * KR;
  static_assert(Cfg::BN % TNP == 0 && Cfg::kThreads % TNP == 0 && KR >= 1, "image tile split");
  const T* src[NPIX];  // image n of this pixel, channel 0 of the group; null past the last pixel
  int h0[NPIX], w0[NPIX];
  int b_cs, Hb, Wb, tap_h, tap_w, Rr, Sr, RS, Kred, k;

  __device__ __forceinline__ ImageLoader(const IgemmParams& p, int g, int n0)
      : b_cs(p.b_cs), Hb(p.Hb), Wb(p.Wb), tap_h(p.tap_h), tap_w(p.tap_w), Rr(p.Rr), Sr(p.Sr),
        RS(p.Rr * p.Sr), Kred(p.Kred), k(static_cast<int>(threadIdx.x / TNP) * KR) {
    const T* b = static_cast<const T*>(p.b) + g * p.b_gs;
#pragma unroll
    for (int px = 0; px < NPIX; ++px) {
      const int pix = n0 + static_cast<int>(threadIdx.x % TNP) + px * TNP;
      src[px] = nullptr;
      h0[px] = w0[px] = 0;
      if (pix < p.npix) {
        const int n = pix / p.HoWo, rem = pix - n * p.HoWo, i = rem / p.Wo, j = rem - i * p.Wo;
        src[px] = b + n * p.b_ns;
        h0[px] = i * p.mul_h + p.off_h;
        w0[px] = j * p.mul_w + p.off_w;
      }
    }
  }

  __device__ __forceinline__ void load(T (&r)[kElems]) const {
    int c = 0, rr = 0, ss = 0;
    if (k < Kred) {
      c = k / RS;
      const int rs = k - c * RS;
      rr = rs / Sr;
      ss = rs - rr * Sr;
    }
#pragma unroll
    for (int e = 0; e < KR; ++e) {
      const bool kv = k + e < Kred;
      const int dh = rr * tap_h, dw = ss * tap_w, coff = c * b_cs;
#pragma unroll
      for (int px = 0; px < NPIX; ++px) {
        const int h = h0[px] + dh, w = w0[px] + dw;
        const bool ok = kv && src[px] != nullptr && static_cast<unsigned>(h) < static_cast<unsigned>(Hb) &&
                        static_cast<unsigned>(w) < static_cast<unsigned>(Wb);
        r[px * KR + e] = ok ? src[px][coff + h * Wb + w] : T(0);
      }
      if (++ss == Sr) {
        ss = 0;
        if (++rr == Rr) {
          rr = 0;
          ++c;
        }
      }
    }
  }
  __device__ __forceinline__ void store(T* s, const T (&r)[kElems]) const {
    const int col = threadIdx.x % TNP, row = (threadIdx.x / TNP) * KR;
#pragma unroll
    for (int e = 0; e < KR; ++e)
#pragma unroll
      for (int px = 0; px < NPIX; ++px) s[(row + e) * Cfg::LDB + col + px * TNP] = r[px * KR + e];
  }
  __device__ __forceinline__ void advance() { k += Cfg::BK; }
};

// out tile (BM rows x BN pixels) per block; blockIdx = (pixel tile, row tile, group - g0).
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) conv2d_igemm_kernel(IgemmParams p) {
  using T = typename Cfg::T;
  __shared__ __align__(16) T As[2 * Cfg::BK * Cfg::LDA];
  __shared__ __align__(16) T Bs[2 * Cfg::BK * Cfg::LDB];
  const int g = p.g0 + static_cast<int>(blockIdx.z);
  const int m0 = blockIdx.y * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  WeightLoader<Cfg> la(p, g, m0);
  ImageLoader<Cfg> lb(p, g, n0);
  const Cfg cfg;
  T acc[Cfg::TM][Cfg::TN];
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = T(0);
  conv_mainloop(la, lb, (p.Kred + Cfg::BK - 1) / Cfg::BK, As, Bs, cfg, acc);

  T* out = static_cast<T*>(p.out) + g * p.o_gs + p.o_off;
  const T* bias = p.bias ? static_cast<const T*>(p.bias) + static_cast<long long>(g) * p.bias_gs : nullptr;
  long long off[Cfg::TN];
#pragma unroll
  for (int j = 0; j < Cfg::TN; ++j) {
    const int pix = n0 + cfg.col(j);
    off[j] = -1;
    if (pix < p.npix) {
      const int n = pix / p.HoWo, rem = pix - n * p.HoWo, i = rem / p.Wo, jj = rem - i * p.Wo;
      off[j] = n * p.o_ns + static_cast<long long>(i) * p.o_hs + static_cast<long long>(jj) * p.o_ws;
    }
  }
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i) {
    const int m = m0 + cfg.row(i);
    if (m >= p.M) continue;
    const T bv = bias ? bias[m] : T(0);
    T* orow = out + static_cast<long long>(m) * p.o_cs;
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j)
      if (off[j] >= 0) orow[off[j]] = acc[i][j] + bv;
  }
}

// ---- depthwise direct loops (C/G == 1) ---------------------------------------------------------

struct DirectParams {
  const void* src;   // x (forward) or dy (dx)
  const void* w;
  const void* bias;  // forward only; may be null
  void* out;         // y (forward) or dx
  long long total;   // output elements
  int C, H, W, K, P, Q, R, S, Kg, sh, sw, pt, pl, dh, dw;
};

// y[n, k, p, q] = sum over r, s of w[k, 0, r, s] * x[n, k / Kg, ...] (+ b[k]); one thread each.
template <typename T>
__global__ void __launch_bounds__(256) conv2d_depthwise_forward_kernel(DirectParams p) {
  const T* x = static_cast<const T*>(p.src);
  const T* w = static_cast<const T*>(p.w);
  const T* b = static_cast<const T*>(p.bias);
  T* y = static_cast<T*>(p.out);
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < p.total; e += step) {
    const int q = static_cast<int>(e % p.Q);
    long long t = e / p.Q;
    const int pp = static_cast<int>(t % p.P);
    t /= p.P;
    const int k = static_cast<int>(t % p.K);
    const long long n = t / p.K;
    const T* xc = x + (n * p.C + k / p.Kg) * p.H * p.W;
    const T* wk = w + static_cast<long long>(k) * p.R * p.S;
    T acc = T(0);
    for (int r = 0; r < p.R; ++r) {
      const int h = pp * p.sh - p.pt + r * p.dh;
      if (static_cast<unsigned>(h) >= static_cast<unsigned>(p.H)) continue;
      for (int s = 0; s < p.S; ++s) {
        const int ww = q * p.sw - p.pl + s * p.dw;
        if (static_cast<unsigned>(ww) < static_cast<unsigned>(p.W))
          acc = conv_fma(wk[r * p.S + s], xc[h * p.W + ww], acc);
      }
    }
    y[e] = b ? acc + b[k] : acc;
  }
}

// dx[n, c, h, w] = sum over the Kg output channels of group c and the taps that reach (h, w).
template <typename T>
__global__ void __launch_bounds__(256) conv2d_depthwise_backward_data_kernel(DirectParams p) {
  const T* dy = static_cast<const T*>(p.src);
  const T* w = static_cast<const T*>(p.w);
  T* dx = static_cast<T*>(p.out);
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < p.total; e += step) {
    const int x_w = static_cast<int>(e % p.W);
    long long t = e / p.W;
    const int x_h = static_cast<int>(t % p.H);
    t /= p.H;
    const int c = static_cast<int>(t % p.C);
    const long long n = t / p.C;
    T acc = T(0);
    for (int k = c * p.Kg; k < (c + 1) * p.Kg; ++k) {
      const T* dyk = dy + (n * p.K + k) * p.P * p.Q;
      const T* wk = w + static_cast<long long>(k) * p.R * p.S;
      for (int r = 0; r < p.R; ++r) {
        const int hp = x_h + p.pt - r * p.dh;
        if (hp < 0 || hp % p.sh) continue;
        const int pp = hp / p.sh;
        if (pp >= p.P) continue;
        for (int s = 0; s < p.S; ++s) {
          const int wq = x_w + p.pl - s * p.dw;
          if (wq < 0 || wq % p.sw) continue;
          const int q = wq / p.sw;
          if (q < p.Q) acc = conv_fma(wk[r * p.S + s], dyk[pp * p.Q + q], acc);
        }
      }
    }
    dx[e] = acc;
  }
}

// ---- dW: split-K GEMM dy . im2col(x)^T ---------------------------------------------------------

struct WgradParams {
  const void* dy;
  const void* x;
  void* out;        // dw (one split) or the workspace [split][K][Cg*R*S]
  int g0, mtiles;   // group = g0 + blockIdx.y / mtiles
  int M, Ncol;      // K/G rows, C/G*R*S columns
  int npq, PQ, Q;   // reduction N*P*Q
  int H, W, sh, sw, pt, pl, dh, dw, RS, S;
  long long dy_ns, dy_gs, x_ns, x_gs;  // image / group strides of dy and x
  long long out_zs, out_gs;            // split / group strides of out
  int tiles_per_split, ktiles;
};

// A tile (BM x BK) of dy: thread t owns reduction row t % BK (coalesced along p, q) and rows
// t / BK + i * (threads / BK) of the output channels.
template <class Cfg>
struct DyLoader {
  using T = typename Cfg::T;
  static constexpr int kStep = Cfg::kThreads / Cfg::BK;
  static constexpr int kElems = Cfg::BM / kStep;
  static_assert(Cfg::kThreads % Cfg::BK == 0 && Cfg::BM % kStep == 0, "dy tile split");
  const T* base;
  long long ns;
  int PQ, npq, m_left, k;
  __device__ __forceinline__ DyLoader(const WgradParams& p, int g, int m0, int k0)
      : base(static_cast<const T*>(p.dy) + g * p.dy_gs + static_cast<long long>(m0) * p.PQ),
        ns(p.dy_ns), PQ(p.PQ), npq(p.npq), m_left(p.M - m0),
        k(k0 + static_cast<int>(threadIdx.x % Cfg::BK)) {}
  __device__ __forceinline__ void load(T (&r)[kElems]) const {
    const bool kv = k < npq;
    const T* src = base;
    if (kv) {
      const int n = k / PQ;
      src = base + n * ns + (k - n * PQ);
    }
    const int m = static_cast<int>(threadIdx.x / Cfg::BK);
#pragma unroll
    for (int i = 0; i < kElems; ++i) {
      const int mi = m + i * kStep;
      r[i] = (kv && mi < m_left) ? src[static_cast<long long>(mi) * PQ] : T(0);
    }
  }
  __device__ __forceinline__ void store(T* s, const T (&r)[kElems]) const {
    const int kk = threadIdx.x % Cfg::BK, m = threadIdx.x / Cfg::BK;
#pragma unroll
    for (int i = 0; i < kElems; ++i) s[kk * Cfg::LDA + m + i * kStep] = r[i];
  }
  __device__ __forceinline__ void advance() { k += Cfg::BK; }
};

// B tile (BK x BN) of im2col(x)^T: thread t owns reduction row t % BK and columns
// t / BK + i * (threads / BK); each column's (channel offset, r*dh - pt, s*dw - pl) comes from a
// per-block table in shared memory (channel offset -1 past the last column).
template <class Cfg>
struct ColLoader {
  using T = typename Cfg::T;
  static constexpr int kStep = Cfg::kThreads / Cfg::BK;
  static constexpr int kElems = Cfg::BN / kStep;
  static_assert(Cfg::kThreads % Cfg::BK == 0 && Cfg::BN % kStep == 0, "im2col tile split");
  const T* base;
  long long ns;
  const int *cc, *ch, *cw;
  int PQ, Q, npq, H, W, sh, sw, k;
  __device__ __forceinline__ ColLoader(const WgradParams& p, int g, int k0, const int* cc_,
                                       const int* ch_, const int* cw_)
      : base(static_cast<const T*>(p.x) + g * p.x_gs), ns(p.x_ns), cc(cc_), ch(ch_), cw(cw_),
        PQ(p.PQ), Q(p.Q), npq(p.npq), H(p.H), W(p.W), sh(p.sh), sw(p.sw),
        k(k0 + static_cast<int>(threadIdx.x % Cfg::BK)) {}
  __device__ __forceinline__ void load(T (&r)[kElems]) const {
    const bool kv = k < npq;
    const T* src = base;
    int ih = 0, iw = 0;
    if (kv) {
      const int n = k / PQ, pq = k - n * PQ, pp = pq / Q, q = pq - pp * Q;
      src = base + n * ns;
      ih = pp * sh;
      iw = q * sw;
    }
    const int j0 = static_cast<int>(threadIdx.x / Cfg::BK);
#pragma unroll
    for (int i = 0; i < kElems; ++i) {
      const int j = j0 + i * kStep;
      const int c = cc[j], h = ih + ch[j], w = iw + cw[j];
      const bool ok = kv && c >= 0 && static_cast<unsigned>(h) < static_cast<unsigned>(H) &&
                      static_cast<unsigned>(w) < static_cast<unsigned>(W);
      r[i] = ok ? src[c + h * W + w] : T(0);
    }
  }
  __device__ __forceinline__ void store(T* s, const T (&r)[kElems]) const {
    const int kk = threadIdx.x % Cfg::BK, j = threadIdx.x / Cfg::BK;
#pragma unroll
    for (int i = 0; i < kElems; ++i) s[kk * Cfg::LDB + j + i * kStep] = r[i];
  }
  __device__ __forceinline__ void advance() { k += Cfg::BK; }
};

// dW tile (BM channels x BN columns) per block over the reduction tiles of split blockIdx.z;
// blockIdx = (column tile, group x row tile, split).
template <class Cfg>
__global__ void __launch_bounds__(Cfg::kThreads, Cfg::kMinBlocks) conv2d_wgrad_kernel(WgradParams p) {
  using T = typename Cfg::T;
  __shared__ __align__(16) T As[2 * Cfg::BK * Cfg::LDA];
  __shared__ __align__(16) T Bs[2 * Cfg::BK * Cfg::LDB];
  __shared__ int col_c[Cfg::BN], col_h[Cfg::BN], col_w[Cfg::BN];
  const int g = p.g0 + static_cast<int>(blockIdx.y) / p.mtiles;
  const int m0 = (static_cast<int>(blockIdx.y) % p.mtiles) * Cfg::BM, n0 = blockIdx.x * Cfg::BN;
  const int t0 = static_cast<int>(blockIdx.z) * p.tiles_per_split;
  const int ntiles = p.ktiles - t0 < p.tiles_per_split ? p.ktiles - t0 : p.tiles_per_split;
  for (int j = threadIdx.x; j < Cfg::BN; j += Cfg::kThreads) {
    const int crs = n0 + j;
    int c = -1, h = 0, w = 0;
    if (crs < p.Ncol) {
      const int ci = crs / p.RS, rs = crs - ci * p.RS, r = rs / p.S, s = rs - r * p.S;
      c = ci * p.H * p.W;
      h = r * p.dh - p.pt;
      w = s * p.dw - p.pl;
    }
    col_c[j] = c;
    col_h[j] = h;
    col_w[j] = w;
  }
  __syncthreads();
  DyLoader<Cfg> la(p, g, m0, t0 * Cfg::BK);
  ColLoader<Cfg> lb(p, g, t0 * Cfg::BK, col_c, col_h, col_w);
  const Cfg cfg;
  T acc[Cfg::TM][Cfg::TN];
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = T(0);
  conv_mainloop(la, lb, ntiles, As, Bs, cfg, acc);

  T* out = static_cast<T*>(p.out) + blockIdx.z * p.out_zs + g * p.out_gs;
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i) {
    const int m = m0 + cfg.row(i);
    if (m >= p.M) continue;
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) {
      const int n = n0 + cfg.col(j);
      if (n < p.Ncol) out[static_cast<long long>(m) * p.Ncol + n] = acc[i][j];
    }
  }
}

struct ReduceParams {
  const void* ws;
  void* out;
  long long total;  // elements of dw
  int splits;
};

// dw[i] = sum over splits of ws[split][i], in split order (deterministic).
template <typename T>
__global__ void __launch_bounds__(256) conv2d_wgrad_reduce_kernel(ReduceParams p) {
  const T* ws = static_cast<const T*>(p.ws);
  T* out = static_cast<T*>(p.out);
  const long long step = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.total; i += step) {
    T s = ws[i];
    for (int z = 1; z < p.splits; ++z) s += ws[z * p.total + i];
    out[i] = s;
  }
}

struct BiasGradParams {
  const void* dy;
  void* db;
  int N, K, PQ;
};

constexpr int kBiasThreads = 256;

// db[k] = sum of dy[n, k, :, :] over n: block k, fixed per-thread order, shared-memory tree.
template <typename T>
__global__ void __launch_bounds__(kBiasThreads) conv2d_bias_grad_kernel(BiasGradParams p) {
  __shared__ T red[kBiasThreads];
  const T* dy = static_cast<const T*>(p.dy);
  const int k = blockIdx.x, t = threadIdx.x;
  T s = T(0);
  for (int n = 0; n < p.N; ++n) {
    const T* row = dy + (static_cast<long long>(n) * p.K + k) * p.PQ;
    for (int i = t; i < p.PQ; i += kBiasThreads) s += row[i];
  }
  red[t] = s;
  __syncthreads();
  for (int h = kBiasThreads / 2; h > 0; h /= 2) {
    if (t < h) red[t] += red[t + h];
    __syncthreads();
  }
  if (t == 0) static_cast<T*>(p.db)[k] = red[0];
}

// ---- host side ---------------------------------------------------------------------------------

namespace {

constexpr int64_t kMaxI32 = std::numeric_limits<int>::max();
constexpr int kMaxGrid = 65535;

template <class Cfg>
struct Tag {
  using type = Cfg;
};

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Tile rows for M output rows: the smallest tile that covers M, or half the 128-row tile when the
// grid would not fill the GPU (fewer than 256 blocks).
int pick_bm(int64_t M, int64_t blocks_per_row_tile) {
  if (M > 64) return cdiv(M, 128) * blocks_per_row_tile >= 256 ? 128 : 64;
  return M > 32 ? 64 : 32;
}

// Calls f(Tag<Cfg>{}) with the tile configuration for dtype dt and M rows.
template <class F>
void with_cfg(DType dt, int64_t M, int64_t blocks_per_row_tile, F&& f) {
  if (dt == DType::f64) return f(Tag<Scalar16<double, 64, 64>>{});
  switch (pick_bm(M, blocks_per_row_tile)) {
    case 128: return f(Tag<SimtF32<128, 128>>{});
    case 64: return f(Tag<SimtF32<64, 128>>{});
    default: return f(Tag<SimtF32<32, 128>>{});
  }
}

template <class Cfg>
void launch_igemm(IgemmParams p, int64_t G, cudaStream_t stream) {
  const int64_t gx = cdiv(p.npix, Cfg::BN), gy = cdiv(p.M, Cfg::BM);
  BM_CHECK(gy <= kMaxGrid, "conv2d: too many channels per group (", p.M, ")");
  auto kern = &conv2d_igemm_kernel<Cfg>;
  for (int64_t g0 = 0; g0 < G; g0 += kMaxGrid) {
    p.g0 = static_cast<int>(g0);
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(gy),
                    static_cast<unsigned>(std::min<int64_t>(kMaxGrid, G - g0)));
    kern<<<grid, Cfg::kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  }
}

void launch_igemm_any(const IgemmParams& p, int64_t G, DType dt, cudaStream_t stream) {
  const int64_t pix_tiles = cdiv(p.npix, 128) * G;
  with_cfg(dt, p.M, pix_tiles, [&](auto tag) { launch_igemm<typename decltype(tag)::type>(p, G, stream); });
}

template <typename T>
void launch_direct(const DirectParams& p, bool forward, cudaStream_t stream) {
  const dim3 grid(conv_common::grid_for(p.total, 256));
  auto kern = forward ? &conv2d_depthwise_forward_kernel<T> : &conv2d_depthwise_backward_data_kernel<T>;
  kern<<<grid, 256, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

DirectParams direct_params(const Conv2dShape& s, const void* src, const void* w, const void* bias,
                           void* out, int64_t total) {
  DirectParams d{};
  d.src = src, d.w = w, d.bias = bias, d.out = out, d.total = total;
  d.C = int(s.C), d.H = int(s.H), d.W = int(s.W), d.K = int(s.K), d.P = int(s.P), d.Q = int(s.Q);
  d.R = int(s.R), d.S = int(s.S), d.Kg = int(s.K / s.G);
  d.sh = int(s.stride_h), d.sw = int(s.stride_w), d.pt = int(s.pad_h), d.pl = int(s.pad_w);
  d.dh = int(s.dil_h), d.dw = int(s.dil_w);
  return d;
}

void check_dtype(DType dt) {
  BM_CHECK(dt == DType::f32 || dt == DType::f64, "conv2d: dtype must be float32 or float64");
}

// How dW's N*P*Q reduction is split: enough blocks to fill a large GPU (about 512 with the fp32
// tile), at least 16 tiles of 16 rows per split. Depends on the shape only, so the workspace
// size and the summation order are the same on every GPU and for both dtypes.
struct WgradPlan {
  int splits, tiles_per_split, ktiles;
};

WgradPlan plan_wgrad(const Conv2dShape& s) {
  const int64_t Kg = s.K / s.G, Ncol = (s.C / s.G) * s.R * s.S;
  const int64_t npq = s.N * s.P * s.Q;
  const int64_t ktiles = cdiv(npq, 16);
  const int64_t col_tiles = cdiv(Ncol, 128);
  const int64_t bm = pick_bm(Kg, col_tiles * s.G);
  const int64_t blocks = s.G * cdiv(Kg, bm) * col_tiles;
  int64_t splits = std::min(cdiv(512, blocks), std::max<int64_t>(1, ktiles / 16));
  splits = std::clamp<int64_t>(splits, 1, kMaxGrid);
  const int64_t tps = std::max<int64_t>(1, cdiv(ktiles, splits));
  splits = std::max<int64_t>(1, cdiv(ktiles, tps));
  return {static_cast<int>(splits), static_cast<int>(tps), static_cast<int>(ktiles)};
}

template <class Cfg>
void launch_wgrad(WgradParams p, int64_t G, int splits, cudaStream_t stream) {
  const int64_t gx = cdiv(p.Ncol, Cfg::BN), mtiles = cdiv(p.M, Cfg::BM);
  BM_CHECK(mtiles <= kMaxGrid, "conv2d_backward: too many output channels per group (", p.M, ")");
  p.mtiles = static_cast<int>(mtiles);
  const int64_t gchunk = kMaxGrid / mtiles;
  auto kern = &conv2d_wgrad_kernel<Cfg>;
  for (int64_t g0 = 0; g0 < G; g0 += gchunk) {
    p.g0 = static_cast<int>(g0);
    const int64_t ng = std::min(gchunk, G - g0);
    const dim3 grid(static_cast<unsigned>(gx), static_cast<unsigned>(ng * mtiles),
                    static_cast<unsigned>(splits));
    kern<<<grid, Cfg::kThreads, 0, stream>>>(p);
    BM_CUDA_CHECK_LAUNCH();
  }
}

template <typename T>
void launch_wgrad_tail(const ReduceParams& rp, const BiasGradParams& bp, bool reduce, bool bias,
                       cudaStream_t stream) {
  if (reduce) {
    const dim3 grid(conv_common::grid_for(rp.total, 256));
    auto kern = &conv2d_wgrad_reduce_kernel<T>;
    kern<<<grid, 256, 0, stream>>>(rp);
    BM_CUDA_CHECK_LAUNCH();
  }
  if (bias) {
    const dim3 grid(static_cast<unsigned>(bp.K));
    auto kern = &conv2d_bias_grad_kernel<T>;
    kern<<<grid, kBiasThreads, 0, stream>>>(bp);
    BM_CUDA_CHECK_LAUNCH();
  }
}

}  // namespace

void conv2d_check_shape(const Conv2dShape& s) {
  BM_CHECK(s.N >= 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.K > 0 && s.R > 0 && s.S > 0,
           "conv2d: sizes must be positive (N=", s.N, " C=", s.C, " H=", s.H, " W=", s.W,
           " K=", s.K, " R=", s.R, " S=", s.S, ")");
  BM_CHECK(s.G > 0 && s.C % s.G == 0 && s.K % s.G == 0, "conv2d: groups=", s.G,
           " must divide C=", s.C, " and K=", s.K);
  BM_CHECK(s.stride_h > 0 && s.stride_w > 0 && s.dil_h > 0 && s.dil_w > 0,
           "conv2d: stride and dilation must be positive");
  BM_CHECK(s.pad_h >= 0 && s.pad_w >= 0, "conv2d: padding must be non-negative");
  BM_CHECK(s.P > 0 && s.Q > 0, "conv2d: empty output (P=", s.P, ", Q=", s.Q, ")");
  BM_CHECK(s.H < kMaxI32 / 4 && s.W < kMaxI32 / 4 && s.P < kMaxI32 / 4 && s.Q < kMaxI32 / 4 &&
               s.R < kMaxI32 / 4 && s.S < kMaxI32 / 4 && s.stride_h < kMaxI32 / 4 &&
               s.stride_w < kMaxI32 / 4 && s.dil_h < kMaxI32 / 4 && s.dil_w < kMaxI32 / 4 &&
               s.pad_h < kMaxI32 / 4 && s.pad_w < kMaxI32 / 4,
           "conv2d: a size, stride, padding or dilation is too large for the CUDA kernels");
  const int64_t last_h = (s.P - 1) * s.stride_h + s.dil_h * (s.R - 1) + 1;
  const int64_t last_w = (s.Q - 1) * s.stride_w + s.dil_w * (s.S - 1) + 1;
  BM_CHECK(last_h <= s.H + 2 * s.pad_h + s.dil_h * (s.R - 1) &&
               last_w <= s.W + 2 * s.pad_w + s.dil_w * (s.S - 1),
           "conv2d: output size (", s.P, ", ", s.Q, ") too large for the input (H=", s.H, ", W=",
           s.W, ")");
  // 32-bit indexing inside the kernels: one image, one dy image, the weights and the pixel
  // counts of the GEMMs stay below 2^31 (image offsets are 64-bit).
  const int64_t Cg = s.C / s.G;
  BM_CHECK(s.C * s.H * s.W < kMaxI32 && s.K * s.P * s.Q < kMaxI32 && s.K * Cg * s.R * s.S < kMaxI32 &&
               s.N * s.P * s.Q < kMaxI32 && s.N * s.H * s.W < kMaxI32,
           "conv2d: tensors too large for the CUDA kernels' 32-bit indexing (x (", s.N, ", ", s.C,
           ", ", s.H, ", ", s.W, "), y (", s.N, ", ", s.K, ", ", s.P, ", ", s.Q, "))");
  BM_CHECK(s.N * s.P * s.Q + 16 * 128 < kMaxI32 && s.N * s.H * s.W + 16 * 128 < kMaxI32,
           "conv2d: too many pixels for the CUDA kernels");
}

void launch_conv2d_forward(const Conv2dShape& s, DType dt, const void* x, const void* w,
                           const void* b, void* y, std::uintptr_t stream_ptr) {
  conv2d_check_shape(s);
  check_dtype(dt);
  if (s.N == 0) return;
  conv_common::check_device_ptr(x, "conv2d", "x");
  conv_common::check_device_ptr(w, "conv2d", "weight");
  if (b) conv_common::check_device_ptr(b, "conv2d", "bias");
  conv_common::check_device_ptr(y, "conv2d", "out");
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t Cg = s.C / s.G, Kg = s.K / s.G, RS = s.R * s.S, PQ = s.P * s.Q;
  if (Cg == 1 && Kg <= 4) {  // depthwise: a 32-row tile would multiply mostly zeros
    const DirectParams d = direct_params(s, x, w, b, y, s.N * s.K * PQ);
    if (dt == DType::f32) launch_direct<float>(d, true, stream);
    else launch_direct<double>(d, true, stream);
    return;
  }
  IgemmParams p{};
  p.a = w, p.b = x, p.bias = b, p.out = y;
  p.M = int(Kg);
  p.npix = int(s.N * PQ), p.HoWo = int(PQ), p.Wo = int(s.Q);
  p.Cr = int(Cg), p.Rr = int(s.R), p.Sr = int(s.S), p.Kred = int(Cg * RS);
  p.a_gs = Kg * Cg * RS, p.a_ms = int(Cg * RS), p.a_cs = int(RS), p.S = int(s.S);
  p.r0 = 0, p.rst = 1, p.s0 = 0, p.sst = 1;
  p.b_gs = Cg * s.H * s.W, p.b_ns = s.C * s.H * s.W, p.b_cs = int(s.H * s.W);
  p.Hb = int(s.H), p.Wb = int(s.W);
  p.mul_h = int(s.stride_h), p.mul_w = int(s.stride_w);
  p.off_h = -int(s.pad_h), p.off_w = -int(s.pad_w);
  p.tap_h = int(s.dil_h), p.tap_w = int(s.dil_w);
  p.o_gs = Kg * PQ, p.o_ns = s.K * PQ, p.o_cs = int(PQ), p.o_off = 0, p.o_hs = int(s.Q), p.o_ws = 1;
  p.bias_gs = int(Kg);
  launch_igemm_any(p, s.G, dt, stream);
}

void launch_conv2d_backward_data(const Conv2dShape& s, DType dt, const void* dy, const void* w,
                                 void* dx, std::uintptr_t stream_ptr) {
  conv2d_check_shape(s);
  check_dtype(dt);
  if (s.N == 0) return;
  conv_common::check_device_ptr(dy, "conv2d_backward", "dy");
  conv_common::check_device_ptr(w, "conv2d_backward", "weight");
  conv_common::check_device_ptr(dx, "conv2d_backward", "dx");
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t Cg = s.C / s.G, Kg = s.K / s.G, RS = s.R * s.S, PQ = s.P * s.Q, HW = s.H * s.W;
  if (Cg == 1) {  // one row per group: the direct loop beats a 32-row tile
    const DirectParams d = direct_params(s, dy, w, nullptr, dx, s.N * s.C * HW);
    if (dt == DType::f32) launch_direct<float>(d, false, stream);
    else launch_direct<double>(d, false, stream);
    return;
  }
  const int64_t sh = s.stride_h, sw = s.stride_w;
  // Taps of one dimension reaching phase ph: r = r0 + j*st (j < n); dy index = i + base - j*step.
  struct Taps {
    int64_t r0 = 0, st = 1, n = 0, base = 0, step = 0;
  };
  const auto taps = [](int64_t ph, int64_t stride, int64_t pad, int64_t dil, int64_t R) {
    Taps t;
    const int64_t st = stride / std::gcd(stride, dil);
    for (int64_t r = 0; r < std::min(R, st); ++r)
      if (((ph + pad - r * dil) % stride + stride) % stride == 0) {
        t.r0 = r, t.st = st, t.n = (R - 1 - r) / st + 1;
        t.base = (ph + pad - r * dil) / stride;  // exact
        t.step = st * dil / stride;
        break;
      }
    return t;
  };
  for (int64_t ph = 0; ph < std::min(sh, s.H); ++ph)
    for (int64_t pw = 0; pw < std::min(sw, s.W); ++pw) {
      const Taps th = taps(ph, sh, s.pad_h, s.dil_h, s.R), tw = taps(pw, sw, s.pad_w, s.dil_w, s.S);
      const int64_t Hph = cdiv(s.H - ph, sh), Wph = cdiv(s.W - pw, sw);
      IgemmParams p{};
      p.a = w, p.b = dy, p.bias = nullptr, p.out = dx;
      p.M = int(Cg);
      p.npix = int(s.N * Hph * Wph), p.HoWo = int(Hph * Wph), p.Wo = int(Wph);
      p.Cr = int(Kg), p.Rr = int(th.n), p.Sr = int(tw.n), p.Kred = int(Kg * th.n * tw.n);
      p.a_gs = Kg * Cg * RS, p.a_ms = int(RS), p.a_cs = int(Cg * RS), p.S = int(s.S);
      p.r0 = int(th.r0), p.rst = int(th.st), p.s0 = int(tw.r0), p.sst = int(tw.st);
      p.b_gs = Kg * PQ, p.b_ns = s.K * PQ, p.b_cs = int(PQ), p.Hb = int(s.P), p.Wb = int(s.Q);
      p.mul_h = 1, p.mul_w = 1, p.off_h = int(th.base), p.off_w = int(tw.base);
      p.tap_h = -int(th.step), p.tap_w = -int(tw.step);
      p.o_gs = Cg * HW, p.o_ns = s.C * HW, p.o_cs = int(HW), p.o_off = int(ph * s.W + pw);
      p.o_hs = int(sh * s.W), p.o_ws = int(sw);
      launch_igemm_any(p, s.G, dt, stream);
    }
}

int64_t conv2d_backward_weight_workspace(const Conv2dShape& s) {
  conv2d_check_shape(s);
  const WgradPlan plan = plan_wgrad(s);
  return plan.splits > 1 ? plan.splits * s.K * (s.C / s.G) * s.R * s.S : 0;
}

void launch_conv2d_backward_weight(const Conv2dShape& s, DType dt, const void* dy, const void* x,
                                   void* dw, void* db, void* workspace, int64_t workspace_elems,
                                   std::uintptr_t stream_ptr) {
  conv2d_check_shape(s);
  check_dtype(dt);
  const WgradPlan plan = plan_wgrad(s);
  const int64_t need = plan.splits > 1 ? plan.splits * s.K * (s.C / s.G) * s.R * s.S : 0;
  if (dw && need > 0)
    BM_CHECK(workspace_elems >= need, "conv2d_backward: workspace has ", workspace_elems,
             " elements, needs ", need, " (conv2d_backward_weight_workspace)");
  if (!dw && !db) return;
  if (s.N > 0) {
    conv_common::check_device_ptr(dy, "conv2d_backward", "dy");
    if (dw) conv_common::check_device_ptr(x, "conv2d_backward", "x");
  }
  if (dw) conv_common::check_device_ptr(dw, "conv2d_backward", "dw");
  if (db) conv_common::check_device_ptr(db, "conv2d_backward", "db");
  if (dw && need > 0) conv_common::check_device_ptr(workspace, "conv2d_backward", "workspace");
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t Cg = s.C / s.G, Kg = s.K / s.G, RS = s.R * s.S, PQ = s.P * s.Q, HW = s.H * s.W;
  const int64_t Ncol = Cg * RS;
  if (dw) {
    WgradParams p{};
    p.dy = dy, p.x = x, p.out = need > 0 ? workspace : dw;
    p.M = int(Kg), p.Ncol = int(Ncol);
    p.npq = int(s.N * PQ), p.PQ = int(PQ), p.Q = int(s.Q);
    p.H = int(s.H), p.W = int(s.W), p.sh = int(s.stride_h), p.sw = int(s.stride_w);
    p.pt = int(s.pad_h), p.pl = int(s.pad_w), p.dh = int(s.dil_h), p.dw = int(s.dil_w);
    p.RS = int(RS), p.S = int(s.S);
    p.dy_ns = s.K * PQ, p.dy_gs = Kg * PQ, p.x_ns = s.C * HW, p.x_gs = Cg * HW;
    p.out_zs = s.K * Ncol, p.out_gs = Kg * Ncol;
    p.tiles_per_split = plan.tiles_per_split, p.ktiles = plan.ktiles;
    const int64_t col_tiles = cdiv(Ncol, 128) * s.G;
    with_cfg(dt, Kg, col_tiles, [&](auto tag) {
      launch_wgrad<typename decltype(tag)::type>(p, s.G, plan.splits, stream);
    });
  }
  ReduceParams rp{workspace, dw, s.K * Ncol, plan.splits};
  BiasGradParams bp{dy, db, int(s.N), int(s.K), int(PQ)};
  const bool reduce = dw && need > 0, bias = db != nullptr;
  if (dt == DType::f32) launch_wgrad_tail<float>(rp, bp, reduce, bias, stream);
  else launch_wgrad_tail<double>(rp, bp, reduce, bias, stream);
}

}  // namespace bm::cuda
