// The free or nudged relaxation of a one-hidden-layer EP network, fused (see htsep/fused.py).
//
//   u_h = d + W^T s_o          d = W_1 x + b_1                     (old s_o)
//   u_o = c + W s_h - beta s_o  c = b_2 (+ beta y when nudged)      (old s_h: a synchronous step)
//   s <- s + dt * (clamp(u, 0, 1) - s)
//
// A call relaxes one phase in place, then optionally branches: each branch k relaxes on from that phase's result
// with its own c_k, steps_k and beta_k into its own outputs (EP's nudged phases from the free equilibrium), so a
// training batch is one call, and its drive and states are transposed once.
//
// Layout: one vector lane per sample. A block of kLanes samples of one run is transposed into [hidden][lane]
// buffers and relaxed for all steps there (L1-resident: 2 x hidden x kLanes floats, plus W). Per step, one pass
// over the hidden units j: the O outputs' states and partial sums W s_h stay in registers, and each weight
// W[i][j], loaded once as a broadcast, feeds 2 kLanes-wide FMAs (one per product). Every sample's arithmetic
// happens in its own lane in a fixed order, so results do not depend on the block a sample falls in.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace {

#if defined(__AVX512F__)
constexpr int64_t kLanes = 16;
#else
constexpr int64_t kLanes = 8;  // AVX2 (and the generic fallback)
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));

// v - 0 is v for every float, so this is one broadcast load; Vec{} + v is not (-0 + 0 = +0): the compiler then
// emits a scalar add and a register broadcast per weight, which compete with the FMAs for ports (a third slower).
inline Vec splat(float v) { return v - Vec{}; }
inline Vec hard_sigmoid(Vec u) {
  const Vec zero = splat(0.f), one = splat(1.f);
  u = u > zero ? u : zero;
  return u < one ? u : one;
}

// One block: sh [hidden][kLanes] and so [O] (both in/out), d [hidden][kLanes], c [O], wt [hidden][O] (W^T).
template <int64_t O>
void relax_block(Vec* sh, Vec* so_io, const Vec* d, const Vec* c, const float* wt, const float* dt_h,
                 const float* dt_o, int64_t hidden, int64_t steps, float beta) {
  Vec so[O], dto[O];
  for (int64_t i = 0; i < O; ++i) so[i] = so_io[i], dto[i] = splat(dt_o[i]);
  const Vec neg_beta = splat(-beta);
  for (int64_t t = 0; t < steps; ++t) {
    Vec acc[O];  // u_o, accumulated over the hidden units
    for (int64_t i = 0; i < O; ++i) acc[i] = c[i] + neg_beta * so[i];
    for (int64_t j = 0; j < hidden; ++j) {
      const float* w = wt + j * O;
      const Vec s = sh[j];
      Vec u = d[j];
      for (int64_t i = 0; i < O; ++i) {
        const Vec wij = splat(w[i]);
        acc[i] += wij * s;
        u += wij * so[i];
      }
      sh[j] = s + splat(dt_h[j]) * (hard_sigmoid(u) - s);
    }
    for (int64_t i = 0; i < O; ++i) so[i] += dto[i] * (hard_sigmoid(acc[i]) - so[i]);
  }
  for (int64_t i = 0; i < O; ++i) so_io[i] = so[i];
}

struct Branch {  // a phase relaxed on from the first phase's result, written to its own outputs
  const float* c;
  int64_t steps;
  float beta;
  float *s_h, *s_o;
};

