// RNN / LSTM / GRU layer forward and backward through time on the GPU (see rnn.h for the API,
// layouts and the overall plan).
//
// Kernels:
//   rnn_step_kernel<T, Tile, NG, Epi>  one time step: out[m][g][j] = sum_k A[m][k] W(g, k, j) for a
//       BM x BJ tile of (batch row m, hidden unit j) and all NG gate blocks g of each unit, then
//       Epi (the gate math) on each (m, j) in the thread that holds its NG sums — no round trip
//       of the recurrent product through global memory, one launch per step.
//       Forward  (FwdEpi, NG = G):  A = h_{t-1} (B, H), W(g, k, j) = W_hh[(g H + j) H + k].
//       Backward (BwdEpi, NG = 1):  A = dG_hh of the step processed before (B, G H),
//                                   W(0, k, j) = W_hh[k H + j]; K = 0 at the first step.
//       Each thread owns TM x TJ (m, j) pairs, rows ty + TY i and columns tx + TX j (so a warp's
//       shared-memory reads of W are consecutive words); K is staged BK = 16 at a time through
//       shared memory (A transposed, W as [g][k][j], rows padded by one element). Tiles:
//         TileSmallB 8 x 32 (B <= 8), TileMid 16 x 16, TileBig 32 x 32 (2 x 2 per thread) when
//         that still gives >= 128 blocks. The choice is a first guess, not measured on a GPU;
//         BIGMODEL_CUDA_RNN_TILE forces one (pick_tile).
//   rnn_bias_grad_kernel<T>  column sums of dG (rows, G H) in a fixed order: 32 columns per
//       block, 8 row-strided partial sums per column, added in order (deterministic).
// The input projection and dx, dW_ih, dW_hh are bm::cuda::launch_gemm_forward calls (the
// `precision` of RnnDims applies to them; the recurrence is always computed in T).
// Math: expf / tanhf (exp / tanh for double), the accurate CUDA functions, not the fast
// intrinsics: float32 results stay within 2e-5 of the float64 reference like the CPU kernels.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <string>

#include "cuda/cuda_check.cuh"
#include "cuda/rnn.h"

namespace bm::cuda {
namespace rnn_detail {

// ---- device math -------------------------------------------------------------------------------

__device__ __forceinline__ float dev_exp(float x) { return expf(x); }
__device__ __forceinline__ double dev_exp(double x) { return exp(x); }
__device__ __forceinline__ float dev_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double dev_tanh(double x) { return tanh(x); }
template <typename T>
__device__ __forceinline__ T sigm(T x) { return T(1) / (T(1) + dev_exp(-x)); }

// ---- fused step kernel -------------------------------------------------------------------------

template <int TX_, int TY_, int TM_, int TJ_>
struct RecTile {
  static constexpr int TX = TX_, TY = TY_, TM = TM_, TJ = TJ_;
  static constexpr int kThreads = TX * TY, BM = TY * TM, BJ = TX * TJ, BK = 16;
  static_assert(kThreads % 32 == 0, "whole warps");
};
using TileSmallB = RecTile<32, 8, 1, 1>;
using TileMid = RecTile<16, 16, 1, 1>;
using TileBig = RecTile<16, 16, 2, 2>;

// The recurrent product of one step: A (B, K) rows lda apart; W element (g, k, j) at
// W[g sg + k sk + j sj]; outputs for j < H.
template <typename T>
struct RecProduct {
  const T* A;
  long long lda;
  const T* W;
  long long sg, sk, sj;
  int B, H, K;
};

template <typename T, class Tile, int NG, class Epi>
__global__ void __launch_bounds__(Tile::kThreads) rnn_step_kernel(Epi p) {
  constexpr int BM = Tile::BM, BJ = Tile::BJ, BK = Tile::BK, TM = Tile::TM, TJ = Tile::TJ;
  constexpr int TX = Tile::TX, TY = Tile::TY, NT = Tile::kThreads;
  __shared__ T As[BK][BM + 1];      // [k][m]
  __shared__ T Ws[NG][BK][BJ + 1];  // [g][k][j]
  const RecProduct<T>& r = p.rec;
  const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
  const int j0 = blockIdx.x * BJ, m0 = blockIdx.y * BM;
  T acc[NG][TM][TJ];
#pragma unroll
  for (int g = 0; g < NG; ++g)
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int q = 0; q < TJ; ++q) acc[g][i][q] = T(0);

