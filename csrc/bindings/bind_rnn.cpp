// pybind11 glue for the RNN family (one layer-direction per call, see cpu/rnn.h): argument
// checks, GIL release, no math. python/bigmodel/ops/rnn.py chains layers and directions.
#include <optional>

#include <pybind11/stl.h>

#include "bindings/common.h"
#include "common/cpu_features.h"
#include "cpu/rnn.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

using Opt = std::optional<py::array>;

// Checks dtype, C-contiguity and shape of one array; returns its data pointer.
template <typename T>
T* expect(const py::array& a, std::vector<int64_t> shape, const char* name, bool write = false) {
  if (!is_dtype<T>(a))
    throw py::type_error(std::string("rnn: ") + name + " must have dtype " +
                         (sizeof(T) == 4 ? "float32" : "float64") + ", got " +
                         std::string(py::str(a.dtype())));
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
  std::string want = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
  BM_CHECK(ok, "rnn: ", name, " has shape ", shape_str(a), ", expected ", want, ")");
  BM_CHECK(a.flags() & py::array::c_style, "rnn: ", name, " must be C-contiguous");
  if (write) check_writeable(a, name);
  return static_cast<T*>(const_cast<void*>(a.data()));
}

template <typename T>
T* expect_opt(const Opt& a, std::vector<int64_t> shape, const char* name, bool write = false) {
  return a ? expect<T>(*a, std::move(shape), name, write) : nullptr;
}

const int64_t* lengths_ptr(const Opt& lengths, int64_t T, int64_t B) {
  if (!lengths) return nullptr;
  const py::array& l = *lengths;
  if (!l.dtype().is(py::dtype::of<int64_t>())) throw py::type_error("rnn: lengths must be int64");
  BM_CHECK(l.ndim() == 1 && l.shape(0) == B && (l.flags() & py::array::c_style),
           "rnn: lengths has shape ", shape_str(l), ", expected (", B, ",)");
  const int64_t* p = static_cast<const int64_t*>(l.data());
  for (int64_t b = 0; b < B; ++b)
    BM_CHECK(p[b] >= 0 && p[b] <= T, "rnn: lengths[", b, "] = ", p[b], " is outside [0, ", T, "]");
  return p;
}

struct Shape {
  bm::rnn::Dims d;
  int64_t G, S;
};

Shape dims_of(int mode, const py::array& x, const py::array& w_hh, bool batch_first,
              bool reverse, const std::string& precision) {
  BM_CHECK(precision == "native" || precision == "bf16",
           "rnn: precision must be 'native' or 'bf16', got '", precision, "'");
  BM_CHECK(mode >= 0 && mode <= 3, "rnn: unknown mode ", mode);
  check_ndim(x, 3, "x");
  check_ndim(w_hh, 2, "w_hh");
  bm::rnn::Dims d{mode, batch_first ? x.shape(1) : x.shape(0),
                  batch_first ? x.shape(0) : x.shape(1), x.shape(2), w_hh.shape(1), batch_first,
                  reverse, precision == "bf16"};
  if (d.bf16 && !is_dtype<float>(x)) throw py::type_error("rnn: precision 'bf16' needs float32 x");
  if (d.bf16 && !bm::bf16_available())
    throw std::runtime_error("rnn: precision 'bf16' needs AVX512_BF16 (and the avx512 path)");
  return {d, bm::rnn::gates(mode), bm::rnn::saved_width(mode) * d.H};
}

