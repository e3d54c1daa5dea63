// RNN gate kernels (rnn_gates.h) compiled for AVX2 (this file gets the per-ISA flags).
#include <cstdint>
#include <cstring>

#include <algorithm>

#include "common/scratch.h"
#include "cpu/rnn.h"

#define BM_RNN_VBYTES 32
#define BM_RNN_MR 6
#define BM_RNN_NV 2
namespace bm::avx2 {
#include "cpu/rnn_gates.h"
}  // namespace bm::avx2
