// RNN gate kernels (rnn_gates.h) compiled for AVX512 (this file gets the per-ISA flags).
#include <cstdint>
#include <cstring>

#include "cpu/rnn.h"

namespace bm::avx512 {
#include "cpu/rnn_gates.h"
}  // namespace bm::avx512
