// The free or nudged relaxation of a layered EP network with hidden layers 1..H and O outputs, fused (see
// htsep/ep/fused.py). With s_0 = x clamped, d = W_1 x + b_1 and c = b_L (+ beta y when nudged):
//
//   u_1 = d + W_2^T s_2              u_l = b_l + W_l s_{l-1} + W_{l+1}^T s_{l+1}      (1 < l <= H; s_{H+1} = s_o)
//   u_o = c + W_o s_H - beta s_o     s <- s + dt * (clamp(u, 0, 1) - s)               (all u from the old s)
//
// A call relaxes one phase in place, then optionally branches: each branch k relaxes on from that phase's result
// with its own c_k, steps_k and beta_k into its own outputs (EP's nudged phases from the free equilibrium), so a
// training batch is one call, and its drive and states are transposed once.
//
// Layout: one vector lane per sample. A block of kLanes samples of one run is transposed into [unit][lane]
// buffers and relaxed for all steps there. Per step and weight matrix, one pass over its weights: each weight,
// loaded once as a broadcast, feeds 2 kLanes-wide FMAs (one per product). With one hidden layer (the paper's
// network) the states stay in L1 and the O outputs' states and partial sums W_o s_h in registers (relax_block);
// deeper networks keep every layer's u in a buffer (relax_block_deep). Every sample's arithmetic happens in its own
// lane in a fixed order, so results do not depend on the block a sample falls in, nor on the vector width.
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
    int64_t j = 0;
    for (; j + 4 <= hidden; j += 4) {  // four units per pass: four independent chains u_j (the same sums in order)
      const float* w = wt + j * O;
      const Vec s0 = sh[j], s1 = sh[j + 1], s2 = sh[j + 2], s3 = sh[j + 3];
      Vec u0 = d[j], u1 = d[j + 1], u2 = d[j + 2], u3 = d[j + 3];
      for (int64_t i = 0; i < O; ++i) {
        const Vec w0 = splat(w[i]), w1 = splat(w[O + i]), w2 = splat(w[2 * O + i]), w3 = splat(w[3 * O + i]);
        acc[i] += w0 * s0;
        acc[i] += w1 * s1;
        acc[i] += w2 * s2;
        acc[i] += w3 * s3;
        u0 += w0 * so[i];
        u1 += w1 * so[i];
        u2 += w2 * so[i];
        u3 += w3 * so[i];
      }
      sh[j] = s0 + splat(dt_h[j]) * (hard_sigmoid(u0) - s0);
      sh[j + 1] = s1 + splat(dt_h[j + 1]) * (hard_sigmoid(u1) - s1);
      sh[j + 2] = s2 + splat(dt_h[j + 2]) * (hard_sigmoid(u2) - s2);
      sh[j + 3] = s3 + splat(dt_h[j + 3]) * (hard_sigmoid(u3) - s3);
    }
    for (; j < hidden; ++j) {
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

// Hidden-hidden weights w [n_hi][n_lo] between a lower layer (n_lo units) and the layer above it (n_hi): adds
// W s_lo to u_hi and W^T s_hi to u_lo, four rows of W per pass over s_lo (u_lo[k] is summed over the rows in order,
// as a one-row pass would).
inline void pair_products(Vec* u_hi, Vec* u_lo, const Vec* s_hi, const Vec* s_lo, const float* w, int64_t n_hi,
                          int64_t n_lo) {
  int64_t j = 0;
  for (; j + 4 <= n_hi; j += 4) {
    const float *w0 = w + j * n_lo, *w1 = w0 + n_lo, *w2 = w1 + n_lo, *w3 = w2 + n_lo;
    const Vec s0 = s_hi[j], s1 = s_hi[j + 1], s2 = s_hi[j + 2], s3 = s_hi[j + 3];
    Vec a0 = u_hi[j], a1 = u_hi[j + 1], a2 = u_hi[j + 2], a3 = u_hi[j + 3];
    for (int64_t k = 0; k < n_lo; ++k) {
      const Vec s = s_lo[k], x0 = splat(w0[k]), x1 = splat(w1[k]), x2 = splat(w2[k]), x3 = splat(w3[k]);
      a0 += x0 * s, a1 += x1 * s, a2 += x2 * s, a3 += x3 * s;
      Vec t = u_lo[k];
      t += x0 * s0;
      t += x1 * s1;
      t += x2 * s2;
      t += x3 * s3;
      u_lo[k] = t;
    }
    u_hi[j] = a0, u_hi[j + 1] = a1, u_hi[j + 2] = a2, u_hi[j + 3] = a3;
  }
  for (; j < n_hi; ++j) {
    const float* wj = w + j * n_lo;
    const Vec sj = s_hi[j];
    Vec a = u_hi[j];
    for (int64_t k = 0; k < n_lo; ++k) {
      const Vec x = splat(wj[k]);
      a += x * s_lo[k];
      u_lo[k] += x * sj;
    }
    u_hi[j] = a;
  }
}

struct Deep {  // one run's parameters of a network with H >= 2 hidden layers
  std::vector<int64_t> n;                   // hidden sizes n[0..H-1]
  std::vector<const float*> w, b, dt;       // w[l] = W_{l+1} [n[l]][n[l-1]] and b[l] (l >= 1); dt[l] [n[l]]
  const float *wt_o, *dt_o;                 // W_o^T [n[H-1]][O], dt_o [O]
};

// One block of a deeper network: sh[l] [n[l]] and so [O] (in/out), u[l] [n[l]] scratch, d [n[0]], c [O].
template <int64_t O>
void relax_block_deep(const Deep& p, Vec* const* sh, Vec* so_io, Vec* const* u, const Vec* d, const Vec* c,
                      int64_t steps, float beta) {
  const int64_t H = p.n.size(), last = p.n[H - 1];
  Vec so[O], dto[O];
  for (int64_t i = 0; i < O; ++i) so[i] = so_io[i], dto[i] = splat(p.dt_o[i]);
  const Vec neg_beta = splat(-beta);
  for (int64_t t = 0; t < steps; ++t) {
    std::copy(d, d + p.n[0], u[0]);
    for (int64_t l = 1; l < H; ++l)
      for (int64_t j = 0; j < p.n[l]; ++j) u[l][j] = splat(p.b[l][j]);
    for (int64_t l = 1; l < H; ++l) pair_products(u[l], u[l - 1], sh[l], sh[l - 1], p.w[l], p.n[l], p.n[l - 1]);
    Vec acc[O];  // u_o, accumulated over the last hidden layer's units
    for (int64_t i = 0; i < O; ++i) acc[i] = c[i] + neg_beta * so[i];
    for (int64_t j = 0; j < last; ++j) {
      const float* w = p.wt_o + j * O;
      const Vec s = sh[H - 1][j];
      Vec uj = u[H - 1][j];
      for (int64_t i = 0; i < O; ++i) {
        const Vec wij = splat(w[i]);
        acc[i] += wij * s;
        uj += wij * so[i];
      }
      u[H - 1][j] = uj;
    }
    for (int64_t l = 0; l < H; ++l) {
      const float* dt = p.dt[l];
      for (int64_t j = 0; j < p.n[l]; ++j) sh[l][j] += splat(dt[j]) * (hard_sigmoid(u[l][j]) - sh[l][j]);
    }
    for (int64_t i = 0; i < O; ++i) so[i] += dto[i] * (hard_sigmoid(acc[i]) - so[i]);
  }
  for (int64_t i = 0; i < O; ++i) so_io[i] = so[i];
}

// The tensors of one call, as the entry point checked them (hidden layers h = 0..H-1).
struct Call {
  std::vector<torch::Tensor> s_h, w_h, b_h, dt_h;  // s_h[h] [R, B, n_h]; w_h[h], b_h[h] for h >= 1; dt_h[h] [R, n_h]
  torch::Tensor s_o, d, c, w_o, dt_o;
  int64_t steps;
  float beta;
  std::vector<torch::Tensor> branch_c;
  std::vector<int64_t> branch_steps;
  std::vector<float> branch_beta;
  std::vector<std::vector<torch::Tensor>> out_h;  // out_h[k][h]
  std::vector<torch::Tensor> out_o;
};

template <int64_t O>
void relax_all_deep(const Call& a) {
  const int64_t H = a.s_h.size(), runs = a.s_o.size(0), batch = a.s_o.size(1);
  const int64_t blocks = (batch + kLanes - 1) / kLanes;
  const bool c_per_sample = a.c.size(1) == batch;
  std::vector<int64_t> n(H), offset(H + 1, 0);
  for (int64_t h = 0; h < H; ++h) n[h] = a.s_h[h].size(2), offset[h + 1] = offset[h] + n[h];
  const int64_t units = offset[H], last = n[H - 1];
  std::vector<float> wt(runs * last * O);  // W_o^T per run: the O weights of unit j adjacent
  const float* pw_o = a.w_o.data_ptr<float>();
  for (int64_t r = 0; r < runs; ++r)
    for (int64_t i = 0; i < O; ++i)
      for (int64_t j = 0; j < last; ++j) wt[(r * last + j) * O + i] = pw_o[(r * O + i) * last + j];
  auto params = [&](int64_t r) {
    Deep p{n, std::vector<const float*>(H), std::vector<const float*>(H), std::vector<const float*>(H),
           wt.data() + r * last * O, a.dt_o.data_ptr<float>() + r * O};
    for (int64_t h = 0; h < H; ++h) {
      p.dt[h] = a.dt_h[h].data_ptr<float>() + r * n[h];
      if (h > 0) {
        p.w[h] = a.w_h[h].data_ptr<float>() + r * n[h] * n[h - 1];
        p.b[h] = a.b_h[h].data_ptr<float>() + r * n[h];
      }
    }
    return p;
  };
  at::parallel_for(0, runs * blocks, 1, [&](int64_t begin, int64_t end) {
    // per block, lane-major (padding lanes zero): states, u, d, so, c, and a branch's states, so and c
    std::vector<Vec> buf(3 * units + n[0] + 4 * O);
    Vec *states = buf.data(), *scratch = states + units, *bstates = scratch + units, *dv = bstates + units;
    Vec *so = dv + n[0], *cv = so + O, *bso = cv + O, *bcv = bso + O;
    std::vector<Vec*> sh(H), u(H), bsh(H);
    for (int64_t h = 0; h < H; ++h) sh[h] = states + offset[h], u[h] = scratch + offset[h], bsh[h] = bstates + offset[h];
    auto load = [&](Vec* const* dst_h, Vec* dst_o, const std::vector<torch::Tensor>& src_h, const torch::Tensor& src_o,
                    int64_t row0, int64_t lanes) {
      for (int64_t k = 0; k < lanes; ++k) {
        for (int64_t h = 0; h < H; ++h) {
          const float* s = src_h[h].data_ptr<float>() + (row0 + k) * n[h];
          for (int64_t j = 0; j < n[h]; ++j) dst_h[h][j][k] = s[j];
        }
        const float* s = src_o.data_ptr<float>() + (row0 + k) * O;
        for (int64_t i = 0; i < O; ++i) dst_o[i][k] = s[i];
      }
    };
    auto store = [&](const std::vector<torch::Tensor>& dst_h, const torch::Tensor& dst_o, Vec* const* src_h,
                     const Vec* src_o, int64_t row0, int64_t lanes) {
      for (int64_t k = 0; k < lanes; ++k) {
        for (int64_t h = 0; h < H; ++h) {
          float* s = dst_h[h].data_ptr<float>() + (row0 + k) * n[h];
          for (int64_t j = 0; j < n[h]; ++j) s[j] = src_h[h][j][k];
        }
        float* s = dst_o.data_ptr<float>() + (row0 + k) * O;
        for (int64_t i = 0; i < O; ++i) s[i] = src_o[i][k];
      }
    };
    for (int64_t m = begin; m < end; ++m) {
      const int64_t r = m / blocks, b0 = (m % blocks) * kLanes, lanes = std::min(kLanes, batch - b0);
      const int64_t row0 = r * batch + b0;
      const Deep p = params(r);
      std::fill(buf.begin(), buf.end(), Vec{});
      load(sh.data(), so, a.s_h, a.s_o, row0, lanes);
      for (int64_t k = 0; k < lanes; ++k) {
        const float* dk = a.d.data_ptr<float>() + (row0 + k) * n[0];
        for (int64_t j = 0; j < n[0]; ++j) dv[j][k] = dk[j];
        const float* ck = a.c.data_ptr<float>() + (c_per_sample ? row0 + k : r) * O;
        for (int64_t i = 0; i < O; ++i) cv[i][k] = ck[i];
      }
      relax_block_deep<O>(p, sh.data(), so, u.data(), dv, cv, a.steps, a.beta);
      store(a.s_h, a.s_o, sh.data(), so, row0, lanes);
      for (size_t br = 0; br < a.branch_c.size(); ++br) {
        std::copy(states, states + units, bstates);
        std::copy(so, so + O, bso);
        for (int64_t k = 0; k < lanes; ++k) {  // branch c is per sample (b_L + beta y)
          const float* ck = a.branch_c[br].data_ptr<float>() + (row0 + k) * O;
          for (int64_t i = 0; i < O; ++i) bcv[i][k] = ck[i];
        }
        relax_block_deep<O>(p, bsh.data(), bso, u.data(), dv, bcv, a.branch_steps[br], a.branch_beta[br]);
        store(a.out_h[br], a.out_o[br], bsh.data(), bso, row0, lanes);
      }
    }
  });
}

}  // namespace