  // Forward W is contiguous along k, backward along j: consecutive threads walk that direction.
  const bool w_along_k = r.sk == 1;
  for (int k0 = 0; k0 < r.K; k0 += BK) {
    for (int e = tid; e < BM * BK; e += NT) {
      const int kk = e % BK, mm = e / BK, m = m0 + mm, k = k0 + kk;
      As[kk][mm] = (m < r.B && k < r.K) ? r.A[m * r.lda + k] : T(0);
    }
    for (int e = tid; e < NG * BK * BJ; e += NT) {
      int g, kk, jj;
      if (w_along_k) {
        kk = e % BK, jj = (e / BK) % BJ, g = e / (BK * BJ);
      } else {
        jj = e % BJ, kk = (e / BJ) % BK, g = e / (BJ * BK);
      }
      const int j = j0 + jj, k = k0 + kk;
      Ws[g][kk][jj] = (j < r.H && k < r.K) ? r.W[g * r.sg + k * r.sk + j * r.sj] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      T a[TM];
#pragma unroll
      for (int i = 0; i < TM; ++i) a[i] = As[kk][ty + TY * i];
#pragma unroll
      for (int g = 0; g < NG; ++g)
#pragma unroll
        for (int q = 0; q < TJ; ++q) {
          const T w = Ws[g][kk][tx + TX * q];
#pragma unroll
          for (int i = 0; i < TM; ++i) acc[g][i][q] += a[i] * w;
        }
    }
    __syncthreads();
  }

#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int q = 0; q < TJ; ++q) {
      const int m = m0 + ty + TY * i, j = j0 + tx + TX * q;
      if (m >= r.B || j >= r.H) continue;
      T v[NG];
#pragma unroll
      for (int g = 0; g < NG; ++g) v[g] = acc[g][i][q];
      p.apply(m, j, v);
    }
}

// ---- forward step epilogue ---------------------------------------------------------------------

// Gate math of one forward step at (batch row m, hidden unit j), given v[g] = (h_{t-1} W_hh^T)
// at column g H + j. Same formulas and saved layout as csrc/cpu/rnn_gates.h step_fwd.
template <typename T, int NG>
struct FwdEpi {
  RecProduct<T> rec;  // A = h_{t-1}
  int mode, H;
  long long t;
  const int64_t* lengths;
  const T* xg;        // input projection row of (t, b = 0); may be sv itself (read first)
  long long xg_rs;
  const T *b_ih, *b_hh;
  const T* cprev;     // LSTM c_{t-1}
  long long cprev_rs;
  T* sv;              // saved activations (null: inference)
  long long sv_rs;
  T* hcopy;           // first training step: h_{t-1} (= h0) into the saved h rows
  long long hcopy_rs;
  T* hout;            // h_t (the state; carried when inactive)
  long long hout_rs;
  T* cout;            // LSTM c_t (may be cprev itself: same element, read first)
  long long cout_rs;
  T* cfinal;          // LSTM, training, last step: c_n (B, H)
  T* y;               // output row (zero when inactive)
  long long y_rs;

