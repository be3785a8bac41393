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
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <cmath>
#include <vector>

// BLAS from the library torch itself links (MKL in the x86 wheels), called with raw pointers: at B = 1
// (one review) building Tensor views and dispatching at::mm costs more than the product itself.
// Weak, so a torch without these symbols still loads this module and uses at::mm instead.
extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*, const int*,
            const double*, const int*, const double*, double*, const int*) __attribute__((weak));
}

namespace {

// Up to this many rows the products are written here, as rows of axpys: BLAS pays a fixed cost per
// call that dominates at one review (measured ~16 us of CPU for 1 x 150 x 600 where this loop takes
// a few). C[r, :] += A[r, q] * B[q, :] runs along contiguous rows of B, independent across columns,
// so it vectorises without a reduction's dependency chain, and each row of B is read once for all r.
int64_t small_rows = 2;

template <typename T>
void axpy_rows(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C) {
  std::fill(C, C + M * N, T(0));
  for (int64_t q = 0; q < K; ++q) {
    const T* bq = B + q * N;
    for (int64_t r = 0; r < M; ++r) {
      const T a = A[r * K + q];
      T* c = C + r * N;
#pragma omp simd
      for (int64_t j = 0; j < N; ++j) c[j] += a * bq[j];
    }
  }
}

// Row-major C (M, N) = A (M, K) @ B^T for B (N, K) when b_t, else A @ B for B (K, N). BLAS is
// column-major, so it computes C^T = op(B) A^T with the same buffers. (The loops use A @ B only.)
template <typename T>
void matmul(int64_t M, int64_t N, int64_t K, const T* A, const T* B, bool b_t, T* C) {
  if (!b_t && M <= small_rows) { axpy_rows<T>(M, N, K, A, B, C); return; }
  const int m = (int)N, n = (int)M, k = (int)K, lda = b_t ? (int)K : (int)N, ldb = (int)K, ldc = (int)N;
  const T one = 1, zero = 0;
  const char ta = b_t ? 'T' : 'N', tb = 'N';
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_) { sgemm_(&ta, &tb, &m, &n, &k, &one, B, &lda, A, &ldb, &zero, C, &ldc); return; }
  } else {
    if (dgemm_) { dgemm_(&ta, &tb, &m, &n, &k, &one, B, &lda, A, &ldb, &zero, C, &ldc); return; }
  }
  auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto a = at::from_blob(const_cast<T*>(A), {M, K}, opt);
  auto b = b_t ? at::from_blob(const_cast<T*>(B), {N, K}, opt).t() : at::from_blob(const_cast<T*>(B), {K, N}, opt);
  auto c = at::from_blob(C, {M, N}, opt);
  at::mm_out(c, a, b);
}

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
                                const at::Tensor& ltm0, const at::Tensor& stm0, const at::Tensor& weight_hh_t,
                                const at::Tensor& weight_u_t, const at::Tensor& bias_u, bool save) {
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
  // W_hh^T (H, 4H) and W_u^T (H, H), contiguous (the caller keeps them: transposing costs more than a
  // short review's whole sequence): each step's products are A @ B with B's rows contiguous
  TORCH_CHECK(weight_hh_t.is_contiguous() && weight_u_t.is_contiguous(), "transposed weights must be contiguous");
  const auto& w_hh_t = weight_hh_t;
  const auto& w_u_t = weight_u_t;
  const auto bias = bias_u.contiguous();
  AT_DISPATCH_FLOATING_TYPES(proj.scalar_type(), "four_gate_forward", [&] {
    using T_ = scalar_t;
    const T_* P = proj.data_ptr<T_>();
    T_ *C = LTM.data_ptr<T_>(), *S = STM.data_ptr<T_>(), *N_ = NS.data_ptr<T_>(), *G = SIG.data_ptr<T_>();
    T_ *U = US.data_ptr<T_>(), *F = FORGET.data_ptr<T_>(), *pre_ = pre.data_ptr<T_>();
    const T_ *Whh_t = w_hh_t.data_ptr<T_>(), *Wu_t = w_u_t.data_ptr<T_>(), *bu = bias.data_ptr<T_>();
    for (int64_t t = 0; t < T; ++t) {
      const int64_t b = batch_sizes[t];
      const int64_t k = save ? t : 0;
      T_* stm = S + t * B * H;            // (B, H) state before step t
      T_* stm_next = S + (t + 1) * B * H;
      T_* forget = F + k * B * H;
      if (b < B) {  // rows that stopped reading: zero outputs, and zeros that weigh nothing in backward
        std::fill(stm_next + b * H, stm_next + B * H, T_(0));
        std::fill(forget + b * H, forget + B * H, T_(0));
      }
      if (b == 0) continue;
      matmul<T_>(b, 4 * H, H, stm, Whh_t, false, pre_);  // (b, 4H): W_hh stm
      gates_step<T_>(b, H, pre_, P + t * B * 4 * H, C + t * B * H, C + (t + 1) * B * H, N_ + k * B * H,
                     G + k * B * 3 * H, forget);
      T_* u = U + k * B * H;
      matmul<T_>(b, H, H, forget, Wu_t, false, u);        // (b, H): W_u forget
      use_step<T_>(b, H, u, bu, G + k * B * 3 * H, stm_next);
    }
  });
  return {LTM, STM, NS, SIG, US, FORGET};
}

