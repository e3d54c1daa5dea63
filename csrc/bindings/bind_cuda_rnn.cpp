// pybind11 glue for the CUDA RNN family (one layer-direction per call, see cuda/rnn.h): argument
// checks, GIL release, no math. python/bigmodel/ops/rnn.py chains layers and directions and
// calls these with CuPy arrays, in the argument order of the CPU binding (bind_rnn.cpp) plus a
// workspace and the stream:
//   rnn_layer_forward(mode, x, lengths, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_first, reverse,
//                     out, out_offset, hn, cn, sv, hp, cs, workspace, precision, stream_ptr)
//   rnn_layer_backward(mode, x, lengths, c0, w_ih, w_hh, sv, hp, cs, dout, dout_offset, dhn, dcn,
//                      batch_first, reverse, dx, accumulate_dx, dh0, dc0, dw_ih, dw_hh, db_ih,
//                      db_hh, workspace, precision, stream_ptr)
//   rnn_workspace_size(mode, T, B, H, training, backward) -> elements of x's dtype
// Arrays are read through __cuda_array_interface__ (pointer, shape, typestr, strides): each is
// checked for dtype, shape, C-contiguity and (outputs) writability here, and every pointer for
// being device memory of the current device in cuda/rnn.cu, before anything is launched.
// lengths: int64 (B,) on the device; its values are only compared by the kernels.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"
#include "cuda/rnn.h"

namespace py = pybind11;
using bm::cuda::DType;
using bm::cuda::Precision;

namespace {

// One array as seen through __cuda_array_interface__ (version 2 or 3).
struct DevArray {
  std::uintptr_t ptr = 0;
  std::vector<int64_t> shape;
  std::string typestr;
  bool contiguous = true, readonly = false;
};

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + (s.size() == 1 ? ",)" : ")");
}

DevArray dev_array(const py::handle& obj, const char* name) {
  if (!py::hasattr(obj, "__cuda_array_interface__"))
    throw py::type_error(std::string("rnn: ") + name + " must be a CuPy array (an object with "
                         "__cuda_array_interface__), got " +
                         std::string(Py_TYPE(obj.ptr())->tp_name));
  const py::dict cai = obj.attr("__cuda_array_interface__");
  DevArray a;
  const py::tuple data = cai["data"];
  a.ptr = data[0].cast<std::uintptr_t>();
  a.readonly = data[1].cast<bool>();
  a.shape = cai["shape"].cast<std::vector<int64_t>>();
  a.typestr = cai["typestr"].cast<std::string>();
  BM_CHECK(!cai.contains("mask") || cai["mask"].is_none(), "rnn: ", name, " is a masked array");
  if (cai.contains("strides") && !cai["strides"].is_none()) {
    const auto strides = cai["strides"].cast<std::vector<int64_t>>();
    BM_CHECK(strides.size() == a.shape.size(), "rnn: ", name, " has inconsistent strides");
    const int64_t item = a.typestr.size() >= 3 ? std::stoll(a.typestr.substr(2)) : 0;
    int64_t want = item;
    for (size_t i = a.shape.size(); i-- > 0;) {
      if (a.shape[i] != 1 && strides[i] != want) a.contiguous = false;
      want *= a.shape[i];
    }
  }
  return a;
}

const char* typestr_of(DType t) { return t == DType::f64 ? "<f8" : "<f4"; }

// Checks dtype, shape (-1 = any), C-contiguity and writability; returns the device pointer.
void* expect(const py::handle& obj, DType dt, std::vector<int64_t> shape, const char* name,
             bool write = false) {
  const DevArray a = dev_array(obj, name);
  if (a.typestr != typestr_of(dt))
    throw py::type_error(std::string("rnn: ") + name + " must have dtype " +
                         (dt == DType::f64 ? "float64" : "float32") + " like x, got typestr '" +
                         a.typestr + "'");
  bool ok = a.shape.size() == shape.size();
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape[i] == shape[i];
  std::string want = "(";
  for (size_t i = 0; i < shape.size(); ++i)
    want += (i ? ", " : "") + (shape[i] < 0 ? std::string("*") : std::to_string(shape[i]));
  BM_CHECK(ok, "rnn: ", name, " has shape ", shape_str(a.shape), ", expected ", want,
           shape.size() == 1 ? ",)" : ")");
  BM_CHECK(a.contiguous, "rnn: ", name, " must be C-contiguous");
  BM_CHECK(!write || !a.readonly, "rnn: ", name, " is read-only");
  return reinterpret_cast<void*>(a.ptr);
}

