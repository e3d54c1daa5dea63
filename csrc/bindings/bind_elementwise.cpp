// pybind11 glue for element-wise kernels and fused optimizer updates: checks, GIL release.
#include "bindings/common.h"
#include "cpu/elementwise.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

// All arrays: same dtype (float32/float64), C-contiguous, same size; outputs writeable.
template <typename T>
T* ptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }
// Inputs are only read: a read-only array is fine there.
template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }

void check_same(const char* op, std::initializer_list<std::pair<const char*, py::array*>> arrs,
                bool& f64) {
  const py::array& first = *arrs.begin()->second;
  f64 = is_dtype<double>(first);
  if (!f64 && !is_dtype<float>(first))
    throw py::type_error(std::string(op) + ": arrays must be float32 or float64");
  for (auto& [name, a] : arrs) {
    if (!a->dtype().is(first.dtype()))
      throw py::type_error(std::string(op) + ": " + name + " has a different dtype");
    BM_CHECK(a->size() == first.size(), op, ": ", name, " has ", a->size(), " elements, expected ",
             first.size());
    BM_CHECK(a->flags() & py::array::c_style, op, ": ", name, " must be C-contiguous");
  }
}

}  // namespace

void bind_elementwise(py::module_& m) {
  m.def("relu_forward", [](py::array x, py::array y) {
    bool f64;
    check_same("relu_forward", {{"x", &x}, {"y", &y}}, f64);
    check_writeable(y, "y");
    py::gil_scoped_release nogil;
    if (f64) bm::relu_forward(cptr<double>(x), ptr<double>(y), x.size());
    else bm::relu_forward(cptr<float>(x), ptr<float>(y), x.size());
  });
  m.def("relu_backward", [](py::array dy, py::array x, py::array dx) {
    bool f64;
    check_same("relu_backward", {{"dy", &dy}, {"x", &x}, {"dx", &dx}}, f64);
    check_writeable(dx, "dx");
    py::gil_scoped_release nogil;
    if (f64) bm::relu_backward(cptr<double>(dy), cptr<double>(x), ptr<double>(dx), x.size());
    else bm::relu_backward(cptr<float>(dy), cptr<float>(x), ptr<float>(dx), x.size());
  });
  m.def("sgd_update", [](py::array w, py::array g, py::array buf, double lr, double momentum,
                         double wd, bool nesterov, bool first) {
    bool f64;
    check_same("sgd_update", {{"w", &w}, {"g", &g}, {"buf", &buf}}, f64);
    check_writeable(w, "w");
    check_writeable(buf, "buf");
    py::gil_scoped_release nogil;
    if (f64) bm::sgd_update(ptr<double>(w), cptr<double>(g), ptr<double>(buf), w.size(), lr, momentum, wd, nesterov, first);
    else bm::sgd_update(ptr<float>(w), cptr<float>(g), ptr<float>(buf), w.size(), lr, momentum, wd, nesterov, first);
  });
  m.def("adam_update", [](py::array w, py::array g, py::array mm, py::array v, double lr,
                          double b1, double b2, double eps, double wd, bool decoupled,
                          int64_t step) {
    bool f64;
    check_same("adam_update", {{"w", &w}, {"g", &g}, {"m", &mm}, {"v", &v}}, f64);
    check_writeable(w, "w");
    check_writeable(mm, "m");
    check_writeable(v, "v");
    BM_CHECK(step >= 1, "adam_update: step must be >= 1, got ", step);
    py::gil_scoped_release nogil;
    if (f64) bm::adam_update(ptr<double>(w), cptr<double>(g), ptr<double>(mm), ptr<double>(v), w.size(), lr, b1, b2, eps, wd, decoupled, step);
    else bm::adam_update(ptr<float>(w), cptr<float>(g), ptr<float>(mm), ptr<float>(v), w.size(), lr, b1, b2, eps, wd, decoupled, step);
  });
}
