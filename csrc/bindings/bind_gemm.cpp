// pybind11 glue for GEMM: argument checks, GIL release, no math.
#include "bindings/common.h"
#include "common/cpu_features.h"
#include "cpu/gemm.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

template <typename T>
void run(const py::array& a, const py::array& b, py::array& c, double alpha, double beta,
         int precision) {
  auto sa = elem_strides(a, "a"), sb = elem_strides(b, "b"), sc = elem_strides(c, "out");
  const int64_t batch = c.shape(0), M = c.shape(1), N = c.shape(2), K = a.shape(2);
  const T* pa = static_cast<const T*>(a.data());
  const T* pb = static_cast<const T*>(b.data());
  T* pc = static_cast<T*>(c.mutable_data());
  py::gil_scoped_release nogil;
  const int64_t bsa = a.shape(0) == 1 ? 0 : sa[0], bsb = b.shape(0) == 1 ? 0 : sb[0];
  bm::gemm_batched<T>(batch, M, N, K, static_cast<T>(alpha), pa, bsa, sa[1], sa[2], pb, bsb,
                      sb[1], sb[2], static_cast<T>(beta), pc, sc[0], sc[1], sc[2], precision);
}

// a (batch|1, M, K), b (batch|1, K, N), c (batch, M, N); batch stride 0 broadcasts.
void gemm3d(const py::array& a, const py::array& b, py::array& c, double alpha, double beta,
            const std::string& precision) {
  check_ndim(a, 3, "a");
  check_ndim(b, 3, "b");
  check_ndim(c, 3, "out");
  check_writeable(c, "out");
  const bool f32 = is_dtype<float>(a), f64 = is_dtype<double>(a);
  const bool bf16in = is_dtype<uint16_t>(a) && is_dtype<uint16_t>(b) && is_dtype<float>(c);
  if (!bf16in && (!(f32 || f64) || !a.dtype().is(b.dtype()) || !a.dtype().is(c.dtype())))
    throw py::type_error("gemm: a, b and out must all be float32 or all float64 (or a, b "
                         "bfloat16 bits as uint16 with a float32 out)");
  BM_CHECK(a.shape(2) == b.shape(1), "gemm: inner dimensions differ: a ", shape_str(a), ", b ",
           shape_str(b));
  BM_CHECK(c.shape(1) == a.shape(1) && c.shape(2) == b.shape(2), "gemm: out has shape ",
           shape_str(c), ", expected (batch, ", a.shape(1), ", ", b.shape(2), ")");
  for (const py::array* x : {&a, &b})
    BM_CHECK(x->shape(0) == c.shape(0) || x->shape(0) == 1 || x->strides(0) == 0,
             "gemm: batch sizes do not broadcast: a ", shape_str(a), ", b ", shape_str(b),
             ", out ", shape_str(c));
  int prec = 0;
  if (precision == "bf16") prec = 1;
  else BM_CHECK(precision == "native", "gemm: precision must be 'native' or 'bf16', got '", precision, "'");
  if (bf16in) {
    BM_RUNTIME_CHECK(bm::bf16_available(), "gemm: bfloat16 inputs need a CPU with AVX512_BF16");
    auto sa = elem_strides(a, "a"), sb = elem_strides(b, "b"), sc = elem_strides(c, "out");
    const int64_t batch = c.shape(0), M = c.shape(1), N = c.shape(2), K = a.shape(2);
    const int64_t bsa = a.shape(0) == 1 ? 0 : sa[0], bsb = b.shape(0) == 1 ? 0 : sb[0];
    const uint16_t* pa = static_cast<const uint16_t*>(a.data());
    const uint16_t* pb = static_cast<const uint16_t*>(b.data());
    float* pc = static_cast<float*>(c.mutable_data());
    py::gil_scoped_release nogil;
    bm::gemm_batched_bf16in(batch, M, N, K, float(alpha), pa, bsa, sa[1], sa[2], pb, bsb, sb[1],
                            sb[2], float(beta), pc, sc[0], sc[1], sc[2]);
    return;
  }
  if (f32) run<float>(a, b, c, alpha, beta, prec);
  else run<double>(a, b, c, alpha, beta, prec);
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &gemm3d, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("alpha") = 1.0,
        py::arg("beta") = 0.0, py::arg("precision") = "native",
        "out[i] = alpha * a[i] @ b[i] + beta * out[i] on 3-D float32/float64 arrays of any "
        "strides (batch stride 0 or batch size 1 broadcasts). Releases the GIL.");
  m.def("bf16_round", [](py::array_t<float, py::array::c_style | py::array::forcecast> x) {
    py::array_t<uint16_t> out(x.request().shape);
    const float* src = x.data();
    uint16_t* dst = out.mutable_data();
    const py::ssize_t n = x.size();
    {
      py::gil_scoped_release nogil;
      for (py::ssize_t i = 0; i < n; ++i) dst[i] = bm::float_to_bf16(src[i]);
    }
    return out;
  }, "float32 -> bfloat16 bit patterns (uint16), round to nearest even.");
}