void* expect_opt(const py::object& obj, DType dt, std::vector<int64_t> shape, const char* name,
                 bool write = false) {
  return obj.is_none() ? nullptr : expect(obj, dt, std::move(shape), name, write);
}

const int64_t* lengths_ptr(const py::object& obj, int64_t B) {
  if (obj.is_none()) return nullptr;
  const DevArray a = dev_array(obj, "lengths");
  if (a.typestr != "<i8") throw py::type_error("rnn: lengths must be int64, got typestr '" + a.typestr + "'");
  BM_CHECK(a.shape.size() == 1 && a.shape[0] == B && a.contiguous, "rnn: lengths has shape ",
           shape_str(a.shape), ", expected (", B, ",)");
  return reinterpret_cast<const int64_t*>(a.ptr);
}

Precision parse_precision(const std::string& s) {
  if (s == "native") return Precision::native;
  if (s == "tf32") return Precision::tf32;
  if (s == "bf16") return Precision::bf16;
  BM_CHECK(false, "rnn: precision must be 'native', 'tf32' or 'bf16', got '", s, "'");
  return Precision::native;
}

// Dims from x (3-D, batch-first or time-major) and w_hh (G*H, H).
bm::cuda::RnnDims dims_of(int mode, const py::object& x, const py::object& w_hh, bool batch_first,
                          bool reverse, const std::string& precision) {
  BM_CHECK(mode >= 0 && mode <= 3, "rnn: unknown mode ", mode);
  const DevArray ax = dev_array(x, "x");
  const DevArray aw = dev_array(w_hh, "w_hh");
  BM_CHECK(ax.shape.size() == 3, "rnn: x must be 3-D, got shape ", shape_str(ax.shape));
  BM_CHECK(aw.shape.size() == 2, "rnn: w_hh must be 2-D, got shape ", shape_str(aw.shape));
  bm::cuda::RnnDims d;
  d.mode = mode;
  d.T = batch_first ? ax.shape[1] : ax.shape[0];
  d.B = batch_first ? ax.shape[0] : ax.shape[1];
  d.I = ax.shape[2];
  d.H = aw.shape[1];
  d.batch_first = batch_first, d.reverse = reverse;
  if (ax.typestr == "<f4")
    d.dtype = DType::f32;
  else if (ax.typestr == "<f8")
    d.dtype = DType::f64;
  else
    throw py::type_error("rnn: x must be float32 or float64, got typestr '" + ax.typestr + "'");
  d.precision = parse_precision(precision);
  BM_CHECK(d.dtype == DType::f32 || d.precision == Precision::native,
           "rnn: precision '", precision, "' needs float32 x");
  BM_CHECK(d.T >= 1 && d.B >= 1 && d.I >= 1 && d.H >= 1, "rnn: sizes must be positive, got x ",
           shape_str(ax.shape), ", w_hh ", shape_str(aw.shape));
  return d;
}

void* workspace(const py::object& w, DType dt, int64_t need) {
  if (need == 0 && w.is_none()) return nullptr;
  BM_CHECK(!w.is_none(), "rnn: a workspace of ", need, " elements is needed, got None");
  void* p = expect(w, dt, {-1}, "workspace", true);
  const int64_t have = dev_array(w, "workspace").shape[0];
  BM_CHECK(have >= need, "rnn: workspace has ", have, " elements, needs ", need);
  return p;
}