template <typename T>
void forward(int mode, const py::array& x, const Opt& lengths, const py::array& h0,
             const Opt& c0, const py::array& w_ih, const py::array& w_hh, const py::array& b_ih,
             const py::array& b_hh, bool batch_first, bool reverse, py::array& out,
             int64_t out_offset, py::array& hn, const Opt& cn, const Opt& sv, const Opt& hp,
             const Opt& cs, const std::string& precision) {
  const Shape s = dims_of(mode, x, w_hh, batch_first, reverse, precision);
  const auto& d = s.d;
  const int64_t GH = s.G * d.H, rows = d.T * d.B;
  const bool lstm = mode == bm::rnn::kLstm;
  const T* px = expect<T>(x, {x.shape(0), x.shape(1), d.I}, "x");
  const T* pwi = expect<T>(w_ih, {GH, d.I}, "w_ih");
  const T* pwh = expect<T>(w_hh, {GH, d.H}, "w_hh");
  const T* pbi = expect<T>(b_ih, {GH}, "b_ih");
  const T* pbh = expect<T>(b_hh, {GH}, "b_hh");
  const T* ph0 = expect<T>(h0, {d.B, d.H}, "h0");
  BM_CHECK(!lstm || (c0 && cn), "rnn: LSTM needs c0 and cn");
  const T* pc0 = lstm ? expect_opt<T>(c0, {d.B, d.H}, "c0") : nullptr;
  T* pout = expect<T>(out, {x.shape(0), x.shape(1), -1}, "out", true);
  BM_CHECK(out_offset >= 0 && out_offset + d.H <= out.shape(2), "rnn: out has ", out.shape(2),
           " features, cannot hold ", d.H, " at offset ", out_offset);
  T* phn = expect<T>(hn, {d.B, d.H}, "hn", true);
  T* pcn = lstm ? expect_opt<T>(cn, {d.B, d.H}, "cn", true) : nullptr;
  T* psv = expect_opt<T>(sv, {rows, s.S}, "saved gates", true);
  T* php = expect_opt<T>(hp, {rows, d.H}, "saved h", true);
  T* pcs = lstm ? expect_opt<T>(cs, {rows, d.H}, "saved c", true) : nullptr;
  BM_CHECK(!psv || (php && (!lstm || pcs)), "rnn: saved gates, h (and c) go together");
  const int64_t* pl = lengths_ptr(lengths, d.T, d.B);
  const int64_t ld_out = out.shape(2);
  py::gil_scoped_release nogil;
  bm::rnn::layer_forward<T>(d, px, pl, ph0, pc0, pwi, pwh, pbi, pbh, pout + out_offset, ld_out,
                            phn, pcn, psv, php, pcs);
}

template <typename T>
void backward(int mode, const py::array& x, const Opt& lengths, const Opt& c0,
              const py::array& w_ih, const py::array& w_hh, const py::array& sv,
              const py::array& hp, const Opt& cs, const py::array& dout, int64_t dout_offset,
              const Opt& dhn, const Opt& dcn, bool batch_first, bool reverse, py::array& dx,
              bool accumulate_dx, py::array& dh0, const Opt& dc0, py::array& dw_ih,
              py::array& dw_hh, py::array& db_ih, py::array& db_hh, const std::string& precision) {
  const Shape s = dims_of(mode, x, w_hh, batch_first, reverse, precision);
  const auto& d = s.d;
  const int64_t GH = s.G * d.H, rows = d.T * d.B;
  const bool lstm = mode == bm::rnn::kLstm;
  const T* px = expect<T>(x, {x.shape(0), x.shape(1), d.I}, "x");
  const T* pwi = expect<T>(w_ih, {GH, d.I}, "w_ih");
  const T* pwh = expect<T>(w_hh, {GH, d.H}, "w_hh");
  const T* psv = expect<T>(sv, {rows, s.S}, "saved gates");
  const T* php = expect<T>(hp, {rows, d.H}, "saved h");
  BM_CHECK(!lstm || (c0 && cs && dc0), "rnn: LSTM backward needs c0, saved c and dc0");
  const T* pc0 = lstm ? expect_opt<T>(c0, {d.B, d.H}, "c0") : nullptr;
  const T* pcs = lstm ? expect_opt<T>(cs, {rows, d.H}, "saved c") : nullptr;
  const T* pdout = expect<T>(dout, {x.shape(0), x.shape(1), -1}, "grad_output");
  BM_CHECK(dout_offset >= 0 && dout_offset + d.H <= dout.shape(2), "rnn: grad_output has ",
           dout.shape(2), " features, cannot hold ", d.H, " at offset ", dout_offset);
  const T* pdhn = expect_opt<T>(dhn, {d.B, d.H}, "grad_h_n");
  const T* pdcn = lstm ? expect_opt<T>(dcn, {d.B, d.H}, "grad_c_n") : nullptr;
  T* pdx = expect<T>(dx, {x.shape(0), x.shape(1), d.I}, "dx", true);
  T* pdh0 = expect<T>(dh0, {d.B, d.H}, "dh0", true);
  T* pdc0 = lstm ? expect_opt<T>(dc0, {d.B, d.H}, "dc0", true) : nullptr;
  T* pdwi = expect<T>(dw_ih, {GH, d.I}, "dw_ih", true);
  T* pdwh = expect<T>(dw_hh, {GH, d.H}, "dw_hh", true);
  T* pdbi = expect<T>(db_ih, {GH}, "db_ih", true);
  T* pdbh = expect<T>(db_hh, {GH}, "db_hh", true);
  const int64_t* pl = lengths_ptr(lengths, d.T, d.B);
  const int64_t ld = dout.shape(2);
  py::gil_scoped_release nogil;
  bm::rnn::layer_backward<T>(d, px, pl, pc0, pwi, pwh, psv, php, pcs, pdout + dout_offset, ld,
                             pdhn, pdcn, pdx, accumulate_dx, pdh0, pdc0, pdwi, pdwh, pdbi, pdbh);
}

