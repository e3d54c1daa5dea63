// The CPU extension module bigmodel._core: runtime info and settings; each kernel family adds
// its functions through bind_<family>(m), defined in bind_<family>.cpp.
#include <pybind11/pybind11.h>

#include "common/cpu_features.h"

namespace py = pybind11;

void bind_gemm(py::module_& m);
void bind_attention(py::module_& m);
void bind_conv(py::module_& m);
void bind_elementwise(py::module_& m);
void bind_nn(py::module_& m);
void bind_pool(py::module_& m);
void bind_rnn(py::module_& m);
void bind_svd(py::module_& m);
void bind_symeig(py::module_& m);

PYBIND11_MODULE(_core, m) {
  m.doc() = "bigmodel CPU kernels (OpenMP + SIMD, instruction set chosen at run time)";
  m.attr("__version__") = BIGMODEL_VERSION;

  m.def("isa", [] { return std::string(bm::isa_name(bm::active_isa())); },
        "Instruction-set path the kernels use now: 'avx512', 'avx2' or 'portable'.");
  m.def("best_isa", [] { return std::string(bm::isa_name(bm::best_isa())); });
  m.def("set_isa", [](const std::string& name) {
    if (name == "avx512") bm::set_isa(bm::Isa::avx512);
    else if (name == "avx2") bm::set_isa(bm::Isa::avx2);
    else if (name == "portable") bm::set_isa(bm::Isa::portable);
    else throw py::value_error("set_isa: isa must be 'avx512', 'avx2' or 'portable', got '" + name + "'");
  }, py::arg("isa"));
  m.def("bf16_available", &bm::bf16_available);
  m.def("cpu_features", [] {
    const auto& f = bm::cpu_features();
    py::dict d;
    d["avx2"] = f.avx2; d["fma"] = f.fma; d["avx512f"] = f.avx512f; d["avx512bw"] = f.avx512bw;
    d["avx512vl"] = f.avx512vl; d["avx512dq"] = f.avx512dq; d["avx512_bf16"] = f.avx512_bf16;
    return d;
  });
  m.def("num_threads", &bm::num_threads);
  m.def("set_num_threads", &bm::set_num_threads, py::arg("n"));

  bind_gemm(m);
  bind_attention(m);
  bind_conv(m);
  bind_elementwise(m);
  bind_nn(m);
  bind_pool(m);
  bind_rnn(m);
  bind_svd(m);
  bind_symeig(m);
}