// In place on s_h[h] [R, B, n_h] (hidden layers h = 0..H-1) and s_o [R, B, O]; d [R, B, n_0] (W_1 x + b_1);
// c [R, B or 1, O]; w_h[h] [R, n_h, n_{h-1}] and b_h[h] [R, n_h] for h >= 1 (w_h[0], b_h[0]: empty, unused);
// w_o [R, O, n_{H-1}]; dt_h[h] [R, n_h]; dt_o [R, O]; all contiguous float32 on the CPU, O <= 16. Branch k: c_k
// [R, B, O], branch_steps[k], branch_beta[k], outputs out_h[k][h] [R, B, n_h] and out_o[k] [R, B, O].
void relax(std::vector<torch::Tensor> s_h, torch::Tensor s_o, torch::Tensor d, torch::Tensor c,
           std::vector<torch::Tensor> w_h, std::vector<torch::Tensor> b_h, torch::Tensor w_o,
           std::vector<torch::Tensor> dt_h, torch::Tensor dt_o, int64_t steps, double beta,
           std::vector<torch::Tensor> branch_c, std::vector<int64_t> branch_steps, std::vector<double> branch_beta,
           std::vector<std::vector<torch::Tensor>> out_h, std::vector<torch::Tensor> out_o) {
  const auto H = s_h.size(), n = branch_c.size();
  TORCH_CHECK(H >= 1 && w_h.size() == H && b_h.size() == H && dt_h.size() == H,
              "relax: every hidden layer needs states, weights, biases and dt");
  TORCH_CHECK(branch_steps.size() == n && branch_beta.size() == n && out_h.size() == n && out_o.size() == n,
              "relax: every branch needs c, steps, beta and outputs");
  std::vector<torch::Tensor> all{s_o, d, c, w_o, dt_o};
  for (size_t h = 0; h < H; ++h) {
    all.insert(all.end(), {s_h[h], dt_h[h]});
    if (h > 0) all.insert(all.end(), {w_h[h], b_h[h]});
  }
  all.insert(all.end(), branch_c.begin(), branch_c.end());
  all.insert(all.end(), out_o.begin(), out_o.end());
  for (size_t k = 0; k < n; ++k) {
    TORCH_CHECK(out_h[k].size() == H && branch_c[k].sizes() == s_o.sizes() && out_o[k].sizes() == s_o.sizes(),
                "relax: branch shapes must match the states");
    for (size_t h = 0; h < H; ++h) {
      TORCH_CHECK(out_h[k][h].sizes() == s_h[h].sizes(), "relax: branch shapes must match the states");
      all.push_back(out_h[k][h]);
    }
  }
  for (const auto& t : all) {
    TORCH_CHECK(t.is_contiguous() && t.scalar_type() == torch::kFloat32 && t.device().is_cpu(),
                "relax: contiguous float32 CPU tensors expected");
  }
  const auto b = static_cast<float>(beta);
  Call call{s_h, w_h, b_h, dt_h, s_o, d, c, w_o, dt_o, steps, b, branch_c, branch_steps,
            std::vector<float>(branch_beta.begin(), branch_beta.end()), out_h, out_o};
  std::vector<Branch> branches;
  for (size_t k = 0; k < n; ++k) {
    branches.push_back({branch_c[k].data_ptr<float>(), branch_steps[k], static_cast<float>(branch_beta[k]),
                        out_h[k][0].data_ptr<float>(), out_o[k].data_ptr<float>()});
  }
  switch (s_o.size(2)) {
#define HTSEP_CASE(O)                                                                                 \
  case O:                                                                                             \
    return H == 1 ? relax_all<O>(s_h[0], s_o, d, c, w_o, dt_h[0], dt_o, steps, b, branches) \
                  : relax_all_deep<O>(call);
    HTSEP_CASE(1) HTSEP_CASE(2) HTSEP_CASE(3) HTSEP_CASE(4) HTSEP_CASE(5) HTSEP_CASE(6) HTSEP_CASE(7) HTSEP_CASE(8)
    HTSEP_CASE(9) HTSEP_CASE(10) HTSEP_CASE(11) HTSEP_CASE(12) HTSEP_CASE(13) HTSEP_CASE(14) HTSEP_CASE(15)
    HTSEP_CASE(16)
#undef HTSEP_CASE
    default:
      TORCH_CHECK(false, "relax: at most 16 outputs, got ", s_o.size(2));
  }
}