bool is_f64(const py::array& x) {
  if (is_dtype<double>(x)) return true;
  if (is_dtype<float>(x)) return false;
  throw py::type_error("rnn: x must be float32 or float64, got " + std::string(py::str(x.dtype())));
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_layer_forward",
        [](int mode, const py::array& x, const Opt& lengths, const py::array& h0, const Opt& c0,
           const py::array& w_ih, const py::array& w_hh, const py::array& b_ih,
           const py::array& b_hh, bool batch_first, bool reverse, py::array& out,
           int64_t out_offset, py::array& hn, const Opt& cn, const Opt& sv, const Opt& hp,
           const Opt& cs, const std::string& precision) {
          (is_f64(x) ? forward<double> : forward<float>)(mode, x, lengths, h0, c0, w_ih, w_hh,
                                                        b_ih, b_hh, batch_first, reverse, out,
                                                        out_offset, hn, cn, sv, hp, cs, precision);
        },
        py::arg("mode"), py::arg("x"), py::arg("lengths"), py::arg("h0"), py::arg("c0"),
        py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
        py::arg("batch_first"), py::arg("reverse"), py::arg("out"), py::arg("out_offset"),
        py::arg("hn"), py::arg("cn"), py::arg("sv"), py::arg("hp"), py::arg("cs"),
        py::arg("precision") = "native",
        "One layer-direction of RNN (mode 0 tanh, 1 relu), LSTM (2) or GRU (3) over a sequence; "
        "writes out[..., out_offset:out_offset+H], hn (and cn) and, when sv/hp/cs are given, "
        "what backward needs. Releases the GIL.");
  m.def("rnn_layer_backward",
        [](int mode, const py::array& x, const Opt& lengths, const Opt& c0,
           const py::array& w_ih, const py::array& w_hh, const py::array& sv,
           const py::array& hp, const Opt& cs, const py::array& dout, int64_t dout_offset,
           const Opt& dhn, const Opt& dcn, bool batch_first, bool reverse, py::array& dx,
           bool accumulate_dx, py::array& dh0, const Opt& dc0, py::array& dw_ih,
           py::array& dw_hh, py::array& db_ih, py::array& db_hh, const std::string& precision) {
          (is_f64(x) ? backward<double> : backward<float>)(
              mode, x, lengths, c0, w_ih, w_hh, sv, hp, cs, dout, dout_offset, dhn, dcn,
              batch_first, reverse, dx, accumulate_dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh,
              precision);
        },
        py::arg("mode"), py::arg("x"), py::arg("lengths"), py::arg("c0"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("sv"), py::arg("hp"), py::arg("cs"), py::arg("dout"),
        py::arg("dout_offset"), py::arg("dhn"), py::arg("dcn"), py::arg("batch_first"),
        py::arg("reverse"), py::arg("dx"), py::arg("accumulate_dx"), py::arg("dh0"),
        py::arg("dc0"), py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"), py::arg("db_hh"),
        py::arg("precision") = "native",
        "Backward through time of one layer-direction from rnn_layer_forward's saved arrays. "
        "Releases the GIL.");
}