  __device__ __forceinline__ void apply(int m, int j, const T (&v)[NG]) const {
    const T hp = rec.A[m * rec.lda + j];
    if (hcopy) hcopy[m * hcopy_rs + j] = hp;
    const bool active = lengths == nullptr || t < lengths[m];
    T h;
    if (!active) {
      h = hp;
      if constexpr (NG == 4) {
        const T c = cprev[m * cprev_rs + j];
        cout[m * cout_rs + j] = c;
        if (cfinal) cfinal[static_cast<long long>(m) * H + j] = c;
      }
      hout[m * hout_rs + j] = h;
      y[m * y_rs + j] = T(0);
      return;
    }
    const T* x = xg + m * xg_rs;
    T* s = sv ? sv + m * sv_rs : nullptr;
    if constexpr (NG == 1) {
      const T pre = x[j] + v[0] + b_ih[j] + b_hh[j];
      h = mode == 0 ? dev_tanh(pre) : (pre > T(0) ? pre : T(0));
      if (s) s[j] = h;
    } else if constexpr (NG == 4) {
      const T i = sigm(x[j] + v[0] + b_ih[j] + b_hh[j]);
      const T f = sigm(x[H + j] + v[1] + b_ih[H + j] + b_hh[H + j]);
      const T g = dev_tanh(x[2 * H + j] + v[2] + b_ih[2 * H + j] + b_hh[2 * H + j]);
      const T o = sigm(x[3 * H + j] + v[3] + b_ih[3 * H + j] + b_hh[3 * H + j]);
      const T c = f * cprev[m * cprev_rs + j] + i * g;
      h = o * dev_tanh(c);
      if (s) s[j] = i, s[H + j] = f, s[2 * H + j] = g, s[3 * H + j] = o;
      cout[m * cout_rs + j] = c;
      if (cfinal) cfinal[static_cast<long long>(m) * H + j] = c;
    } else {  // GRU: r scales (W_hn h + b_hn), as PyTorch
      const T r = sigm(x[j] + v[0] + b_ih[j] + b_hh[j]);
      const T z = sigm(x[H + j] + v[1] + b_ih[H + j] + b_hh[H + j]);
      const T ghn = v[2] + b_hh[2 * H + j];
      const T n = dev_tanh(x[2 * H + j] + b_ih[2 * H + j] + r * ghn);
      h = (T(1) - z) * n + z * hp;
      if (s) s[j] = r, s[H + j] = z, s[2 * H + j] = n, s[3 * H + j] = ghn;
    }
    hout[m * hout_rs + j] = h;
    y[m * y_rs + j] = h;
  }
};

// ---- backward step epilogue --------------------------------------------------------------------

// At (m, j): dh = v[0] (= dG_hh[t+1] W_hh) + dh_in (the direct part), then the gate gradients
// of step t (csrc/cpu/rnn_gates.h step_bwd). final_: only dh0 = dh.
template <typename T>
struct BwdEpi {
  RecProduct<T> rec;
  int mode, H, G;
  long long t;
  const int64_t* lengths;
  bool final_;
  const T* dh_in;   // (B, H) direct part of dL/dh_t; null = zero (no grad_h_n)
  T* dh_out;        // (B, H) direct part of dL/dh_{t-1} (final_: dh0); may be dh_in itself
  const T* dc_in;   // LSTM (B, H) dL/dc_t; null = zero
  T* dc_out;        // LSTM (B, H) dL/dc_{t-1}; may be dc_in itself
  const T* sv;
  long long sv_rs;
  const T* hp;      // GRU h_{t-1}
  long long hp_rs;
  const T* cprev;   // LSTM c_{t-1}
  long long cprev_rs;
  const T* cc;      // LSTM c_t
  long long cc_rs;
  const T* dy;
  long long dy_rs;
  T* dg;            // gate pre-activation gradients, input side
  long long dg_rs;
  T* dgh;           // GRU recurrent side (n block scaled by r); == dg otherwise
  long long dgh_rs;

