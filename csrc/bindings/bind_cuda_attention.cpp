// pybind11 glue for the CUDA fused attention: argument parsing, GIL release, no math. The
// launcher (cuda/attention.cu) checks every size, stride and pointer before it launches.
//
// attention_forward / attention_backward as python/bigmodel/ops/attention.py calls them: device
// pointers as integers (0 for an empty array), sizes [B, H, Sq, Sk, D, Dv], element strides
// [b, h, s] for q, k, v (d stride 1) and [b, h, i, j] for the mask, dtype as a NumPy name,
// stream_ptr = cupy.cuda.get_current_stream().ptr.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bindings/cuda_args.h"
#include "cuda/attention.h"

namespace py = pybind11;
using bm::cuda::AttnProblem;

namespace {

AttnProblem make_problem(const char* op, std::uintptr_t q, std::uintptr_t k, std::uintptr_t v,
                         const std::vector<int64_t>& sizes, const std::vector<int64_t>& qs,
                         const std::vector<int64_t>& ks, const std::vector<int64_t>& vs,
                         std::uintptr_t mask, int mask_kind, const std::vector<int64_t>& ms,
                         bool causal, double scale, std::uintptr_t out, std::uintptr_t lse,
                         const std::string& dtype) {
  AttnProblem p;
  int64_t sz[6];
  bm::cuda_args::copy_strides(sizes, 6, sz, op, "sizes [B, H, Sq, Sk, D, Dv]");
  p.B = sz[0], p.H = sz[1], p.Sq = sz[2], p.Sk = sz[3], p.D = sz[4], p.Dv = sz[5];
  bm::cuda_args::copy_strides(qs, 3, p.qs, op, "q_strides");
  bm::cuda_args::copy_strides(ks, 3, p.ks, op, "k_strides");
  bm::cuda_args::copy_strides(vs, 3, p.vs, op, "v_strides");
  bm::cuda_args::copy_strides(ms, 4, p.ms, op, "mask_strides");
  p.q = reinterpret_cast<const void*>(q);
  p.k = reinterpret_cast<const void*>(k);
  p.v = reinterpret_cast<const void*>(v);
  p.mask = reinterpret_cast<const void*>(mask);
  p.mask_kind = mask_kind;
  p.causal = causal;
  p.scale = scale;
  p.out = reinterpret_cast<void*>(out);
  p.lse = reinterpret_cast<void*>(lse);
  p.dtype = bm::cuda_args::float_dtype(dtype, op);
  return p;
}

void forward(std::uintptr_t q, std::uintptr_t k, std::uintptr_t v,
             const std::vector<int64_t>& sizes, const std::vector<int64_t>& qs,
             const std::vector<int64_t>& ks, const std::vector<int64_t>& vs, std::uintptr_t mask,
             int mask_kind, const std::vector<int64_t>& ms, bool causal, double scale,
             std::uintptr_t out, std::uintptr_t lse, const std::string& dtype,
             std::uintptr_t stream) {
  const AttnProblem p = make_problem("attention", q, k, v, sizes, qs, ks, vs, mask, mask_kind,
                                     ms, causal, scale, out, lse, dtype);
  py::gil_scoped_release nogil;  // launches queue work, but the runtime may block
  bm::cuda::launch_attention_forward(p, stream);
}

void backward(std::uintptr_t dout, std::uintptr_t q, std::uintptr_t k, std::uintptr_t v,
              std::uintptr_t out, std::uintptr_t lse, const std::vector<int64_t>& sizes,
              const std::vector<int64_t>& qs, const std::vector<int64_t>& ks,
              const std::vector<int64_t>& vs, std::uintptr_t mask, int mask_kind,
              const std::vector<int64_t>& ms, bool causal, double scale, std::uintptr_t dd,
              std::uintptr_t dq, std::uintptr_t dk, std::uintptr_t dv, const std::string& dtype,
              std::uintptr_t stream) {
  AttnProblem p = make_problem("attention_backward", q, k, v, sizes, qs, ks, vs, mask, mask_kind,
                               ms, causal, scale, out, lse, dtype);
  p.dout = reinterpret_cast<const void*>(dout);
  p.dd = reinterpret_cast<void*>(dd);
  p.dq = reinterpret_cast<void*>(dq);
  p.dk = reinterpret_cast<void*>(dk);
  p.dv = reinterpret_cast<void*>(dv);
  py::gil_scoped_release nogil;
  bm::cuda::launch_attention_backward(p, stream);
}

}  // namespace

void bind_cuda_attention(py::module_& m) {
  m.def("attention_forward", &forward, py::arg("q_ptr"), py::arg("k_ptr"), py::arg("v_ptr"),
        py::arg("sizes"), py::arg("q_strides"), py::arg("k_strides"), py::arg("v_strides"),
        py::arg("mask_ptr"), py::arg("mask_kind"), py::arg("mask_strides"), py::arg("causal"),
        py::arg("scale"), py::arg("out_ptr"), py::arg("lse_ptr"), py::arg("dtype"),
        py::arg("stream_ptr"),
        "Fused attention forward on device pointers: sizes [B, H, Sq, Sk, D, Dv], element "
        "strides [b, h, s] of q, k, v (unit d stride), mask_kind 0 none / 1 uint8 boolean / 2 "
        "additive with strides [b, h, i, j]; out (B, H, Sq, Dv) and lse (B, H, Sq) contiguous. "
        "Queued on stream_ptr; releases the GIL.");
  m.def("attention_backward", &backward, py::arg("dout_ptr"), py::arg("q_ptr"), py::arg("k_ptr"),
        py::arg("v_ptr"), py::arg("out_ptr"), py::arg("lse_ptr"), py::arg("sizes"),
        py::arg("q_strides"), py::arg("k_strides"), py::arg("v_strides"), py::arg("mask_ptr"),
        py::arg("mask_kind"), py::arg("mask_strides"), py::arg("causal"), py::arg("scale"),
        py::arg("dd_ptr"), py::arg("dq_ptr"), py::arg("dk_ptr"), py::arg("dv_ptr"),
        py::arg("dtype"), py::arg("stream_ptr"),
        "Fused attention backward: dout and out contiguous (B, H, Sq, Dv); dd a (B, H, Sq) "
        "workspace; dq, dk, dv contiguous, fully written (deterministic, no atomics). Releases "
        "the GIL.");
}