// One epoch of EP training of R stacked networks (weights[l] [R, n_l, n_{l-1}], biases[l] [R, n_l], dt[l]
// [R, n_l]), from batch start ``first`` on, without returning to Python: what htsep.training.epochs.train_epoch does
// per batch with the fused relaxation, the same ATen calls in the same order (so the same numbers): gather the
// batch of each run's order (orders [R, N]) from x [N, n_0] and one-hot targets [N, O], the input drive, the free
// phase and the nudged phases (one relax call), the EP gradient products, SGD (torch's fused kernel, one call per
// layer's [W_l, b_l]; with momentum, the optimizer's momentum buffers updated in place, without, none), and the free
// phase's outputs into outputs [R, N, O].
void train_epoch(torch::Tensor x, torch::Tensor targets, torch::Tensor orders, std::vector<torch::Tensor> weights,
                 std::vector<torch::Tensor> biases, std::vector<torch::Tensor> dt,
                 std::vector<torch::Tensor> weight_momentum, std::vector<torch::Tensor> bias_momentum,
                 std::vector<double> lr, double momentum, double weight_decay, double dampening, bool nesterov,
                 bool maximize, double beta, int64_t free_steps, int64_t nudged_steps, bool symmetric,
                 int64_t batch_size, int64_t first, torch::Tensor outputs) {
  at::NoGradGuard no_grad;
  const int64_t runs = orders.size(0), n = orders.size(1), layers = weights.size(), hidden = layers - 1;
  const bool buffers = momentum != 0;  // as torch.optim.SGD: no momentum, no buffers
  TORCH_CHECK(layers >= 2 && biases.size() == layers && dt.size() == layers && lr.size() == layers &&
                  weight_momentum.size() == (buffers ? layers : 0) && bias_momentum.size() == weight_momentum.size(),
              "train_epoch: every layer needs weights, biases, dt, a learning rate and (with momentum) buffers");
  const torch::Tensor none = torch::empty({0});
  std::vector<torch::Tensor> w_h{none}, b_h{none}, dt_h(dt.begin(), dt.end() - 1);
  for (int64_t l = 1; l < hidden; ++l) w_h.push_back(weights[l]), b_h.push_back(biases[l]);
  std::vector<double> betas{beta};
  if (symmetric) betas.push_back(-beta);
  for (int64_t start = first; start < n; start += batch_size) {
    const auto idx = orders.slice(1, start, std::min(start + batch_size, n));
    const int64_t batch = idx.size(1);
    const auto rows = idx.flatten();
    const auto xb = x.index_select(0, rows).view({runs, batch, -1});
    const auto yb = targets.index_select(0, rows).view({runs, batch, -1});
    const auto d = at::baddbmm(biases[0].unsqueeze(-2), xb, weights[0].mT());
    const auto c = biases[layers - 1].unsqueeze(-2);
    std::vector<torch::Tensor> s_h;
    for (int64_t l = 0; l < hidden; ++l) s_h.push_back(torch::zeros({runs, batch, weights[l].size(1)}, x.options()));
    const auto s_o = torch::zeros({runs, batch, weights[layers - 1].size(1)}, x.options());
    std::vector<torch::Tensor> branch_c, out_o;
    std::vector<int64_t> branch_steps;
    std::vector<std::vector<torch::Tensor>> out_h;
    for (const double b : betas) {
      branch_c.push_back(c + yb * b);
      branch_steps.push_back(nudged_steps);
      out_h.emplace_back();
      for (const auto& s : s_h) out_h.back().push_back(torch::empty_like(s));
      out_o.push_back(torch::empty_like(s_o));
    }
    relax(s_h, s_o, d, c, w_h, b_h, weights[layers - 1], dt_h, dt[layers - 1], free_steps, 0.0, branch_c,
          branch_steps, betas, out_h, out_o);
    std::vector<torch::Tensor> free(s_h), plus(out_h[0]), minus(symmetric ? out_h[1] : s_h);
    free.push_back(s_o), plus.push_back(out_o[0]), minus.push_back(symmetric ? out_o[1] : s_o);
    const double scale = 1.0 / ((symmetric ? 2 * beta : beta) * batch);  // ep_parameter_gradients
    std::vector<torch::Tensor> deltas;
    for (int64_t l = 0; l < layers; ++l) deltas.push_back((minus[l] - plus[l]) * scale);
    std::vector<torch::Tensor> grad_w{at::matmul(deltas[0].mT(), xb)}, grad_b;
    for (int64_t l = 1; l < layers; ++l) {
      grad_w.push_back(at::baddbmm(at::matmul((minus[l] * scale).mT(), minus[l - 1]), (plus[l] * -scale).mT(),
                                   plus[l - 1]));
    }
    for (const auto& delta : deltas) grad_b.push_back(delta.sum(-2));
    outputs.slice(1, start, start + batch).copy_(free[layers - 1]);
    for (int64_t l = 0; l < layers; ++l) {
      const std::vector<torch::Tensor> bufs = buffers ? std::vector<torch::Tensor>{weight_momentum[l], bias_momentum[l]}
                                                      : std::vector<torch::Tensor>{};
      at::_fused_sgd_({weights[l], biases[l]}, {grad_w[l], grad_b[l]}, bufs, weight_decay, momentum, lr[l], dampening,
                      nesterov, maximize, false);
    }
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
  m.def("relax", &relax, "fused relaxation of a layered EP net, then its branches");
  m.def("train_epoch", &train_epoch, "one epoch of EP training of stacked networks, from a batch on",
        py::call_guard<py::gil_scoped_release>());  // touches no Python object: other threads (and Ctrl-C) go on
  m.def("target", &target, "instruction set and lanes of this build");
}