  __device__ __forceinline__ void apply(int m, int j, const T (&v)[1]) const {
    const long long e = static_cast<long long>(m) * H + j;
    const T dh = v[0] + (dh_in ? dh_in[e] : T(0));
    if (final_) {
      dh_out[e] = dh;
      return;
    }
    const T dcin = (mode == 2 && dc_in) ? dc_in[e] : T(0);
    T* g = dg + m * dg_rs;
    if (!(lengths == nullptr || t < lengths[m])) {  // past the end: dh and dc pass through
      dh_out[e] = dh;
      if (mode == 2) dc_out[e] = dcin;
      for (int q = 0; q < G; ++q) g[q * H + j] = T(0);
      if (mode == 3)
        for (int q = 0; q < G; ++q) dgh[m * dgh_rs + q * H + j] = T(0);
      return;
    }
    const T d = dh + dy[m * dy_rs + j];
    const T* s = sv + m * sv_rs;
    T dhp = T(0);
    switch (mode) {
      case 0: {
        const T h = s[j];
        g[j] = d * (T(1) - h * h);
        break;
      }
      case 1:
        g[j] = s[j] > T(0) ? d : T(0);
        break;
      case 2: {
        const T i = s[j], f = s[H + j], gg = s[2 * H + j], o = s[3 * H + j];
        const T tc = dev_tanh(cc[m * cc_rs + j]);
        const T dct = dcin + d * o * (T(1) - tc * tc);
        g[j] = dct * gg * i * (T(1) - i);
        g[H + j] = dct * cprev[m * cprev_rs + j] * f * (T(1) - f);
        g[2 * H + j] = dct * i * (T(1) - gg * gg);
        g[3 * H + j] = d * tc * o * (T(1) - o);
        dc_out[e] = dct * f;
        break;
      }
      default: {
        const T r = s[j], z = s[H + j], n = s[2 * H + j], ghn = s[3 * H + j];
        const T dnp = d * (T(1) - z) * (T(1) - n * n);
        const T dzp = d * (hp[m * hp_rs + j] - n) * z * (T(1) - z);
        const T drp = dnp * ghn * r * (T(1) - r);
        g[j] = drp, g[H + j] = dzp, g[2 * H + j] = dnp;
        T* gh = dgh + m * dgh_rs;
        gh[j] = drp, gh[H + j] = dzp, gh[2 * H + j] = dnp * r;
        dhp = d * z;
        break;
      }
    }
    dh_out[e] = dhp;
  }
};

// ---- bias gradients ----------------------------------------------------------------------------

template <typename T>
struct ColSum {
  const T* src;  // (rows, cols), rows ld apart
  long long rows, cols, ld;
  T* dst;        // (cols)
  T* dst2;       // a second copy or null
};

constexpr int kColThreads = 256, kColCols = 32, kColParts = kColThreads / kColCols;

template <typename T>
__global__ void __launch_bounds__(kColThreads) rnn_bias_grad_kernel(ColSum<T> p) {
  __shared__ T part[kColParts][kColCols];
  const int c = threadIdx.x % kColCols, q = threadIdx.x / kColCols;
  const long long col = static_cast<long long>(blockIdx.x) * kColCols + c;
  T s = T(0);
  if (col < p.cols)
    for (long long r = q; r < p.rows; r += kColParts) s += p.src[r * p.ld + col];
  part[q][c] = s;
  __syncthreads();
  if (q == 0 && col < p.cols) {
    T total = part[0][c];
    for (int k = 1; k < kColParts; ++k) total += part[k][c];
    p.dst[col] = total;
    if (p.dst2) p.dst2[col] = total;
  }
}

// ---- host side ---------------------------------------------------------------------------------

enum class TileKind { small_b, mid, big };

// BIGMODEL_CUDA_RNN_TILE=small_b|mid|big forces a variant (tests run each one at small sizes;
// a GPU session can time them), read on every call like BIGMODEL_ISA's run-time switch.
TileKind pick_tile(int64_t B, int64_t H) {
  if (const char* env = std::getenv("BIGMODEL_CUDA_RNN_TILE"); env && *env) {
    const std::string v = env;
    if (v == "small_b") return TileKind::small_b;
    if (v == "mid") return TileKind::mid;
    if (v == "big") return TileKind::big;
    BM_CHECK(false, "rnn: BIGMODEL_CUDA_RNN_TILE must be small_b, mid or big, got '", v, "'");
  }
  if (B <= TileSmallB::BM) return TileKind::small_b;
  const int64_t big = ((B + TileBig::BM - 1) / TileBig::BM) * ((H + TileBig::BJ - 1) / TileBig::BJ);
  return big >= 128 ? TileKind::big : TileKind::mid;
}

template <typename T, class Tile, int NG, class Epi>
void launch_step(const Epi& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.rec.H + Tile::BJ - 1) / Tile::BJ),
                  static_cast<unsigned>((p.rec.B + Tile::BM - 1) / Tile::BM));
  rnn_step_kernel<T, Tile, NG, Epi><<<grid, Tile::kThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

template <typename T, int NG, class Epi>
void launch_step_tile(TileKind k, const Epi& p, cudaStream_t stream) {
  switch (k) {
    case TileKind::small_b: return launch_step<T, TileSmallB, NG>(p, stream);
    case TileKind::mid: return launch_step<T, TileMid, NG>(p, stream);
    default: return launch_step<T, TileBig, NG>(p, stream);
  }
}

