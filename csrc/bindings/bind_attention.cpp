// pybind11 glue for fused attention: argument checks, GIL release, no math.
#include "bindings/common.h"
#include "cpu/attention.h"

namespace py = pybind11;
using namespace bm::py_util;

namespace {

bool c_contig(const py::array& a) { return (a.flags() & py::array::c_style) != 0; }

template <typename T>
bm::AttnArgs<T> make_args(const py::array& q, const py::array& k, const py::array& v,
                          const py::object& mask, int mask_kind, bool causal, double scale,
                          const py::array& out, const py::array& lse) {
  for (auto [x, n] : {std::pair{&q, "q"}, {&k, "k"}, {&v, "v"}, {&out, "out"}}) {
    check_ndim(*x, 4, n);
    BM_CHECK(x->dtype().is(py::dtype::of<T>()), "attention: ", n, " must have the dtype of q");
  }
  check_ndim(lse, 3, "lse");
  BM_CHECK(lse.dtype().is(py::dtype::of<T>()), "attention: lse must have the dtype of q");
  bm::AttnArgs<T> a;
  a.B = q.shape(0), a.H = q.shape(1), a.Sq = q.shape(2), a.D = q.shape(3);
  a.Sk = k.shape(2), a.Dv = v.shape(3);
  BM_CHECK(k.shape(0) == a.B && k.shape(1) == a.H && k.shape(3) == a.D && v.shape(0) == a.B &&
               v.shape(1) == a.H && v.shape(2) == a.Sk,
           "attention: shapes do not match: q ", shape_str(q), ", k ", shape_str(k), ", v ",
           shape_str(v));
  BM_CHECK(out.shape(0) == a.B && out.shape(1) == a.H && out.shape(2) == a.Sq &&
               out.shape(3) == a.Dv && c_contig(out),
           "attention: out must be C-contiguous (B, H, Sq, Dv), got ", shape_str(out));
  BM_CHECK(lse.shape(0) == a.B && lse.shape(1) == a.H && lse.shape(2) == a.Sq && c_contig(lse),
           "attention: lse must be C-contiguous (B, H, Sq), got ", shape_str(lse));
  const std::pair<const py::array*, int64_t*> ins[] = {{&q, a.qs}, {&k, a.ks}, {&v, a.vs}};
  for (auto [x, s] : ins) {
    auto st = elem_strides(*x, "q/k/v");
    BM_CHECK(st[3] == 1 || x->shape(3) <= 1 || x->size() == 0, "attention: q, k, v need a unit stride on the last axis");
    s[0] = st[0], s[1] = st[1], s[2] = st[2];
  }
  a.q = static_cast<const T*>(q.data());
  a.k = static_cast<const T*>(k.data());
  a.v = static_cast<const T*>(v.data());
  a.out = static_cast<T*>(const_cast<void*>(out.data()));
  a.lse = static_cast<T*>(const_cast<void*>(lse.data()));
  a.causal = causal;
  a.scale = static_cast<T>(scale);
  BM_CHECK(mask_kind >= 0 && mask_kind <= 2, "attention: mask_kind must be 0, 1 or 2");
  a.mask_kind = static_cast<bm::MaskKind>(mask_kind);
  if (a.mask_kind != bm::MaskKind::none) {
    BM_CHECK(!mask.is_none(), "attention: mask_kind needs a mask");
    py::array m = mask.cast<py::array>();
    check_ndim(m, 4, "mask");
    BM_CHECK(m.shape(0) == a.B && m.shape(1) == a.H && m.shape(2) == a.Sq && m.shape(3) == a.Sk,
             "attention: mask must be broadcast to (B, H, Sq, Sk), got ", shape_str(m));
    if (a.mask_kind == bm::MaskKind::boolean)
      BM_CHECK(m.itemsize() == 1, "attention: a boolean mask must be bool/uint8");
    else
      BM_CHECK(m.dtype().is(py::dtype::of<T>()), "attention: an additive mask must have q's dtype");
    auto st = elem_strides(m, "mask");
    for (int i = 0; i < 4; ++i) a.ms[i] = st[i];
    a.mask = m.data();
  }
  return a;
}

void forward(const py::array& q, const py::array& k, const py::array& v, const py::object& mask,
             int mask_kind, bool causal, double scale, py::array& out, py::array& lse) {
  check_writeable(out, "out");
  check_writeable(lse, "lse");
  if (is_dtype<float>(q)) {
    auto a = make_args<float>(q, k, v, mask, mask_kind, causal, scale, out, lse);
    py::gil_scoped_release nogil;
    bm::attention_forward<float>(a);
  } else if (is_dtype<double>(q)) {
    auto a = make_args<double>(q, k, v, mask, mask_kind, causal, scale, out, lse);
    py::gil_scoped_release nogil;
    bm::attention_forward<double>(a);
  } else {
    throw py::type_error("attention: q must be float32 or float64");
  }
}

template <typename T>
void backward_t(const py::array& dout, const py::array& q, const py::array& k, const py::array& v,
                const py::array& out, const py::array& lse, const py::object& mask, int mask_kind,
                bool causal, double scale, py::array& dq, py::array& dk, py::array& dv) {
  auto a = make_args<T>(q, k, v, mask, mask_kind, causal, scale, out, lse);
  for (auto [x, ref, n] : {std::tuple{&dout, &out, "dout"}, {&dq, &q, "dq"}, {&dk, &k, "dk"},
                           {&dv, &v, "dv"}}) {
    check_ndim(*x, 4, n);
    BM_CHECK(x->dtype().is(py::dtype::of<T>()) && c_contig(*x), "attention_backward: ", n,
             " must be C-contiguous with q's dtype");
    for (int i = 0; i < 4; ++i)
      BM_CHECK(x->shape(i) == ref->shape(i), "attention_backward: ", n, " has shape ",
               shape_str(*x), ", expected ", shape_str(*ref));
  }
  for (auto [x, n] : {std::pair{&dq, "dq"}, {&dk, "dk"}, {&dv, "dv"}}) check_writeable(*x, n);
  a.dout = static_cast<const T*>(dout.data());
  a.dq = static_cast<T*>(dq.mutable_data());
  a.dk = static_cast<T*>(dk.mutable_data());
  a.dv = static_cast<T*>(dv.mutable_data());
  py::gil_scoped_release nogil;
  bm::attention_backward<T>(a);
}

void backward(const py::array& dout, const py::array& q, const py::array& k, const py::array& v,
              const py::array& out, const py::array& lse, const py::object& mask, int mask_kind,
              bool causal, double scale, py::array& dq, py::array& dk, py::array& dv) {
  if (is_dtype<float>(q)) backward_t<float>(dout, q, k, v, out, lse, mask, mask_kind, causal, scale, dq, dk, dv);
  else if (is_dtype<double>(q)) backward_t<double>(dout, q, k, v, out, lse, mask, mask_kind, causal, scale, dq, dk, dv);
  else throw py::type_error("attention_backward: q must be float32 or float64");
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("attention_forward", &forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("mask_kind"), py::arg("causal"), py::arg("scale"), py::arg("out"), py::arg("lse"),
        "Fused attention forward into out (B,H,Sq,Dv) and lse (B,H,Sq), both C-contiguous. "
        "mask_kind: 0 none, 1 boolean (uint8, (B,H,Sq,Sk) view), 2 additive. Releases the GIL.");
  m.def("attention_backward", &backward, py::arg("dout"), py::arg("q"), py::arg("k"),
        py::arg("v"), py::arg("out"), py::arg("lse"), py::arg("mask"), py::arg("mask_kind"),
        py::arg("causal"), py::arg("scale"), py::arg("dq"), py::arg("dk"), py::arg("dv"),
        "Fused attention backward; dq, dk, dv C-contiguous and zero-filled. Releases the GIL.");
}
