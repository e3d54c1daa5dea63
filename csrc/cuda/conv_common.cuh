// Host-side helpers shared by conv2d.cu and pool.cu: device-pointer checks and grid sizes.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/cuda_check.cuh"

namespace bm::cuda::conv_common {

// A host pointer (or one on another GPU) would fault inside the kernel and poison the CUDA
// context for the whole process: reject it before launching (a few microseconds per pointer).
inline void check_device_ptr(const void* ptr, const char* op, const char* name) {
  BM_CHECK(ptr != nullptr, op, ": ", name, " is a null pointer");
  int device = 0;
  BM_CUDA_CHECK(cudaGetDevice(&device));
  cudaPointerAttributes attr{};
  BM_CUDA_CHECK(cudaPointerGetAttributes(&attr, ptr));
  BM_CHECK(attr.type != cudaMemoryTypeUnregistered && attr.devicePointer != nullptr, op, ": ",
           name, " (", ptr, ") is not memory the GPU can access");
  BM_CHECK(attr.type != cudaMemoryTypeDevice || attr.device == device, op, ": ", name,
           " is on device ", attr.device, " but the current device is ", device);
}

// Blocks for a grid-stride loop over n elements (at least 1, at most 65535 * 16).
inline unsigned grid_for(int64_t n, int threads) {
  const int64_t blocks = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535 * 16));
}

}  // namespace bm::cuda::conv_common