template <typename T>
void launch_colsum(const ColSum<T>& p, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((p.cols + kColCols - 1) / kColCols));
  rnn_bias_grad_kernel<T><<<grid, kColThreads, 0, stream>>>(p);
  BM_CUDA_CHECK_LAUNCH();
}

void check_dims(const RnnDims& d) {
  BM_CHECK(d.mode >= 0 && d.mode <= 3, "rnn: unknown mode ", d.mode);
  BM_CHECK(d.T >= 1 && d.B >= 1 && d.I >= 1 && d.H >= 1, "rnn: sizes must be positive, got T=",
           d.T, " B=", d.B, " I=", d.I, " H=", d.H);
  constexpr int64_t kMax = std::numeric_limits<int>::max();
  BM_CHECK(4 * d.H <= kMax && d.I <= kMax && d.T * d.B <= kMax,
           "rnn: sizes too large for the CUDA kernels, got T=", d.T, " B=", d.B, " I=", d.I,
           " H=", d.H);
  BM_CHECK(d.B <= int64_t(65535) * TileMid::BM, "rnn: batch ", d.B, " exceeds the grid limit (",
           int64_t(65535) * TileMid::BM, ")");
  BM_CHECK(d.dtype == DType::f32 || d.dtype == DType::f64,
           "rnn: the CUDA kernels take float32 or float64");
  BM_CHECK(d.dtype == DType::f32 || d.precision == Precision::native,
           "rnn: float64 supports only precision 'native'");
  BM_CHECK(d.precision == Precision::native || d.precision == Precision::tf32 ||
               d.precision == Precision::bf16,
           "rnn: precision must be 'native', 'tf32' or 'bf16'");
}

// A pointer the kernels will dereference must be non-null device memory of the current device
// (a host pointer would fault and poison the context; same check as the GEMM's).
void check_ptr(const void* p, const char* name) {
  BM_CHECK(p != nullptr, "rnn: ", name, " is a null pointer");
  int device = 0;
  BM_CUDA_CHECK(cudaGetDevice(&device));
  cudaPointerAttributes attr{};
  BM_CUDA_CHECK(cudaPointerGetAttributes(&attr, p));
  BM_CHECK(attr.type != cudaMemoryTypeUnregistered && attr.devicePointer != nullptr, "rnn: ", name,
           " (", p, ") is not memory the GPU can access");
  BM_CHECK(attr.type != cudaMemoryTypeDevice || attr.device == device, "rnn: ", name,
           " is on device ", attr.device, " but the current device is ", device);
}

void check_opt_ptr(const void* p, const char* name) {
  if (p) check_ptr(p, name);
}

template <typename T>
DType dtype_of() { return sizeof(T) == 8 ? DType::f64 : DType::f32; }

// C (M, N) = A (M, K) B (K, N) (+ beta C) with element strides, on `stream`.
template <typename T>
void gemm(const RnnDims& d, int64_t M, int64_t N, int64_t K, const T* A, int64_t rs_a,
          int64_t cs_a, const T* B, int64_t rs_b, int64_t cs_b, T* C, int64_t rs_c, double beta,
          std::uintptr_t stream) {
  GemmProblem g;
  g.batch = 1, g.M = M, g.N = N, g.K = K;
  g.A = A, g.rs_a = rs_a, g.cs_a = cs_a;
  g.B = B, g.rs_b = rs_b, g.cs_b = cs_b;
  g.C = C, g.rs_c = rs_c, g.cs_c = 1;
  g.in_dtype = g.out_dtype = dtype_of<T>();
  g.alpha = 1.0, g.beta = beta;
  g.precision = d.precision;
  launch_gemm_forward(g, stream);
}

