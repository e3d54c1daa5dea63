// Host emulation of the CUDA runtime calls the SVD kernels (csrc/cuda/svd.cu) use beyond
// emu_core.h: the device-to-host copy of the validation flags and the stream synchronization.
// Kernels run synchronously in the emulation, so both are plain host operations. Guarded:
// another family's emu_<topic>.h may define the same group.
#pragma once
#include <cstring>

#ifndef EMU_HAVE_MEMCPY
#define EMU_HAVE_MEMCPY
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4
};
inline cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                                   cudaStream_t = nullptr) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t = nullptr) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
#endif
