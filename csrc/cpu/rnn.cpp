// RNN / LSTM / GRU layer forward and backward through time (the drivers; see rnn.h), and the
// portable build of the gate kernels (rnn_gates.h, auto-vectorised for the baseline ISA).
#include "cpu/rnn.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/check.h"
#include "common/cpu_features.h"
#include "common/scratch.h"
#include "cpu/gemm.h"


#define BM_RNN_VBYTES 16
#define BM_RNN_MR 6
#define BM_RNN_NV 2
namespace bm::portable {
#include "cpu/rnn_gates.h"
}  // namespace bm::portable

namespace bm::rnn {
namespace {

template <typename T>
using FwdFn = void (*)(const StepFwd<T>&);
template <typename T>
using BwdFn = void (*)(const StepBwd<T>&);

template <typename T>
FwdFn<T> fwd_kernel() {
  switch (active_isa()) {
#if defined(BM_X86)
    case Isa::avx512: return static_cast<FwdFn<T>>(&avx512::rnn_step_fwd);
    case Isa::avx2: return static_cast<FwdFn<T>>(&avx2::rnn_step_fwd);
#endif
    default: return static_cast<FwdFn<T>>(&portable::rnn_step_fwd);
  }
}
template <typename T>
BwdFn<T> bwd_kernel() {
  switch (active_isa()) {
#if defined(BM_X86)
    case Isa::avx512: return static_cast<BwdFn<T>>(&avx512::rnn_step_bwd);
    case Isa::avx2: return static_cast<BwdFn<T>>(&avx2::rnn_step_bwd);
#endif
    default: return static_cast<BwdFn<T>>(&portable::rnn_step_bwd);
  }
}

// The recurrent product's packing and kernel of the active ISA (rnn_gates.h).
template <typename T>
struct Rec {
  int64_t (*size)(int64_t, int64_t, bool);
  void (*pack)(int64_t, int64_t, const T*, int64_t, int64_t, T*);
  void (*run)(int64_t, int64_t, int64_t, const T*, int64_t, const T*, T*, int64_t, bool);
};
#define BM_REC(ns)                                                                             \
  Rec<T> {                                                                                     \
    &ns::rnn_rec_packed_size,                                                                  \
        static_cast<void (*)(int64_t, int64_t, const T*, int64_t, int64_t, T*)>(&ns::rnn_rec_pack), \
        static_cast<void (*)(int64_t, int64_t, int64_t, const T*, int64_t, const T*, T*, int64_t, \
                             bool)>(&ns::rnn_rec_run)                                          \
  }
template <typename T>
Rec<T> rec_kernel() {
  switch (active_isa()) {
#if defined(BM_X86)
    case Isa::avx512: return BM_REC(avx512);
    case Isa::avx2: return BM_REC(avx2);
#endif
    default: return BM_REC(portable);
  }
}
#undef BM_REC

// Rec plus the bf16 variant (float only, AVX512_BF16): packed buffers are T-sized words.
template <typename T>
struct RecP {
  Rec<T> r;
  bool bf;
  int64_t size(int64_t K, int64_t N) const {
#if defined(BM_X86)
    if (bf) return avx512::rnn_rec_bf16_packed_size(K, N);
#endif
    return r.size(K, N, sizeof(T) == 8);
  }
  void pack(int64_t K, int64_t N, const T* B, int64_t rs, int64_t cs, T* out) const {
#if defined(BM_X86)
    if constexpr (std::is_same_v<T, float>)
      if (bf) return avx512::rnn_rec_bf16_pack(K, N, B, rs, cs, reinterpret_cast<uint32_t*>(out));
#endif
    r.pack(K, N, B, rs, cs, out);
  }
  void run(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* Bp, T* C,
           int64_t ldc, bool acc) const {
#if defined(BM_X86)
    if constexpr (std::is_same_v<T, float>)
      if (bf)
        return avx512::rnn_rec_bf16_run(M, N, K, A, lda, reinterpret_cast<const uint32_t*>(Bp), C,
                                        ldc, acc);
#endif
    r.run(M, N, K, A, lda, Bp, C, ldc, acc);
  }
};

template <typename T>
RecP<T> rec_for(const Dims& d) {
  BM_CHECK(!d.bf16 || (std::is_same_v<T, float> && bf16_available()),
           "rnn: precision 'bf16' needs float32 and a CPU with AVX512_BF16 on the avx512 path");
  return {rec_kernel<T>(), d.bf16};
}

// bm::gemm, or bm::gemm_bf16 (bf16 inputs, fp32 accumulation) when asked.
template <typename T>
void gemm_p(bool bf, int64_t M, int64_t N, int64_t K, const T* A, int64_t rs_a, int64_t cs_a,
            const T* B, int64_t rs_b, int64_t cs_b, T beta, T* C, int64_t rs_c, int64_t cs_c) {
  if constexpr (std::is_same_v<T, float>)
    if (bf) return gemm_bf16(M, N, K, 1.0f, A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c);
  gemm<T>(M, N, K, T(1), A, rs_a, cs_a, B, rs_b, cs_b, beta, C, rs_c, cs_c);
}

// Hidden units per thread: whole 16-element vectors, and no more threads than slices. The
// region may get fewer threads than asked (nested inside another parallel region), so each
// thread recomputes the split from the team it actually got.
struct Split {
  int nw;
  int64_t chunk;
};
Split split_hidden(int64_t H, int nt) {
  nt = std::max(1, nt);
  int64_t chunk = (H + nt - 1) / nt;
  chunk = std::min<int64_t>(H, (chunk + 15) / 16 * 16);
  const int nw = static_cast<int>((H + chunk - 1) / chunk);
  return {nw, chunk};
}

void check_dims(const Dims& d) {
  BM_CHECK(d.mode >= kTanh && d.mode <= kGru, "rnn: unknown mode ", d.mode);
  BM_CHECK(d.T >= 1 && d.B >= 1 && d.I >= 1 && d.H >= 1, "rnn: sizes must be positive, got T=",
           d.T, " B=", d.B, " I=", d.I, " H=", d.H);
}

}  // namespace

template <typename T>
void layer_forward(const Dims& d, const T* x, const int64_t* lengths, const T* h0, const T* c0,
                   const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, T* out,
                   int64_t ld_out, T* hn, T* cn, T* sv, T* hp, T* cs) {
  check_dims(d);
  const int mode = d.mode, G = gates(mode);
  const int64_t T_ = d.T, B = d.B, I = d.I, H = d.H, GH = G * H, S = saved_width(mode) * H;
  const int64_t rows = T_ * B, rt = d.batch_first ? 1 : B, rb = d.batch_first ? T_ : 1;
  const bool lstm = mode == kLstm, save = sv != nullptr;
  BM_CHECK(!save || (hp != nullptr && (!lstm || cs != nullptr)), "rnn: incomplete save buffers");
  auto row = [&](int64_t t) { return t * rt; };  // row of (t, b = 0)

  // Input projection of every step: one GEMM, all threads.
  // When training, the projection is written into the saved-gates array (row width S >= GH)
  // and the gate kernel overwrites it in place with the activated gates: one stream less.
  const int64_t ldg = save ? S : GH;
  T* xg = save ? sv : thread_scratch<T>(size_t(rows) * GH, 4);
  const RecP<T> rec = rec_for<T>(d);
  gemm_p<T>(d.bf16, rows, GH, I, x, I, 1, w_ih, 1, I, T(0), xg, ldg, 1);
  T* bias = thread_scratch<T>(size_t(GH) + H, 5);
  for (int64_t k = 0; k < GH; ++k)
    bias[k] = b_ih[k] + (mode == kGru && k >= 2 * H ? T(0) : b_hh[k]);
  const T* bhn = b_hh + 2 * H;
  T* hg = thread_scratch<T>(size_t(B) * GH, 6);
  T* buf = thread_scratch<T>(size_t(4) * B * H, 7);  // inference ping-pong h (2), c (2)
  const int64_t first = d.reverse ? T_ - 1 : 0;
  if (save)
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(hp + (row(first) + b * rb) * H, h0 + b * H, H * sizeof(T));

  const FwdFn<T> kern = fwd_kernel<T>();
  const Split sp = split_hidden(H, num_threads());
#pragma omp parallel num_threads(sp.nw) if (sp.nw > 1)
  {
    const Split team = split_hidden(H, omp_get_num_threads());
    const int64_t j0 = std::min(H, omp_get_thread_num() * team.chunk);
    const int64_t j1 = std::min(H, j0 + team.chunk);
    // Each thread packs (and later reads) W_hh^T for its own gate columns only: no barrier.
    const int64_t psz = rec.size(H, std::max<int64_t>(j1 - j0, 1));
    T* wp = thread_scratch<T>(size_t(G) * psz, 3);
    if (j1 > j0)
      for (int g = 0; g < G; ++g) rec.pack(H, j1 - j0, w_hh + (g * H + j0) * H, 1, H, wp + g * psz);
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = d.reverse ? T_ - 1 - s : s;
      const int64_t nxt = d.reverse ? t - 1 : t + 1, prv = d.reverse ? t + 1 : t - 1;
      const bool last = s == T_ - 1;
      StepFwd<T> a{};
      a.mode = mode; a.B = B; a.H = H; a.j0 = j0; a.j1 = j1; a.t = t; a.lengths = lengths;
      a.xg = xg + row(t) * ldg; a.xg_rs = rb * ldg; a.hg = hg; a.bias = bias; a.bhn = bhn;
      if (save) { a.hp = hp + row(t) * H; a.hp_rs = rb * H; }
      else { a.hp = s == 0 ? h0 : buf + ((s - 1) & 1) * B * H; a.hp_rs = H; }
      if (last) { a.hn = hn; a.hn_rs = H; }
      else if (save) { a.hn = hp + row(nxt) * H; a.hn_rs = rb * H; }
      else { a.hn = buf + (s & 1) * B * H; a.hn_rs = H; }
      if (lstm) {
        if (s == 0) { a.cp = c0; a.cp_rs = H; }
        else if (save) { a.cp = cs + row(prv) * H; a.cp_rs = rb * H; }
        else { a.cp = buf + (2 + ((s - 1) & 1)) * B * H; a.cp_rs = H; }
        if (save) { a.cn = cs + row(t) * H; a.cn_rs = rb * H; }
        else if (last) { a.cn = cn; a.cn_rs = H; }
        else { a.cn = buf + (2 + (s & 1)) * B * H; a.cn_rs = H; }
      }
      if (save) { a.sv = sv + row(t) * S; a.sv_rs = rb * S; }
      a.y = out + row(t) * ld_out; a.y_rs = rb * ld_out;
      if (j1 > j0) {
        for (int g = 0; g < G; ++g)
          rec.run(B, j1 - j0, H, a.hp, a.hp_rs, wp + g * psz, hg + g * H + j0, GH, false);
        kern(a);
      }
#pragma omp barrier
    }
  }
  if (save && lstm) {
    const int64_t lastt = d.reverse ? 0 : T_ - 1;
    for (int64_t b = 0; b < B; ++b)
      std::memcpy(cn + b * H, cs + (row(lastt) + b * rb) * H, H * sizeof(T));
  }
}