// Backward through time, mirroring forward step by step (the equations of reference/lstm.py).
// Returns dproj (T, B, 4H), dltm0, dstm0, d weight_hh, d weight_u, d bias_u.
// An empty tensor stands for "no gradient" (an output nobody used).
std::vector<at::Tensor> backward(const at::Tensor& dout_in, const at::Tensor& dltm_T,
                                 const at::Tensor& dstm_T, const std::vector<int64_t>& batch_sizes,
                                 const at::Tensor& weight_hh, const at::Tensor& weight_u, const at::Tensor& LTM,
                                 const at::Tensor& STM, const at::Tensor& NS, const at::Tensor& SIG,
                                 const at::Tensor& US, const at::Tensor& FORGET) {
  const int64_t T = NS.size(0), B = NS.size(1), H = NS.size(2);
  auto dltm = dltm_T.numel() ? dltm_T.contiguous().clone() : NS.new_zeros({B, H});
  auto dstm = dstm_T.numel() ? dstm_T.contiguous().clone() : NS.new_zeros({B, H});
  at::Tensor dout;
  if (dout_in.numel()) dout = dout_in.contiguous();
  auto dPRE = NS.new_empty({T, B, 4 * H});
  auto dUPRE = NS.new_empty({T, B, H});
  auto dforget = NS.new_empty({B, H});
  const auto w_hh = weight_hh.contiguous();
  const auto w_u = weight_u.contiguous();
  AT_DISPATCH_FLOATING_TYPES(NS.scalar_type(), "four_gate_backward", [&] {
    using T_ = scalar_t;
    T_ *ds = dstm.data_ptr<T_>(), *dc = dltm.data_ptr<T_>(), *df = dforget.data_ptr<T_>();
    T_ *dP = dPRE.data_ptr<T_>(), *dU = dUPRE.data_ptr<T_>();
    const T_* GO = dout.defined() ? dout.data_ptr<T_>() : nullptr;
    const T_ *U = US.data_ptr<T_>(), *G = SIG.data_ptr<T_>(), *N_ = NS.data_ptr<T_>(), *C = LTM.data_ptr<T_>();
    const T_ *Whh = w_hh.data_ptr<T_>(), *Wu = w_u.data_ptr<T_>();
    for (int64_t t = T - 1; t >= 0; --t) {
      const int64_t b = batch_sizes[t];
      T_* dp = dP + t * B * 4 * H;
      T_* du = dU + t * B * H;
      if (b < B) {
        std::fill(dp + b * 4 * H, dp + B * 4 * H, T_(0));
        std::fill(du + b * H, du + B * H, T_(0));
      }
      if (b == 0) continue;
      const T_* sig = G + t * B * 3 * H;
      use_back<T_>(b, H, ds, GO ? GO + t * B * H : nullptr, U + t * B * H, sig, dp, du);
      matmul<T_>(b, H, H, du, Wu, false, df);                 // U read forget through W_u
      remember_back<T_>(b, H, df, dc, sig, N_ + t * B * H, C + t * B * H, dp);
      matmul<T_>(b, H, 4 * H, dp, Whh, false, ds);            // to the previous stm
    }
  });
  // the weight gradients: one product over all steps each (rows past a sequence's end are zero)
  auto d_weight_hh = dPRE.view({-1, 4 * H}).t().mm(STM.narrow(0, 0, T).reshape({-1, H}));
  auto d_weight_u = dUPRE.view({-1, H}).t().mm(FORGET.view({-1, H}));
  auto d_bias_u = dUPRE.sum(at::IntArrayRef{0, 1});
  return {dPRE, dltm, dstm, d_weight_hh, d_weight_u, d_bias_u};
}

// Both directions of a bidirectional layer at once: they share nothing but the lengths, so each runs on
// its own thread (with single-threaded BLAS inside), instead of one after the other with every small
// product split across threads. args[d] holds direction d's arguments, in forward's order.
std::vector<std::vector<at::Tensor>> forward_dirs(const std::vector<at::Tensor>& proj,
                                                  const std::vector<int64_t>& batch_sizes,
                                                  const std::vector<at::Tensor>& ltm0, const std::vector<at::Tensor>& stm0,
                                                  const std::vector<at::Tensor>& weight_hh_t,
                                                  const std::vector<at::Tensor>& weight_u_t,
                                                  const std::vector<at::Tensor>& bias_u, bool save) {
  const int64_t D = (int64_t)proj.size();
  std::vector<std::vector<at::Tensor>> out(D);
  at::parallel_for(0, D, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d)
      out[d] = forward(proj[d], batch_sizes, ltm0[d], stm0[d], weight_hh_t[d], weight_u_t[d], bias_u[d], save);
  });
  return out;
}

// saved[d] = {weight_hh, weight_u, LTM, STM, NS, SIG, US, FORGET}; grads[d] = {dout, dltm_T, dstm_T}.
std::vector<std::vector<at::Tensor>> backward_dirs(const std::vector<std::vector<at::Tensor>>& grads,
                                                   const std::vector<int64_t>& batch_sizes,
                                                   const std::vector<std::vector<at::Tensor>>& saved) {
  const int64_t D = (int64_t)saved.size();
  std::vector<std::vector<at::Tensor>> out(D);
  at::parallel_for(0, D, 1, [&](int64_t begin, int64_t end) {
    for (int64_t d = begin; d < end; ++d) {
      const auto& g = grads[d];
      const auto& v = saved[d];
      out[d] = backward(g[0], g[1], g[2], batch_sizes, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
    }
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "four-gate LSTM over a length-sorted sequence batch");
  m.def("backward", &backward, "its backward through time");
  m.def("forward_dirs", &forward_dirs, "forward for each direction, in parallel");
  m.def("backward_dirs", &backward_dirs, "backward for each direction, in parallel");
  m.def("set_small_rows", [](int64_t n) { small_rows = n; }, "rows below which products skip BLAS (benchmarks)");
}