template <int64_t O>
void relax_all(torch::Tensor& s_h, torch::Tensor& s_o, const torch::Tensor& d, const torch::Tensor& c,
               const torch::Tensor& w, const torch::Tensor& dt_h, const torch::Tensor& dt_o, int64_t steps,
               float beta, const std::vector<Branch>& branches) {
  const int64_t runs = s_h.size(0), batch = s_h.size(1), hidden = s_h.size(2);
  const int64_t blocks = (batch + kLanes - 1) / kLanes;
  const bool c_per_sample = c.size(1) == batch;
  float* psh = s_h.data_ptr<float>();
  float* pso = s_o.data_ptr<float>();
  const float *pd = d.data_ptr<float>(), *pc = c.data_ptr<float>(), *pw = w.data_ptr<float>();
  const float *pdt_h = dt_h.data_ptr<float>(), *pdt_o = dt_o.data_ptr<float>();
  std::vector<float> wt(runs * hidden * O);  // W^T per run: the O weights of hidden unit j are adjacent
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < O; ++i)
      for (int64_t j = 0; j < hidden; ++j) wt[(r * hidden + j) * O + i] = pw[(r * O + i) * hidden + j];
  at::parallel_for(0, runs * blocks, 1, [&](int64_t begin, int64_t end) {
    // sh, d, so, c of one block, lane-major (padding lanes zero), and a branch's copies of sh, so and its c
    std::vector<Vec> buf(3 * hidden + 4 * O);
    Vec *sh = buf.data(), *dv = sh + hidden, *so = dv + hidden, *cv = so + O;
    Vec *bsh = cv + O, *bso = bsh + hidden, *bcv = bso + O;
    for (int64_t n = begin; n < end; ++n) {
      const int64_t r = n / blocks, b0 = (n % blocks) * kLanes, lanes = std::min(kLanes, batch - b0);
      const float *wr = wt.data() + r * hidden * O, *dtr_h = pdt_h + r * hidden, *dtr_o = pdt_o + r * O;
      std::fill(buf.begin(), buf.end(), Vec{});
      for (int64_t k = 0; k < lanes; ++k) {
        const int64_t row = r * batch + b0 + k;
        for (int64_t j = 0; j < hidden; ++j) sh[j][k] = psh[row * hidden + j], dv[j][k] = pd[row * hidden + j];
        const float* ck = pc + (c_per_sample ? row : r) * O;
        for (int64_t i = 0; i < O; ++i) so[i][k] = pso[row * O + i], cv[i][k] = ck[i];
      }
      relax_block<O>(sh, so, dv, cv, wr, dtr_h, dtr_o, hidden, steps, beta);
      for (int64_t k = 0; k < lanes; ++k) {
        const int64_t row = r * batch + b0 + k;
        for (int64_t j = 0; j < hidden; ++j) psh[row * hidden + j] = sh[j][k];
        for (int64_t i = 0; i < O; ++i) pso[row * O + i] = so[i][k];
      }
      for (const Branch& br : branches) {
        std::copy(sh, sh + hidden, bsh);
        std::copy(so, so + O, bso);
        for (int64_t k = 0; k < lanes; ++k) {  // branch c is per sample (b_2 + beta y)
          const float* ck = br.c + (r * batch + b0 + k) * O;
          for (int64_t i = 0; i < O; ++i) bcv[i][k] = ck[i];
        }
        relax_block<O>(bsh, bso, dv, bcv, wr, dtr_h, dtr_o, hidden, br.steps, br.beta);
        for (int64_t k = 0; k < lanes; ++k) {
          const int64_t row = r * batch + b0 + k;
          for (int64_t j = 0; j < hidden; ++j) br.s_h[row * hidden + j] = bsh[j][k];
          for (int64_t i = 0; i < O; ++i) br.s_o[row * O + i] = bso[i][k];
        }
      }
    }
  });
}

}  // namespace

// In place on s_h [R, B, H] and s_o [R, B, O]; d [R, B, H]; c [R, B or 1, O]; w [R, O, H]; dt_h [R, H];
// dt_o [R, O]; all contiguous float32 on the CPU, O <= 16. Branch k: c_k [R, B, O], branch_steps[k],
// branch_beta[k], outputs out_h[k] [R, B, H] and out_o[k] [R, B, O].
void relax(torch::Tensor s_h, torch::Tensor s_o, torch::Tensor d, torch::Tensor c, torch::Tensor w,
           torch::Tensor dt_h, torch::Tensor dt_o, int64_t steps, double beta, std::vector<torch::Tensor> branch_c,
           std::vector<int64_t> branch_steps, std::vector<double> branch_beta, std::vector<torch::Tensor> out_h,
           std::vector<torch::Tensor> out_o) {
  std::vector<torch::Tensor> all{s_h, s_o, d, c, w, dt_h, dt_o};
  all.insert(all.end(), branch_c.begin(), branch_c.end());
  all.insert(all.end(), out_h.begin(), out_h.end());
  all.insert(all.end(), out_o.begin(), out_o.end());
  for (const auto& t : all) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == torch::kFloat32 && t.device().is_cpu(),
                "relax: contiguous float32 CPU tensors expected");
  }
  const auto n = branch_c.size();
  TORCH_CHECK(branch_steps.size() == n && branch_beta.size() == n && out_h.size() == n && out_o.size() == n,
              "relax: every branch needs c, steps, beta and two outputs");
  std::vector<Branch> branches;
  for (size_t k = 0; k < n; ++k) {
    TORCH_CHECK(branch_c[k].sizes() == s_o.sizes() && out_o[k].sizes() == s_o.sizes() &&
                out_h[k].sizes() == s_h.sizes(), "relax: branch shapes must match the states");
    branches.push_back({branch_c[k].data_ptr<float>(), branch_steps[k], static_cast<float>(branch_beta[k]),
                        out_h[k].data_ptr<float>(), out_o[k].data_ptr<float>()});
  }
  const auto b = static_cast<float>(beta);
  switch (s_o.size(2)) {
#define HTSEP_CASE(O) \
  case O:             \
    return relax_all<O>(s_h, s_o, d, c, w, dt_h, dt_o, steps, b, branches);
    HTSEP_CASE(1) HTSEP_CASE(2) HTSEP_CASE(3) HTSEP_CASE(4) HTSEP_CASE(5) HTSEP_CASE(6) HTSEP_CASE(7) HTSEP_CASE(8)
    HTSEP_CASE(9) HTSEP_CASE(10) HTSEP_CASE(11) HTSEP_CASE(12) HTSEP_CASE(13) HTSEP_CASE(14) HTSEP_CASE(15)
    HTSEP_CASE(16)
#undef HTSEP_CASE
    default:
      TORCH_CHECK(false, "relax: at most 16 outputs, got ", s_o.size(2));
  }
}

// The instruction set this build targets and its vector width, for benchmarks and run summaries.
std::string target() {
#if defined(__AVX512F__)
  return "avx512, 16 lanes";
#elif defined(__AVX2__)
  return "avx2, 8 lanes";
#else
  return "generic, 8 lanes";
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("relax", &relax, "fused relaxation of a one-hidden-layer EP net, then its branches");
  m.def("target", &target, "instruction set and lanes of this build");
}