template <typename T, int NG>
void forward_impl(const RnnForwardArgs& a, std::uintptr_t stream_ptr) {
  const RnnDims& d = a.d;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int64_t T_ = d.T, B = d.B, I = d.I, H = d.H, GH = NG * H;
  const int64_t S = rnn_saved_width(d.mode) * H, rows = T_ * B;
  const int64_t rt = d.batch_first ? 1 : B, rb = d.batch_first ? T_ : 1;
  const bool train = a.sv != nullptr, lstm = NG == 4;
  const auto row = [&](int64_t t) { return t * rt; };  // row of (t, b = 0)
  T* sv = static_cast<T*>(a.sv);
  T* hp = static_cast<T*>(a.hp);
  T* cs = static_cast<T*>(a.cs);
  T* work = static_cast<T*>(a.work);
  const T* h0 = static_cast<const T*>(a.h0);
  const T* c0 = static_cast<const T*>(a.c0);
  T* hn = static_cast<T*>(a.hn);
  T* cn = static_cast<T*>(a.cn);
  T* out = static_cast<T*>(a.out);

  // Input projection of every step: one GEMM. Training writes it into sv (rows S >= GH apart),
  // which the step kernel overwrites in place with the activations (as the CPU kernel does).
  T* xg = train ? sv : work;
  const int64_t ldg = train ? S : GH;
  gemm<T>(d, rows, GH, I, static_cast<const T*>(a.x), I, 1, static_cast<const T*>(a.w_ih), 1, I,
          xg, ldg, 0.0, stream_ptr);
  T* hbuf = train ? nullptr : work + rows * GH;  // inference: h ping-pong (2 x B x H)

  const TileKind tile = pick_tile(B, H);
  for (int64_t s = 0; s < T_; ++s) {
    const int64_t t = d.reverse ? T_ - 1 - s : s;
    const int64_t nxt = d.reverse ? t - 1 : t + 1, prv = d.reverse ? t + 1 : t - 1;
    const bool last = s == T_ - 1;
    FwdEpi<T, NG> p{};
    p.rec.W = static_cast<const T*>(a.w_hh);
    p.rec.sg = H * H, p.rec.sk = 1, p.rec.sj = H;
    p.rec.B = static_cast<int>(B), p.rec.H = static_cast<int>(H), p.rec.K = static_cast<int>(H);
    if (s == 0) {
      p.rec.A = h0, p.rec.lda = H;
    } else if (train) {
      p.rec.A = hp + row(t) * H, p.rec.lda = rb * H;
    } else {
      p.rec.A = hbuf + ((s - 1) & 1) * B * H, p.rec.lda = H;
    }
    p.mode = d.mode, p.H = static_cast<int>(H), p.t = t, p.lengths = a.lengths;
    p.xg = xg + row(t) * ldg, p.xg_rs = rb * ldg;
    p.b_ih = static_cast<const T*>(a.b_ih), p.b_hh = static_cast<const T*>(a.b_hh);
    if (train) {
      p.sv = sv + row(t) * S, p.sv_rs = rb * S;
      if (s == 0) p.hcopy = hp + row(t) * H, p.hcopy_rs = rb * H;
    }
    if (last) {
      p.hout = hn, p.hout_rs = H;
    } else if (train) {
      p.hout = hp + row(nxt) * H, p.hout_rs = rb * H;
    } else {
      p.hout = hbuf + (s & 1) * B * H, p.hout_rs = H;
    }
    if (lstm) {
      if (s == 0) {
        p.cprev = c0, p.cprev_rs = H;
      } else if (train) {
        p.cprev = cs + row(prv) * H, p.cprev_rs = rb * H;
      } else {
        p.cprev = cn, p.cprev_rs = H;  // updated in place: each element by its own thread
      }
      if (train) {
        p.cout = cs + row(t) * H, p.cout_rs = rb * H;
        if (last) p.cfinal = cn;
      } else {
        p.cout = cn, p.cout_rs = H;
      }
    }
    p.y = out + row(t) * a.ld_out, p.y_rs = rb * a.ld_out;
    launch_step_tile<T, NG>(tile, p, stream);
  }
}

