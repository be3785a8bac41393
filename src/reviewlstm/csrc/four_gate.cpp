// The four-gate LSTM's sequence loop in C++: the same algorithm as fast.py's Python loop (which stays
// the fallback, and the readable cell the oracle), with each step's element-wise work fused into one
// pass over memory instead of six tensor operations, and no interpreter between the steps.
//
// Layout (all contiguous, rows sorted by length, longest first; batch_sizes[t] rows read at step t):
//   proj   (T, B, 4H)  input half of every gate, rows n | i | f | v   (W_ih E_t + b)
//   LTM    (T+1, B, H) state before step t; STM likewise (STM[1:] are the outputs)
//   NS     (T, B, H)   N = tanh(.)            SIG (T, B, 3H)  i | f | V = sigma(.)
//   US     (T, B, H)   U = tanh(W_u forget + b_u)
//   FORGET (T, B, H)   forget = LTM[t] * f
// Without `save` (inference) NS, SIG, US and FORGET are one step deep: scratch, not history.
#include <torch/extension.h>

#include <cmath>
#include <vector>

namespace {

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// learn, forget and remember for b rows: pre = W_hh stm (b, 4H) plus the input projection.
template <typename T>
void gates_step(int64_t b, int64_t H, const T* pre, const T* proj, const T* ltm, T* ltm_next,
                T* ns, T* sig, T* forget) {
  for (int64_t r = 0; r < b; ++r) {
    const T* p = pre + r * 4 * H;
    const T* x = proj + r * 4 * H;
    const T* c = ltm + r * H;
    T* c_next = ltm_next + r * H;
    T* n_ = ns + r * H;
    T* s = sig + r * 3 * H;
    T* fg = forget + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T n = std::tanh(p[j] + x[j]);
      T i = sigmoid(p[H + j] + x[H + j]);
      T f = sigmoid(p[2 * H + j] + x[2 * H + j]);
      T v = sigmoid(p[3 * H + j] + x[3 * H + j]);
      T kept = c[j] * f;                 // forget gate: ltm ⊙ f
      c_next[j] = kept + n * i;          // remember gate: forget + learn
      n_[j] = n; s[j] = i; s[H + j] = f; s[2 * H + j] = v; fg[j] = kept;
    }
  }
}

// use gate for b rows: us holds W_u forget on entry, U = tanh(. + b_u) on exit; stm = U ⊙ V.
template <typename T>
void use_step(int64_t b, int64_t H, T* us, const T* bias_u, const T* sig, T* stm_next) {
  for (int64_t r = 0; r < b; ++r) {
    T* u = us + r * H;
    const T* v = sig + r * 3 * H + 2 * H;
    T* h = stm_next + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T uj = std::tanh(u[j] + bias_u[j]);
      u[j] = uj;
      h[j] = uj * v[j];
    }
  }
}

// use gate backward: stm = U ⊙ V, U = tanh(U_pre), V = sigma(V_pre). ds: d stm (b, H); go: d output or null.
template <typename T>
void use_back(int64_t b, int64_t H, const T* ds, const T* go, const T* u, const T* sig, T* dp, T* du) {
  for (int64_t r = 0; r < b; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const int64_t q = r * H + j;
      T g = ds[q] + (go ? go[q] : T(0));
      T v = sig[r * 3 * H + 2 * H + j];
      dp[r * 4 * H + 3 * H + j] = g * u[q] * v * (1 - v);  // d V_pre
      du[q] = g * v * (1 - u[q] * u[q]);                   // d U_pre
    }
  }
}

// remember = forget + learn; learn = N ⊙ i; forget = ltm ⊙ f. dfg: d forget through U; dc: d ltm
// (in: at step t+1, out: at step t).
template <typename T>
void remember_back(int64_t b, int64_t H, const T* dfg, T* dc, const T* sig, const T* n, const T* c, T* dp) {
  for (int64_t r = 0; r < b; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const int64_t q = r * H + j;
      T dl = dc[q];
      T dfo = dfg[q] + dl;
      T i = sig[r * 3 * H + j], f = sig[r * 3 * H + H + j], nj = n[q];
      dp[r * 4 * H + j] = dl * i * (1 - nj * nj);                // d N_pre
      dp[r * 4 * H + H + j] = dl * nj * i * (1 - i);            // d i_pre
      dp[r * 4 * H + 2 * H + j] = dfo * c[q] * f * (1 - f);     // d f_pre
      dc[q] = dfo * f;                                           // to the previous ltm
    }
  }
}

}  // namespace

