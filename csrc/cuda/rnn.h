// RNN family on the GPU: one layer and one direction of an Elman RNN (tanh / relu), LSTM or GRU
// over a whole sequence, forward and backward through time. Layers, directions and cells are
// chained by python/bigmodel/ops/rnn.py exactly as for the CPU kernels (csrc/cpu/rnn.h), with
// the same layouts, gate order (LSTM i, f, g, o; GRU r, z, n with r applied to W_hn h + b_hn),
// length masking and saved arrays, so the RNNState of either backend has the same contents.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler. Every pointer
// is device memory allocated by the caller (CuPy); nothing here allocates. Rows of x, out, the
// saved arrays and the gate gradients are row(t, b) = t * rt + b * rb, (rt, rb) = (B, 1)
// time-major or (1, T) batch-first. lengths (B) int64 on the device or null: row b is active at
// t < lengths[b] (the kernels only compare, so any value is memory-safe).
//
// Forward (csrc/cuda/rnn.cu): the input projection of every step as one GEMM
// (launch_gemm_forward: X (rows, I) · W_ih^T into sv, or the workspace when not training), then
// per step ONE fused kernel: the recurrent product h_{t-1} · W_hh^T for a tile of batch rows x
// hidden units with all G gate columns of each unit in the same thread, and the gate math in
// its epilogue (biases, activations, cell update, masking, outputs, saved activations).
// Backward: per step in reverse ONE fused kernel: dh_t = dG_{t+1} · W_hh + (direct part) for a
// tile, then the gate-gradient math of step t in its epilogue (writes dG_t); a last product gives
// dh0. After the loop dx, dW_ih, dW_hh are three GEMMs over all steps and db_ih, db_hh column sums
// in a fixed order (deterministic: no atomics).
#pragma once
#include <cstdint>

#include "cuda/gemm.h"

namespace bm::cuda {

struct RnnDims {
  int mode = 0;  // 0 tanh, 1 relu, 2 LSTM, 3 GRU (bm::rnn::Mode)
  int64_t T = 0, B = 0, I = 0, H = 0;
  bool batch_first = true, reverse = false;
  DType dtype = DType::f32;                  // f32 or f64
  Precision precision = Precision::native;   // of the GEMMs only (native, tf32, bf16; f32)
};

// Gates per hidden unit (G) and saved activations per row (S / H), as on the CPU.
inline int rnn_gates(int mode) { return mode == 2 ? 4 : mode == 3 ? 3 : 1; }
inline int rnn_saved_width(int mode) { return mode == 2 || mode == 3 ? 4 : 1; }

// Workspace elements (of dims.dtype) that launch_rnn_layer_forward (training or not) and
// launch_rnn_layer_backward need; the caller allocates them.
int64_t rnn_forward_workspace(const RnnDims& d, bool training);
int64_t rnn_backward_workspace(const RnnDims& d);

struct RnnForwardArgs {
  RnnDims d;
  const void* x = nullptr;            // (rows, I)
  const int64_t* lengths = nullptr;   // (B) or null
  const void* h0 = nullptr;           // (B, H)
  const void* c0 = nullptr;           // (B, H), LSTM
  const void *w_ih = nullptr, *w_hh = nullptr, *b_ih = nullptr, *b_hh = nullptr;
  void* out = nullptr;                // row r at out + r * ld_out (already at the column offset)
  int64_t ld_out = 0;
  void* hn = nullptr;                 // (B, H)
  void* cn = nullptr;                 // (B, H), LSTM
  void* sv = nullptr;                 // (rows, S) saved gates, null = inference
  void* hp = nullptr;                 // (rows, H) h entering each step (training)
  void* cs = nullptr;                 // (rows, H) LSTM c after each step (training)
  void* work = nullptr;               // rnn_forward_workspace elements
  int64_t work_elems = 0;
};

struct RnnBackwardArgs {
  RnnDims d;
  const void* x = nullptr;            // (rows, I)
  const int64_t* lengths = nullptr;
  const void* c0 = nullptr;           // LSTM
  const void *w_ih = nullptr, *w_hh = nullptr;
  const void *sv = nullptr, *hp = nullptr, *cs = nullptr;  // from the forward
  const void* dout = nullptr;         // row r at dout + r * ld_dout (at the column offset)
  int64_t ld_dout = 0;
  const void* dhn = nullptr;          // (B, H) or null (zero)
  const void* dcn = nullptr;          // (B, H) or null, LSTM
  void* dx = nullptr;                 // (rows, I): overwritten, or added to when accumulate_dx
  bool accumulate_dx = false;
  void* dh0 = nullptr;                // (B, H)
  void* dc0 = nullptr;                // (B, H), LSTM
  void *dw_ih = nullptr, *dw_hh = nullptr, *db_ih = nullptr, *db_hh = nullptr;
  void* work = nullptr;               // rnn_backward_workspace elements
  int64_t work_elems = 0;
};

// Validate and queue on `stream` (a cudaStream_t as an integer). std::invalid_argument for bad
// arguments, std::runtime_error for CUDA failures. Asynchronous.
void launch_rnn_layer_forward(const RnnForwardArgs& a, std::uintptr_t stream);
void launch_rnn_layer_backward(const RnnBackwardArgs& a, std::uintptr_t stream);

}  // namespace bm::cuda
