// The free or nudged relaxation of a one-hidden-layer EP network, fused: each sample's states stay in L1 cache
// for all T steps, and one pass over the hidden units per step forms both products with W (see htsep/fused.py).
//
//   u_h = d + W^T s_o          d = W_1 x + b_1                     (old s_o)
//   u_o = c + W s_h - beta s_o  c = b_2 (+ beta y when nudged)      (old s_h: a synchronous step)
//   s <- s + dt * (clamp(u, 0, 1) - s)
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>

namespace {

constexpr int64_t kLanes = 16;  // hidden units per vector chunk

inline float hard_sigmoid(float u) { return std::min(std::max(u, 0.f), 1.f); }

template <int64_t O>
void relax_sample(float* sh, float* so, const float* d, const float* c, const float* w, const float* dt_h,
                  const float* dt_o, int64_t hidden, int64_t steps, float beta) {
  for (int64_t t = 0; t < steps; ++t) {
    float acc[O][kLanes] = {};  // partial sums of W s_h, one vector per output
    float tail[O] = {};
    int64_t j0 = 0;
    for (; j0 + kLanes <= hidden; j0 += kLanes) {
      float u[kLanes];
#pragma omp simd
      for (int64_t k = 0; k < kLanes; ++k) u[k] = d[j0 + k];
      for (int64_t i = 0; i < O; ++i) {
        const float* wi = w + i * hidden + j0;
        const float si = so[i];
#pragma omp simd
        for (int64_t k = 0; k < kLanes; ++k) {
          acc[i][k] += wi[k] * sh[j0 + k];
          u[k] += si * wi[k];
        }
      }
#pragma omp simd
      for (int64_t k = 0; k < kLanes; ++k) sh[j0 + k] += dt_h[j0 + k] * (hard_sigmoid(u[k]) - sh[j0 + k]);
    }
    for (int64_t j = j0; j < hidden; ++j) {
      float u = d[j];
      for (int64_t i = 0; i < O; ++i) {
        tail[i] += w[i * hidden + j] * sh[j];
        u += so[i] * w[i * hidden + j];
      }
      sh[j] += dt_h[j] * (hard_sigmoid(u) - sh[j]);
    }
    for (int64_t i = 0; i < O; ++i) {
      float wsh = tail[i];
      for (int64_t k = 0; k < kLanes; ++k) wsh += acc[i][k];
      so[i] += dt_o[i] * (hard_sigmoid(c[i] + wsh - beta * so[i]) - so[i]);
    }
  }
}

template <int64_t O>
void relax_all(torch::Tensor& s_h, torch::Tensor& s_o, const torch::Tensor& d, const torch::Tensor& c,
               const torch::Tensor& w, const torch::Tensor& dt_h, const torch::Tensor& dt_o, int64_t steps,
               float beta) {
  const int64_t runs = s_h.size(0), batch = s_h.size(1), hidden = s_h.size(2);
  const bool c_per_sample = c.size(1) == batch;
  float* sh = s_h.data_ptr<float>();
  float* so = s_o.data_ptr<float>();
  const float *pd = d.data_ptr<float>(), *pc = c.data_ptr<float>(), *pw = w.data_ptr<float>();
  const float *pdt_h = dt_h.data_ptr<float>(), *pdt_o = dt_o.data_ptr<float>();
  at::parallel_for(0, runs * batch, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const int64_t r = n / batch;
      relax_sample<O>(sh + n * hidden, so + n * O, pd + n * hidden, pc + (c_per_sample ? n : r) * O,
                      pw + r * O * hidden, pdt_h + r * hidden, pdt_o + r * O, hidden, steps, beta);
    }
  });
}

}  // namespace

// In place on s_h [R, B, H] and s_o [R, B, O]; d [R, B, H]; c [R, B or 1, O]; w [R, O, H]; dt_h [R, H];
// dt_o [R, O]; all contiguous float32 on the CPU, O <= 16.
void relax(torch::Tensor s_h, torch::Tensor s_o, torch::Tensor d, torch::Tensor c, torch::Tensor w,
           torch::Tensor dt_h, torch::Tensor dt_o, int64_t steps, double beta) {
  for (const auto& t : {s_h, s_o, d, c, w, dt_h, dt_o}) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == torch::kFloat32 && t.device().is_cpu(),
                "relax: contiguous float32 CPU tensors expected");
  }
  const auto b = static_cast<float>(beta);
  switch (s_o.size(2)) {
#define HTSEP_CASE(O) \
  case O:             \
    return relax_all<O>(s_h, s_o, d, c, w, dt_h, dt_o, steps, b);
    HTSEP_CASE(1) HTSEP_CASE(2) HTSEP_CASE(3) HTSEP_CASE(4) HTSEP_CASE(5) HTSEP_CASE(6) HTSEP_CASE(7) HTSEP_CASE(8)
    HTSEP_CASE(9) HTSEP_CASE(10) HTSEP_CASE(11) HTSEP_CASE(12) HTSEP_CASE(13) HTSEP_CASE(14) HTSEP_CASE(15)
    HTSEP_CASE(16)
#undef HTSEP_CASE
    default:
      TORCH_CHECK(false, "relax: at most 16 outputs, got ", s_o.size(2));
  }
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("relax", &relax, "fused relaxation of a one-hidden-layer EP net"); }