std::vector<at::Tensor> forward(const at::Tensor& proj, const std::vector<int64_t>& batch_sizes,
                                const at::Tensor& ltm0, const at::Tensor& stm0, const at::Tensor& weight_hh,
                                const at::Tensor& weight_u, const at::Tensor& bias_u, bool save) {
  TORCH_CHECK(proj.dim() == 3 && proj.is_contiguous(), "proj must be a contiguous (T, B, 4H) tensor");
  const int64_t T = proj.size(0), B = proj.size(1), H = proj.size(2) / 4;
  TORCH_CHECK((int64_t)batch_sizes.size() == T, "batch_sizes must have T entries");
  auto LTM = proj.new_empty({T + 1, B, H});
  auto STM = proj.new_empty({T + 1, B, H});
  const int64_t depth = save ? T : 1;  // history for backward, or one step of scratch
  auto NS = proj.new_empty({depth, B, H});
  auto SIG = proj.new_empty({depth, B, 3 * H});
  auto US = proj.new_empty({depth, B, H});
  auto FORGET = proj.new_empty({depth, B, H});
  auto pre = proj.new_empty({B, 4 * H});
  LTM[0].copy_(ltm0);
  STM[0].copy_(stm0);
  const auto w_hh_t = weight_hh.t();
  const auto w_u_t = weight_u.t();
  const auto bias = bias_u.contiguous();
  AT_DISPATCH_FLOATING_TYPES(proj.scalar_type(), "four_gate_forward", [&] {
    for (int64_t t = 0; t < T; ++t) {
      const int64_t b = batch_sizes[t];
      const int64_t k = save ? t : 0;
      if (b < B) {  // rows that stopped reading: zero outputs, and zeros that weigh nothing in backward
        STM[t + 1].narrow(0, b, B - b).zero_();
        FORGET[k].narrow(0, b, B - b).zero_();
      }
      if (b == 0) continue;
      auto pre_b = pre.narrow(0, 0, b);
      at::mm_out(pre_b, STM[t].narrow(0, 0, b), w_hh_t);  // (b, 4H): W_hh stm
      gates_step<scalar_t>(b, H, pre_b.data_ptr<scalar_t>(), proj[t].data_ptr<scalar_t>(),
                           LTM[t].data_ptr<scalar_t>(), LTM[t + 1].data_ptr<scalar_t>(),
                           NS[k].data_ptr<scalar_t>(), SIG[k].data_ptr<scalar_t>(), FORGET[k].data_ptr<scalar_t>());
      auto us_b = US[k].narrow(0, 0, b);
      at::mm_out(us_b, FORGET[k].narrow(0, 0, b), w_u_t);  // (b, H): W_u forget
      use_step<scalar_t>(b, H, us_b.data_ptr<scalar_t>(), bias.data_ptr<scalar_t>(), SIG[k].data_ptr<scalar_t>(),
                         STM[t + 1].data_ptr<scalar_t>());
    }
  });
  return {LTM, STM, NS, SIG, US, FORGET};
}

// Backward through time, mirroring forward step by step (the equations of reference/lstm.py).
// Returns dproj (T, B, 4H), dltm0, dstm0, d weight_hh, d weight_u, d bias_u.
std::vector<at::Tensor> backward(const c10::optional<at::Tensor>& dout_opt, const c10::optional<at::Tensor>& dltm_T,
                                 const c10::optional<at::Tensor>& dstm_T, const std::vector<int64_t>& batch_sizes,
                                 const at::Tensor& weight_hh, const at::Tensor& weight_u, const at::Tensor& LTM,
                                 const at::Tensor& STM, const at::Tensor& NS, const at::Tensor& SIG,
                                 const at::Tensor& US, const at::Tensor& FORGET) {
  const int64_t T = NS.size(0), B = NS.size(1), H = NS.size(2);
  auto dltm = dltm_T.has_value() ? dltm_T->contiguous().clone() : NS.new_zeros({B, H});
  auto dstm = dstm_T.has_value() ? dstm_T->contiguous().clone() : NS.new_zeros({B, H});
  at::Tensor dout;
  if (dout_opt.has_value()) dout = dout_opt->contiguous();
  auto dPRE = NS.new_empty({T, B, 4 * H});
  auto dUPRE = NS.new_empty({T, B, H});
  auto dforget = NS.new_empty({B, H});
  const auto w_hh = weight_hh.contiguous();
  const auto w_u = weight_u.contiguous();
  AT_DISPATCH_FLOATING_TYPES(NS.scalar_type(), "four_gate_backward", [&] {
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t b = batch_sizes[t];
      if (b < B) {
        dPRE[t].narrow(0, b, B - b).zero_();
        dUPRE[t].narrow(0, b, B - b).zero_();
      }
      if (b == 0) continue;
      scalar_t* ds = dstm.data_ptr<scalar_t>();
      scalar_t* dc = dltm.data_ptr<scalar_t>();
      const scalar_t* go = dout.defined() ? dout[t].data_ptr<scalar_t>() : nullptr;
      const scalar_t* u = US[t].data_ptr<scalar_t>();
      const scalar_t* sig = SIG[t].data_ptr<scalar_t>();
      const scalar_t* n = NS[t].data_ptr<scalar_t>();
      const scalar_t* c = LTM[t].data_ptr<scalar_t>();
      scalar_t* dp = dPRE[t].data_ptr<scalar_t>();
      scalar_t* du = dUPRE[t].data_ptr<scalar_t>();
      use_back<scalar_t>(b, H, ds, go, u, sig, dp, du);
      auto df_b = dforget.narrow(0, 0, b);
      at::mm_out(df_b, dUPRE[t].narrow(0, 0, b), w_u);  // U read forget through W_u
      remember_back<scalar_t>(b, H, df_b.data_ptr<scalar_t>(), dc, sig, n, c, dp);
      auto dstm_b = dstm.narrow(0, 0, b);
      at::mm_out(dstm_b, dPRE[t].narrow(0, 0, b), w_hh);  // to the previous stm
    }
  });
  // the weight gradients: one product over all steps each (rows past a sequence's end are zero)
  auto d_weight_hh = dPRE.view({-1, 4 * H}).t().mm(STM.narrow(0, 0, T).reshape({-1, H}));
  auto d_weight_u = dUPRE.view({-1, H}).t().mm(FORGET.view({-1, H}));
  auto d_bias_u = dUPRE.sum(at::IntArrayRef{0, 1});
  return {dPRE, dltm, dstm, d_weight_hh, d_weight_u, d_bias_u};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "four-gate LSTM over a length-sorted sequence batch");
  m.def("backward", &backward, "its backward through time");
}