template <typename T>
void backward_impl(const RnnBackwardArgs& a, std::uintptr_t stream_ptr) {
  const RnnDims& d = a.d;
  cudaStream_t stream = reinterpret_cast<cudaStream_t>(stream_ptr);
  const int G = rnn_gates(d.mode);
  const int64_t T_ = d.T, B = d.B, I = d.I, H = d.H, GH = G * H;
  const int64_t S = rnn_saved_width(d.mode) * H, rows = T_ * B;
  const int64_t rt = d.batch_first ? 1 : B, rb = d.batch_first ? T_ : 1;
  const bool lstm = d.mode == 2, gru = d.mode == 3;
  const auto row = [&](int64_t t) { return t * rt; };
  const T* sv = static_cast<const T*>(a.sv);
  const T* hp = static_cast<const T*>(a.hp);
  const T* cs = static_cast<const T*>(a.cs);
  const T* w_hh = static_cast<const T*>(a.w_hh);
  const T* dout = static_cast<const T*>(a.dout);
  T* work = static_cast<T*>(a.work);
  T* dg = work;
  T* dgh = gru ? work + rows * GH : dg;
  T* dh = work + (gru ? 2 : 1) * rows * GH;  // (B, H) direct part of dL/dh, updated in place
  T* dc = dh + B * H;                          // (B, H) LSTM dL/dc, updated in place

  const TileKind tile = pick_tile(B, H);
  for (int64_t s = 0; s <= T_; ++s) {
    const bool final_ = s == T_;  // after the last gate step: dh0 = dh + dG_hh[first] W_hh
    const int64_t t = d.reverse ? s : T_ - 1 - s;  // the forward order reversed
    const int64_t before = d.reverse ? t - 1 : t + 1;  // step processed at s - 1
    BwdEpi<T> p{};
    p.rec.W = w_hh, p.rec.sg = 0, p.rec.sk = H, p.rec.sj = 1;
    p.rec.B = static_cast<int>(B), p.rec.H = static_cast<int>(H);
    p.rec.K = s == 0 ? 0 : static_cast<int>(GH);
    if (s > 0) p.rec.A = dgh + row(before) * GH, p.rec.lda = rb * GH;
    p.mode = d.mode, p.H = static_cast<int>(H), p.G = G, p.t = t, p.lengths = a.lengths;
    p.final_ = final_;
    p.dh_in = s == 0 ? static_cast<const T*>(a.dhn) : dh;
    if (final_) {
      p.dh_out = static_cast<T*>(a.dh0);
      launch_step_tile<T, 1>(tile, p, stream);
      break;
    }
    const bool first_fwd = t == (d.reverse ? T_ - 1 : 0);
    const int64_t prv = d.reverse ? t + 1 : t - 1;
    p.dh_out = dh;
    if (lstm) {
      p.dc_in = s == 0 ? static_cast<const T*>(a.dcn) : dc;
      p.dc_out = first_fwd ? static_cast<T*>(a.dc0) : dc;
      if (first_fwd) {
        p.cprev = static_cast<const T*>(a.c0), p.cprev_rs = H;
      } else {
        p.cprev = cs + row(prv) * H, p.cprev_rs = rb * H;
      }
      p.cc = cs + row(t) * H, p.cc_rs = rb * H;
    }
    p.sv = sv + row(t) * S, p.sv_rs = rb * S;
    p.hp = hp + row(t) * H, p.hp_rs = rb * H;
    p.dy = dout + row(t) * a.ld_dout, p.dy_rs = rb * a.ld_dout;
    p.dg = dg + row(t) * GH, p.dg_rs = rb * GH;
    p.dgh = dgh + row(t) * GH, p.dgh_rs = rb * GH;
    launch_step_tile<T, 1>(tile, p, stream);
  }

  // Whole-sequence products; rows of dG line up with rows of x and of the saved h.
  const T* x = static_cast<const T*>(a.x);
  const T* w_ih = static_cast<const T*>(a.w_ih);
  gemm<T>(d, rows, I, GH, dg, GH, 1, w_ih, I, 1, static_cast<T*>(a.dx), I,
          a.accumulate_dx ? 1.0 : 0.0, stream_ptr);
  gemm<T>(d, GH, I, rows, dg, 1, GH, x, I, 1, static_cast<T*>(a.dw_ih), I, 0.0, stream_ptr);
  gemm<T>(d, GH, H, rows, dgh, 1, GH, hp, H, 1, static_cast<T*>(a.dw_hh), H, 0.0, stream_ptr);
  ColSum<T> cp{dg, rows, GH, GH, static_cast<T*>(a.db_ih), gru ? nullptr : static_cast<T*>(a.db_hh)};
  launch_colsum<T>(cp, stream);
  if (gru) {
    ColSum<T> ch{dgh, rows, GH, GH, static_cast<T*>(a.db_hh), nullptr};
    launch_colsum<T>(ch, stream);
  }
}

}  // namespace rnn_detail

