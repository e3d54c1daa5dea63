// RNN family on the CPU: one layer and one direction of an Elman RNN (tanh / relu), LSTM or GRU
// over a whole sequence, forward and backward through time. Layers and directions are chained
// by the caller (python/bigmodel/ops/rnn.py); weights use PyTorch's layout and gate order.
//
// Sequences: the rows of x (I features), out (ld_out apart; a bidirectional layer writes its
// H columns at an offset), the saved arrays and the gate gradients are indexed by
//   row(t, b) = t * rt + b * rb, (rt, rb) = (B, 1) time-major or (1, T) batch-first,
// so batch-first input is used in place. w_ih (G*H, I), w_hh (G*H, H), b_ih, b_hh (G*H),
// G = 1 (RNN), 4 (LSTM: i, f, g, o), 3 (GRU: r, z, n). lengths (B) or null: row b is active at
// t < lengths[b]; past its end its output is zero and its state is carried unchanged, so h_n is
// the state at its last step in either direction.
//
// Forward: one GEMM for the input projection of all steps (all threads), then per step the
// recurrent product (rec_run in rnn_gates.h: W_hh packed panel-major once per call) and one
// fused gate kernel; the threads split the hidden units, so each computes the gate columns it
// consumes and the only synchronisation is one barrier per step (h_t complete before the next
// product). Dims::bf16 switches every product to bf16 inputs with fp32 accumulation.
// Saved for backward: sv (rows, S) activated gates (S = H for RNN: h_t; 4H for LSTM and GRU,
// see rnn_gates.h), hp (rows, H) the hidden state entering each step, cs (rows, H) the LSTM cell
// state after each step. Backward: per step the fused gate-gradient kernel, one barrier, then
// dh_prev += dG_hh W_hh on each thread's slice of H; afterwards dx, dW_ih, dW_hh as three GEMMs
// over all steps and the bias gradients as column sums.
#pragma once
#include <cstdint>

namespace bm::rnn {

enum Mode : int { kTanh = 0, kRelu = 1, kLstm = 2, kGru = 3 };
inline int gates(int mode) { return mode == kLstm ? 4 : mode == kGru ? 3 : 1; }
inline int saved_width(int mode) { return mode == kLstm || mode == kGru ? 4 : 1; }

struct Dims {
  int mode;
  int64_t T, B, I, H;
  bool batch_first, reverse;
  bool bf16 = false;  // float32 only: every product with bf16 inputs, fp32 accumulation
};

// One time step, hidden units [j0, j1), every batch row (see rnn_gates.h). *_rs: row strides.
template <typename T>
struct StepFwd {
  int mode;
  int64_t B, H, j0, j1, t;
  const int64_t* lengths;
  const T* xg; int64_t xg_rs;  // input projection rows (G*H); may be sv itself (in place)
  const T* hg;                 // recurrent product (B, G*H), contiguous
  const T* bias;               // b_ih + b_hh (GRU: b_hn left out)
  const T* bhn;                // GRU b_hn
  const T* hp; int64_t hp_rs;  // h entering the step
  const T* cp; int64_t cp_rs;  // LSTM c entering the step
  T* sv; int64_t sv_rs;        // saved gates (null: inference)
  T* cn; int64_t cn_rs;        // LSTM c after the step
  T* hn; int64_t hn_rs;        // h after the step (state, carried when inactive)
  T* y; int64_t y_rs;          // output row (zero when inactive)
};

template <typename T>
struct StepBwd {
  int mode;
  int64_t B, H, j0, j1, t;
  const int64_t* lengths;
  const T* sv; int64_t sv_rs;
  const T* hp; int64_t hp_rs;  // GRU: h entering the step
  const T* cp; int64_t cp_rs;  // LSTM: c entering the step
  const T* cc; int64_t cc_rs;  // LSTM: c after the step
  const T* dy; int64_t dy_rs;  // gradient of the output rows
  const T* dh;                 // (B, H) gradient reaching h_t from later steps / h_n
  T* dc;                       // (B, H) LSTM, in: dL/dc_t, out: dL/dc_{t-1}
  T* dg; int64_t dg_rs;        // gradient of the gate pre-activations (input side)
  T* dgh; int64_t dgh_rs;      // GRU: recurrent side (n block scaled by r); else unused
  T* dhp;                      // (B, H) direct part of dL/dh_{t-1} (GRU: dh * z; else 0)
};

// Forward of one layer-direction. h0 (B, H), c0 (B, H) (LSTM), hn/cn (B, H) out. sv/hp/cs may
// be null (inference: nothing saved).
template <typename T>
void layer_forward(const Dims& d, const T* x, const int64_t* lengths, const T* h0, const T* c0,
                   const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, T* out,
                   int64_t ld_out, T* hn, T* cn, T* sv, T* hp, T* cs);

// Backward of one layer-direction from what layer_forward saved. dout rows ld_dout apart (may
// be null: no gradient on the output), dhn / dcn (B, H) or null. dx (rows, I) is overwritten,
// or accumulated into when accumulate_dx. dw_*, db_* overwritten.
template <typename T>
void layer_backward(const Dims& d, const T* x, const int64_t* lengths, const T* c0,
                    const T* w_ih, const T* w_hh, const T* sv, const T* hp, const T* cs,
                    const T* dout, int64_t ld_dout, const T* dhn, const T* dcn, T* dx,
                    bool accumulate_dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih, T* db_hh);

}  // namespace bm::rnn

// Per-ISA gate kernels (rnn_gates.h compiled in rnn.cpp, rnn_avx2.cpp, rnn_avx512.cpp).
#define BM_RNN_DECL(ns)                                       \
  namespace bm::ns {                                          \
  void rnn_step_fwd(const bm::rnn::StepFwd<float>&);          \
  void rnn_step_fwd(const bm::rnn::StepFwd<double>&);         \
  void rnn_step_bwd(const bm::rnn::StepBwd<float>&);          \
  void rnn_step_bwd(const bm::rnn::StepBwd<double>&);         \
  int64_t rnn_rec_packed_size(int64_t, int64_t, bool);                            \
  void rnn_rec_pack(int64_t, int64_t, const float*, int64_t, int64_t, float*);     \
  void rnn_rec_pack(int64_t, int64_t, const double*, int64_t, int64_t, double*);   \
  void rnn_rec_run(int64_t, int64_t, int64_t, const float*, int64_t, const float*, \
                   float*, int64_t, bool);                                         \
  void rnn_rec_run(int64_t, int64_t, int64_t, const double*, int64_t,              \
                   const double*, double*, int64_t, bool);                         \
  }
BM_RNN_DECL(portable)
BM_RNN_DECL(avx2)
BM_RNN_DECL(avx512)
#undef BM_RNN_DECL

// bf16 recurrent product (rnn_avx512.cpp; AVX512_BF16 only). Packed words are (k, k+1) pairs.
namespace bm::avx512 {
int64_t rnn_rec_bf16_packed_size(int64_t K, int64_t N);
void rnn_rec_bf16_pack(int64_t K, int64_t N, const float* B, int64_t rs, int64_t cs, uint32_t* out);
void rnn_rec_bf16_run(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                      const uint32_t* Bp, float* C, int64_t ldc, bool accumulate);
}  // namespace bm::avx512