void forward(int mode, const py::object& x, const py::object& lengths, const py::object& h0,
             const py::object& c0, const py::object& w_ih, const py::object& w_hh,
             const py::object& b_ih, const py::object& b_hh, bool batch_first, bool reverse,
             const py::object& out, int64_t out_offset, const py::object& hn, const py::object& cn,
             const py::object& sv, const py::object& hp, const py::object& cs,
             const py::object& work, const std::string& precision, std::uintptr_t stream) {
  bm::cuda::RnnForwardArgs a;
  a.d = dims_of(mode, x, w_hh, batch_first, reverse, precision);
  const auto& d = a.d;
  const DType dt = d.dtype;
  const int64_t GH = bm::cuda::rnn_gates(mode) * d.H, rows = d.T * d.B;
  const int64_t S = bm::cuda::rnn_saved_width(mode) * d.H;
  const bool lstm = mode == 2;
  const DevArray ax = dev_array(x, "x");
  a.x = expect(x, dt, ax.shape, "x");
  a.w_ih = expect(w_ih, dt, {GH, d.I}, "w_ih");
  a.w_hh = expect(w_hh, dt, {GH, d.H}, "w_hh");
  a.b_ih = expect(b_ih, dt, {GH}, "b_ih");
  a.b_hh = expect(b_hh, dt, {GH}, "b_hh");
  a.h0 = expect(h0, dt, {d.B, d.H}, "h0");
  BM_CHECK(!lstm || (!c0.is_none() && !cn.is_none()), "rnn: LSTM needs c0 and cn");
  a.c0 = lstm ? expect(c0, dt, {d.B, d.H}, "c0") : nullptr;
  const DevArray ao = dev_array(out, "out");
  char* po = static_cast<char*>(expect(out, dt, {ax.shape[0], ax.shape[1], -1}, "out", true));
  BM_CHECK(out_offset >= 0 && out_offset + d.H <= ao.shape[2], "rnn: out has ", ao.shape[2],
           " features, cannot hold ", d.H, " at offset ", out_offset);
  a.out = po + out_offset * (dt == DType::f64 ? 8 : 4);
  a.ld_out = ao.shape[2];
  a.hn = expect(hn, dt, {d.B, d.H}, "hn", true);
  a.cn = lstm ? expect(cn, dt, {d.B, d.H}, "cn", true) : nullptr;
  a.sv = expect_opt(sv, dt, {rows, S}, "saved gates", true);
  a.hp = expect_opt(hp, dt, {rows, d.H}, "saved h", true);
  a.cs = lstm ? expect_opt(cs, dt, {rows, d.H}, "saved c", true) : nullptr;
  BM_CHECK((a.sv == nullptr) == (a.hp == nullptr) && (!lstm || (a.sv == nullptr) == (a.cs == nullptr)),
           "rnn: saved gates, h (and c) go together");
  a.lengths = lengths_ptr(lengths, d.B);
  a.work_elems = bm::cuda::rnn_forward_workspace(d, a.sv != nullptr);
  a.work = workspace(work, dt, a.work_elems);
  // Launches only queue work, but the runtime may block (context creation, a full queue).
  py::gil_scoped_release nogil;
  bm::cuda::launch_rnn_layer_forward(a, stream);
}

void backward(int mode, const py::object& x, const py::object& lengths, const py::object& c0,
              const py::object& w_ih, const py::object& w_hh, const py::object& sv,
              const py::object& hp, const py::object& cs, const py::object& dout,
              int64_t dout_offset, const py::object& dhn, const py::object& dcn, bool batch_first,
              bool reverse, const py::object& dx, bool accumulate_dx, const py::object& dh0,
              const py::object& dc0, const py::object& dw_ih, const py::object& dw_hh,
              const py::object& db_ih, const py::object& db_hh, const py::object& work,
              const std::string& precision, std::uintptr_t stream) {
  bm::cuda::RnnBackwardArgs a;
  a.d = dims_of(mode, x, w_hh, batch_first, reverse, precision);
  const auto& d = a.d;
  const DType dt = d.dtype;
  const int64_t GH = bm::cuda::rnn_gates(mode) * d.H, rows = d.T * d.B;
  const int64_t S = bm::cuda::rnn_saved_width(mode) * d.H;
  const bool lstm = mode == 2;
  const DevArray ax = dev_array(x, "x");
  a.x = expect(x, dt, ax.shape, "x");
  a.w_ih = expect(w_ih, dt, {GH, d.I}, "w_ih");
  a.w_hh = expect(w_hh, dt, {GH, d.H}, "w_hh");
  a.sv = expect(sv, dt, {rows, S}, "saved gates");
  a.hp = expect(hp, dt, {rows, d.H}, "saved h");
  BM_CHECK(!lstm || (!c0.is_none() && !cs.is_none() && !dc0.is_none()),
           "rnn: LSTM backward needs c0, saved c and dc0");
  a.c0 = lstm ? expect(c0, dt, {d.B, d.H}, "c0") : nullptr;
  a.cs = lstm ? expect(cs, dt, {rows, d.H}, "saved c") : nullptr;
  const DevArray ad = dev_array(dout, "grad_output");
  const char* pd = static_cast<const char*>(expect(dout, dt, {ax.shape[0], ax.shape[1], -1}, "grad_output"));
  BM_CHECK(dout_offset >= 0 && dout_offset + d.H <= ad.shape[2], "rnn: grad_output has ",
           ad.shape[2], " features, cannot hold ", d.H, " at offset ", dout_offset);
  a.dout = pd + dout_offset * (dt == DType::f64 ? 8 : 4);
  a.ld_dout = ad.shape[2];
  a.dhn = expect_opt(dhn, dt, {d.B, d.H}, "grad_h_n");
  a.dcn = lstm ? expect_opt(dcn, dt, {d.B, d.H}, "grad_c_n") : nullptr;
  a.dx = expect(dx, dt, ax.shape, "dx", true);
  a.accumulate_dx = accumulate_dx;
  a.dh0 = expect(dh0, dt, {d.B, d.H}, "dh0", true);
  a.dc0 = lstm ? expect(dc0, dt, {d.B, d.H}, "dc0", true) : nullptr;
  a.dw_ih = expect(dw_ih, dt, {GH, d.I}, "dw_ih", true);
  a.dw_hh = expect(dw_hh, dt, {GH, d.H}, "dw_hh", true);
  a.db_ih = expect(db_ih, dt, {GH}, "db_ih", true);
  a.db_hh = expect(db_hh, dt, {GH}, "db_hh", true);
  a.lengths = lengths_ptr(lengths, d.B);
  a.work_elems = bm::cuda::rnn_backward_workspace(d);
  a.work = workspace(work, dt, a.work_elems);
  py::gil_scoped_release nogil;
  bm::cuda::launch_rnn_layer_backward(a, stream);
}