// ---- entry points ------------------------------------------------------------------------------

int64_t rnn_forward_workspace(const RnnDims& d, bool training) {
  if (training) return 0;
  return d.T * d.B * rnn_gates(d.mode) * d.H + 2 * d.B * d.H;
}

int64_t rnn_backward_workspace(const RnnDims& d) {
  return (d.mode == 3 ? 2 : 1) * d.T * d.B * rnn_gates(d.mode) * d.H + 2 * d.B * d.H;
}

void launch_rnn_layer_forward(const RnnForwardArgs& a, std::uintptr_t stream) {
  using namespace rnn_detail;
  const RnnDims& d = a.d;
  check_dims(d);
  const bool lstm = d.mode == 2, train = a.sv != nullptr;
  BM_CHECK(a.ld_out >= d.H, "rnn: output row length ", a.ld_out, " < H = ", d.H);
  BM_CHECK(!train || (a.hp && (!lstm || a.cs)), "rnn: saved gates, h (and c) go together");
  BM_CHECK(a.work_elems >= rnn_forward_workspace(d, train), "rnn: workspace has ", a.work_elems,
           " elements, needs ", rnn_forward_workspace(d, train));
  check_ptr(a.x, "x");
  check_ptr(a.h0, "h0");
  check_ptr(a.w_ih, "w_ih");
  check_ptr(a.w_hh, "w_hh");
  check_ptr(a.b_ih, "b_ih");
  check_ptr(a.b_hh, "b_hh");
  check_ptr(a.out, "out");
  check_ptr(a.hn, "hn");
  check_opt_ptr(a.lengths, "lengths");
  if (lstm) {
    check_ptr(a.c0, "c0");
    check_ptr(a.cn, "cn");
  }
  if (train) {
    check_ptr(a.sv, "saved gates");
    check_ptr(a.hp, "saved h");
    if (lstm) check_ptr(a.cs, "saved c");
  } else {
    check_ptr(a.work, "workspace");
  }
  const bool f64 = d.dtype == DType::f64;
  switch (d.mode) {
    case 2: return f64 ? forward_impl<double, 4>(a, stream) : forward_impl<float, 4>(a, stream);
    case 3: return f64 ? forward_impl<double, 3>(a, stream) : forward_impl<float, 3>(a, stream);
    default: return f64 ? forward_impl<double, 1>(a, stream) : forward_impl<float, 1>(a, stream);
  }
}

void launch_rnn_layer_backward(const RnnBackwardArgs& a, std::uintptr_t stream) {
  using namespace rnn_detail;
  const RnnDims& d = a.d;
  check_dims(d);
  const bool lstm = d.mode == 2;
  BM_CHECK(a.ld_dout >= d.H, "rnn: grad_output row length ", a.ld_dout, " < H = ", d.H);
  BM_CHECK(a.work_elems >= rnn_backward_workspace(d), "rnn: workspace has ", a.work_elems,
           " elements, needs ", rnn_backward_workspace(d));
  check_ptr(a.x, "x");
  check_ptr(a.w_ih, "w_ih");
  check_ptr(a.w_hh, "w_hh");
  check_ptr(a.sv, "saved gates");
  check_ptr(a.hp, "saved h");
  check_ptr(a.dout, "grad_output");
  check_opt_ptr(a.dhn, "grad_h_n");
  check_opt_ptr(a.lengths, "lengths");
  check_ptr(a.dx, "dx");
  check_ptr(a.dh0, "dh0");
  check_ptr(a.dw_ih, "dw_ih");
  check_ptr(a.dw_hh, "dw_hh");
  check_ptr(a.db_ih, "db_ih");
  check_ptr(a.db_hh, "db_hh");
  check_ptr(a.work, "workspace");
  if (lstm) {
    check_ptr(a.c0, "c0");
    check_ptr(a.cs, "saved c");
    check_ptr(a.dc0, "dc0");
    check_opt_ptr(a.dcn, "grad_c_n");
  }
  if (d.dtype == DType::f64)
    backward_impl<double>(a, stream);
  else
    backward_impl<float>(a, stream);
}

}  // namespace bm::cuda
