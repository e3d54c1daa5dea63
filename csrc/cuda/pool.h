// 2-D pooling on the GPU: max (with argmax indices) and average, forward and backward, and global
// average pooling. NCHW, fp32 / fp64.
//
// Plain C++ (no CUDA types) so the pybind11 glue compiles with the host compiler.
// Layouts (C-contiguous device memory): x / dx (N, C, H, W), y / dy / indices (N, C, P, Q);
// indices are int64 flat offsets ih*W + iw into the (H, W) plane. Semantics are the CPU's
// (csrc/cpu/pool.h, python/bigmodel/reference/pool.py): padded pixels never win a max, the first
// maximum in scan order wins, a NaN wins (the last NaN); average windows are clipped to the
// padded input, divided by the clipped size (count_include_pad) or the input pixels in them.
//
// Kernels (csrc/cuda/pool.cu), one thread per output element for the forwards and one per input
// element for the backwards (gathers: deterministic, no atomics, results bitwise equal to the
// CPU's generic loops since the additions happen in the same order):
//   max backward with the window geometry: each input pixel sums dy over the windows that contain
//     it and whose index is that pixel. Without it (indices only): one thread per plane scatters
//     the plane's dy in output order. Indices outside the plane (or, with the geometry, outside
//     their window) are ignored: the GPU never reads or writes out of bounds, but unlike the CPU it
//     does not raise for them (that would need a device-to-host copy per call).
//   global average: one warp per plane, shared-memory tree reduction.
// All launches go on the given stream (CuPy's current stream); nothing allocates device memory.
#pragma once
#include <cstdint>

#include "cuda/gemm.h"  // DType

namespace bm::cuda {

struct Pool2dShape {
  int64_t N = 0, C = 0, H = 0, W = 0;  // input
  int64_t P = 0, Q = 0;                // output
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0;
};

// Throws std::invalid_argument unless the sizes are positive and (check_windows) every window
// overlaps the input, as the CPU's pool2d_validate.
void pool2d_check_shape(const Pool2dShape& s, bool check_windows, const char* op);

// y (and indices unless null) = max pooling of x.
void launch_maxpool2d_forward(const Pool2dShape& s, DType dt, const void* x, void* y,
                              int64_t* indices, std::uintptr_t stream);
// dx = gradient of max pooling (overwritten). with_window: s.kh..s.pw describe the forward's
// windows (gather kernel); otherwise only N, C, H, W, P, Q are used (per-plane scatter).
void launch_maxpool2d_backward(const Pool2dShape& s, bool with_window, DType dt, const void* dy,
                               const int64_t* indices, void* dx, std::uintptr_t stream);
void launch_avgpool2d_forward(const Pool2dShape& s, bool count_include_pad, DType dt,
                              const void* x, void* y, std::uintptr_t stream);
void launch_avgpool2d_backward(const Pool2dShape& s, bool count_include_pad, DType dt,
                               const void* dy, void* dx, std::uintptr_t stream);

// y[i] = mean of x[i*HW : (i+1)*HW]; dx[i*HW + j] = dy[i] / HW.
void launch_global_avgpool2d_forward(int64_t planes, int64_t HW, DType dt, const void* x, void* y,
                                     std::uintptr_t stream);
void launch_global_avgpool2d_backward(int64_t planes, int64_t HW, DType dt, const void* dy,
                                      void* dx, std::uintptr_t stream);

}  // namespace bm::cuda