template <typename T>
void layer_backward(const Dims& d, const T* x, const int64_t* lengths, const T* c0,
                    const T* w_ih, const T* w_hh, const T* sv, const T* hp, const T* cs,
                    const T* dout, int64_t ld_dout, const T* dhn, const T* dcn, T* dx,
                    bool accumulate_dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh) {
  check_dims(d);
  const int mode = d.mode, G = gates(mode);
  const int64_t T_ = d.T, B = d.B, I = d.I, H = d.H, GH = G * H, S = saved_width(mode) * H;
  const int64_t rows = T_ * B, rt = d.batch_first ? 1 : B, rb = d.batch_first ? T_ : 1;
  const bool lstm = mode == kLstm, gru = mode == kGru;
  auto row = [&](int64_t t) { return t * rt; };

  T* dg = thread_scratch<T>(size_t(rows) * GH, 4);
  T* dgh = gru ? thread_scratch<T>(size_t(rows) * GH, 5) : dg;
  T* dhbuf = thread_scratch<T>(size_t(3) * B * H, 6);  // dh ping-pong (2), dc (1)
  T* dc = dhbuf + 2 * B * H;
  for (int64_t k = 0; k < B * H; ++k) {
    dhbuf[k] = dhn ? dhn[k] : T(0);
    dc[k] = (lstm && dcn) ? dcn[k] : T(0);
  }

  const BwdFn<T> kern = bwd_kernel<T>();
  const RecP<T> rec = rec_for<T>(d);
  const Split sp = split_hidden(H, num_threads());
#pragma omp parallel num_threads(sp.nw) if (sp.nw > 1)
  {
    const Split team = split_hidden(H, omp_get_num_threads());
    const int64_t j0 = std::min(H, omp_get_thread_num() * team.chunk);
    const int64_t j1 = std::min(H, j0 + team.chunk);
    // W_hh[:, j0:j1] packed panel-major once per call (each thread its own columns).
    T* wp = thread_scratch<T>(size_t(rec.size(GH, std::max<int64_t>(j1 - j0, 1))), 3);
    if (j1 > j0) rec.pack(GH, j1 - j0, w_hh + j0, H, 1, wp);
    T* dcur = dhbuf;
    T* dnext = dhbuf + B * H;
    for (int64_t s = 0; s < T_; ++s) {
      const int64_t t = d.reverse ? s : T_ - 1 - s;  // forward order reversed
      const bool first_fwd = t == (d.reverse ? T_ - 1 : 0);
      const int64_t prv = d.reverse ? t + 1 : t - 1;
      StepBwd<T> a{};
      a.mode = mode; a.B = B; a.H = H; a.j0 = j0; a.j1 = j1; a.t = t; a.lengths = lengths;
      a.sv = sv + row(t) * S; a.sv_rs = rb * S;
      a.hp = hp + row(t) * H; a.hp_rs = rb * H;
      if (lstm) {
        if (first_fwd) { a.cp = c0; a.cp_rs = H; }
        else { a.cp = cs + row(prv) * H; a.cp_rs = rb * H; }
        a.cc = cs + row(t) * H; a.cc_rs = rb * H;
      }
      a.dy = dout + row(t) * ld_dout; a.dy_rs = rb * ld_dout;
      a.dh = dcur; a.dc = dc; a.dhp = dnext;
      a.dg = dg + row(t) * GH; a.dg_rs = rb * GH;
      a.dgh = dgh + row(t) * GH; a.dgh_rs = rb * GH;
      if (j1 > j0) kern(a);
#pragma omp barrier
      // dh_{t-1}[:, j0:j1] += dG_hh[t] (B, GH) @ W_hh[:, j0:j1]; reads every thread's gates.
      if (j1 > j0)
        rec.run(B, j1 - j0, GH, a.dgh, a.dgh_rs, wp, dnext + j0, H, true);
      std::swap(dcur, dnext);
    }
  }
  const T* dfinal = dhbuf + (T_ & 1) * B * H;
  std::memcpy(dh0, dfinal, B * H * sizeof(T));
  if (lstm && dc0) std::memcpy(dc0, dc, B * H * sizeof(T));

  // Whole-sequence products (all threads): dx, dW_ih, dW_hh; rows of dG line up with rows of x.
  gemm_p<T>(d.bf16, rows, I, GH, dg, GH, 1, w_ih, I, 1, accumulate_dx ? T(1) : T(0), dx, I, 1);
  // dW^T = [x or h]^T dG, stored transposed into dW: the A operand is then a row-major matrix
  // read by columns (cheap to pack) rather than dG^T; measured 1.2x (fp32) and 1.7x (bf16,
  // whose transposed-A conversion path is slow) on T100 B64 128->256.
  gemm_p<T>(d.bf16, I, GH, rows, x, 1, I, dg, GH, 1, T(0), dw_ih, 1, I);
  gemm_p<T>(d.bf16, H, GH, rows, hp, 1, H, dgh, GH, 1, T(0), dw_hh, 1, H);
  const int nt = num_threads();
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = omp_get_thread_num(), n = omp_get_num_threads();
    const int64_t c0_ = GH * tid / n, c1 = GH * (tid + 1) / n;
    for (int64_t c = c0_; c < c1; ++c) { db_ih[c] = T(0); db_hh[c] = T(0); }
    for (int64_t r = 0; r < rows; ++r) {
      const T* gi = dg + r * GH;
      const T* gh = dgh + r * GH;
#pragma omp simd
      for (int64_t c = c0_; c < c1; ++c) { db_ih[c] += gi[c]; db_hh[c] += gh[c]; }
    }
  }
}

#define BM_RNN_INST(T)                                                                          \
  template void layer_forward<T>(const Dims&, const T*, const int64_t*, const T*, const T*,    \
                                 const T*, const T*, const T*, const T*, T*, int64_t, T*, T*,  \
                                 T*, T*, T*);                                                   \
  template void layer_backward<T>(const Dims&, const T*, const int64_t*, const T*, const T*,   \
                                  const T*, const T*, const T*, const T*, const T*, int64_t,   \
                                  const T*, const T*, T*, bool, T*, T*, T*, T*, T*, T*);
BM_RNN_INST(float)
BM_RNN_INST(double)
#undef BM_RNN_INST

}  // namespace bm::rnn