int64_t workspace_size(int mode, int64_t T, int64_t B, int64_t H, bool training, bool backward) {
  BM_CHECK(mode >= 0 && mode <= 3, "rnn: unknown mode ", mode);
  BM_CHECK(T >= 1 && B >= 1 && H >= 1, "rnn: sizes must be positive, got T=", T, " B=", B, " H=", H);
  bm::cuda::RnnDims d;
  d.mode = mode, d.T = T, d.B = B, d.H = H, d.I = 1;
  return backward ? bm::cuda::rnn_backward_workspace(d) : bm::cuda::rnn_forward_workspace(d, training);
}

}  // namespace

void bind_cuda_rnn(py::module_& m) {
  m.def("rnn_workspace_size", &workspace_size, py::arg("mode"), py::arg("T"), py::arg("B"),
        py::arg("H"), py::arg("training"), py::arg("backward"),
        "Elements (of x's dtype) of the workspace rnn_layer_forward (training or not) or "
        "rnn_layer_backward needs.");
  m.def("rnn_layer_forward", &forward, py::arg("mode"), py::arg("x"), py::arg("lengths"),
        py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
        py::arg("b_hh"), py::arg("batch_first"), py::arg("reverse"), py::arg("out"),
        py::arg("out_offset"), py::arg("hn"), py::arg("cn"), py::arg("sv"), py::arg("hp"),
        py::arg("cs"), py::arg("workspace"), py::arg("precision"), py::arg("stream_ptr"),
        "One layer-direction of RNN (mode 0 tanh, 1 relu), LSTM (2) or GRU (3) over a sequence "
        "on CuPy arrays, queued on stream_ptr; writes out[..., out_offset:out_offset+H], hn (and "
        "cn) and, when sv/hp/cs are given, what backward needs. Releases the GIL.");
  m.def("rnn_layer_backward", &backward, py::arg("mode"), py::arg("x"), py::arg("lengths"),
        py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("sv"), py::arg("hp"),
        py::arg("cs"), py::arg("dout"), py::arg("dout_offset"), py::arg("dhn"), py::arg("dcn"),
        py::arg("batch_first"), py::arg("reverse"), py::arg("dx"), py::arg("accumulate_dx"),
        py::arg("dh0"), py::arg("dc0"), py::arg("dw_ih"), py::arg("dw_hh"), py::arg("db_ih"),
        py::arg("db_hh"), py::arg("workspace"), py::arg("precision"), py::arg("stream_ptr"),
        "Backward through time of one layer-direction from rnn_layer_forward's saved arrays, on "
        "CuPy arrays, queued on stream_ptr. Releases the GIL.");
}
