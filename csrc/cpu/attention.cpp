// Fused attention: portable build (body: attention_impl.h) and the run-time ISA dispatcher.
#define BM_ISA_NS portable
#include "cpu/attention_impl.h"

namespace bm {

#if defined(BM_X86)
#define BM_ATTN_DISPATCH(fn, a)                               \
  switch (active_isa()) {                                     \
    case Isa::avx512: return avx512::fn(a);                   \
    case Isa::avx2: return avx2::fn(a);                       \
    default: return portable::fn(a);                          \
  }
#else
#define BM_ATTN_DISPATCH(fn, a) return portable::fn(a);
#endif

template <> void attention_forward<float>(const AttnArgs<float>& a) { BM_ATTN_DISPATCH(attention_forward, a) }
template <> void attention_backward<float>(const AttnArgs<float>& a) { BM_ATTN_DISPATCH(attention_backward, a) }
template <> void attention_forward<double>(const AttnArgs<double>& a) { BM_ATTN_DISPATCH(attention_forward, a) }
template <> void attention_backward<double>(const AttnArgs<double>& a) { BM_ATTN_DISPATCH(attention_backward, a) }

}  // namespace bm
