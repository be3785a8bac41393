// The four-gate LSTM's sequence loop in C++: the same algorithm as python_loop.py (which stays the
// fallback, and the readable cell the oracle), with each step's element-wise work fused into one
// pass over memory instead of six tensor operations, and no interpreter between the steps.
//
// Layout: history.py's History (all contiguous, rows sorted by length, longest first; batch_sizes[t]
// rows read at step t), plus
//   proj   (T, B, 4H)  the event's share of every gate, n | i | f | v (W_ih E_t, without the gates'
//                      bias, which is added in the loop); scratch: forward adds W_hh stm into it
// Without `save` (inference) n, ifv, u and forget are one step deep: scratch, not history.
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
// MKL's packed GEMM: a weight reordered once into the layout its kernels read, then used for every
// step of the sequence (CBLAS enums: row-major 101, no-trans 111, trans 112, packed 151, B matrix 162).
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src, int ld,
                      float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}

// oneDNN's matmul as torch links it (torch ships oneDNN inside libtorch_cpu, its own symbols hidden):
// the faster library on some CPUs (AMD's, where MKL takes a generic path). Weak, like BLAS above.
namespace at { namespace native {
void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta, float alpha)
    __attribute__((weak));
}}

namespace {

// Up to this many rows the A @ B products (backward) are written here, as rows of axpys: BLAS pays a fixed cost per
// call that, at one review, is more than the whole product's work. C[r, :] += A[r, q] * B[q, :] runs along contiguous rows of B, independent across columns,
// so it vectorises without a reduction's dependency chain, and each row of B is read once for all r.
constexpr int64_t small_rows = 2;

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
// column-major, so it computes C^T = op(B) A^T with the same buffers. Forward uses A @ B^T (the
// weights as stored), backward A @ B.
// accumulate: C += A @ B^T instead of C = (beta 1: C already holds the input projection, so BLAS
// adds into it and the zeroing pass and a second stream in the gates' pass are saved).
template <typename T>
void matmul(int64_t M, int64_t N, int64_t K, const T* A, const T* B, bool b_t, T* C, bool accumulate = false) {
  if (!b_t && M <= small_rows && !accumulate) { axpy_rows<T>(M, N, K, A, B, C); return; }
  const int m = (int)N, n = (int)M, k = (int)K, lda = b_t ? (int)K : (int)N, ldb = (int)K, ldc = (int)N;
  const T one = 1, beta = accumulate ? 1 : 0;
  const char ta = b_t ? 'T' : 'N', tb = 'N';
  if constexpr (std::is_same_v<T, float>) {
    if (sgemm_) { sgemm_(&ta, &tb, &m, &n, &k, &one, B, &lda, A, &ldb, &beta, C, &ldc); return; }
  } else {
    if (dgemm_) { dgemm_(&ta, &tb, &m, &n, &k, &one, B, &lda, A, &ldb, &beta, C, &ldc); return; }
  }
  auto opt = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto a = at::from_blob(const_cast<T*>(A), {M, K}, opt);
  auto b = b_t ? at::from_blob(const_cast<T*>(B), {N, K}, opt).t() : at::from_blob(const_cast<T*>(B), {K, N}, opt);
  auto c = at::from_blob(C, {M, N}, opt);
  if (accumulate) c.addmm_(a, b); else at::mm_out(c, a, b);
}

// The library for the loop's per-step products (float32; float64 always takes BLAS), chosen once per
// machine by products.py's measurement and set when the module loads, never per call. Three classes
// may differ: forward with rows < 16 at a step (a few reviews), forward with more (batches), backward.
enum Library : int64_t { BLAS = 0, BLAS_PACKED = 1, ONEDNN = 2 };
enum StepClass : int { FEW = 0, MANY = 1, BACK = 2 };
Library step_library[3] = {BLAS, BLAS, BLAS};
constexpr int64_t few_rows = 16;

bool packing_available() { return cblas_sgemm_pack_get_size && cblas_sgemm_pack && cblas_sgemm_compute; }
bool onednn_available() { return at::native::mkldnn_matmul != nullptr; }

// A step product's weight: W (N, K) read as W^T when b_t (forward), else (K, N) read as is
// (backward); `packed` is its MKL-packed copy when that library is on, else empty.
template <typename T>
struct Weight {
  const T* w;
  bool b_t;
  at::Tensor packed;
};

template <typename T>
Weight<T> step_weight(const at::Tensor& w, bool b_t, int64_t rows) {
  Weight<T> out{w.data_ptr<T>(), b_t, at::Tensor()};
  if constexpr (std::is_same_v<T, float>) {
    // packed only where the library of this call's widest step wants it (a call of a few rows never packs)
    const bool packed = step_library[!b_t ? BACK : rows >= few_rows ? MANY : FEW] == BLAS_PACKED;
    if (packed && packing_available()) {
      const int n = (int)(b_t ? w.size(0) : w.size(1)), k = (int)(b_t ? w.size(1) : w.size(0));
      const size_t bytes = cblas_sgemm_pack_get_size(162, (int)std::max<int64_t>(rows, 1), n, k);
      out.packed = at::empty({(int64_t)(bytes / sizeof(float)) + 16}, w.options());
      cblas_sgemm_pack(101, 162, b_t ? 112 : 111, (int)std::max<int64_t>(rows, 1), n, k, 1.0f, out.w,
                       b_t ? k : n, out.packed.template data_ptr<float>());
    }
  }
  return out;
}

// C (M, N) (+)= A (M, K) @ op(W): the per-step products, through the library chosen for M rows.
template <typename T>
void step_product(int64_t M, int64_t N, int64_t K, const T* A, const Weight<T>& W, T* C, bool accumulate = false) {
  if constexpr (std::is_same_v<T, float>) {
    const Library lib = step_library[!W.b_t ? BACK : M >= few_rows ? MANY : FEW];  // backward reads W as is
    if (lib == BLAS_PACKED && W.packed.defined()) {
      cblas_sgemm_compute(101, 111, 151, (int)M, (int)N, (int)K, A, (int)K, W.packed.template data_ptr<float>(),
                          W.b_t ? (int)K : (int)N, accumulate ? 1.0f : 0.0f, C, (int)N);
      return;
    }
    if (lib == ONEDNN && onednn_available()) {
      auto opt = at::TensorOptions().dtype(at::kFloat);
      auto a = at::from_blob(const_cast<float*>(A), {M, K}, opt);
      auto b = W.b_t ? at::from_blob(const_cast<float*>(W.w), {N, K}, opt).t()
                     : at::from_blob(const_cast<float*>(W.w), {K, N}, opt);
      at::native::mkldnn_matmul(a, b, at::from_blob(C, {M, N}, opt), accumulate ? 1.0f : 0.0f, 1.0f);
      return;
    }
  }
  matmul<T>(M, N, K, A, W.w, W.b_t, C, accumulate);
}

template <typename T>
inline T sigmoid(T x) { return T(1) / (T(1) + std::exp(-x)); }

// learn, forget and remember for b rows: pre = W_hh stm (b, 4H) plus the input projection.
template <typename T>
void gates_step(int64_t b, int64_t H, const T* pre, const T* bias, const T* ltm, T* ltm_next,
                T* n, T* ifv, T* forget) {
  // the gates' bias is added here rather than into every step's projection beforehand: broadcasting
  // it into the (T, B, 4H) projection would be one more pass over the largest buffer
  for (int64_t r = 0; r < b; ++r) {
    const T* p = pre + r * 4 * H;
    const T* ltm_r = ltm + r * H;
    T* ltm_next_r = ltm_next + r * H;
    T* n_r = n + r * H;
    T* ifv_r = ifv + r * 3 * H;
    T* forget_r = forget + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T N = std::tanh(p[j] + bias[j]);
      T i = sigmoid(p[H + j] + bias[H + j]);
      T f = sigmoid(p[2 * H + j] + bias[2 * H + j]);
      T V = sigmoid(p[3 * H + j] + bias[3 * H + j]);
      T forget_j = ltm_r[j] * f;           // forget gate: ltm ⊙ f
      ltm_next_r[j] = forget_j + N * i;    // remember gate: forget + learn
      n_r[j] = N; ifv_r[j] = i; ifv_r[H + j] = f; ifv_r[2 * H + j] = V; forget_r[j] = forget_j;
    }
  }
}

// use gate for b rows: u holds W_u forget on entry, U = tanh(. + b_u) on exit; stm = U ⊙ V.
template <typename T>
void use_step(int64_t b, int64_t H, T* u, const T* bias_u, const T* ifv, T* stm_next) {
  for (int64_t r = 0; r < b; ++r) {
    T* u_r = u + r * H;
    const T* V = ifv + r * 3 * H + 2 * H;
    T* stm_r = stm_next + r * H;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      T U = std::tanh(u_r[j] + bias_u[j]);
      u_r[j] = U;
      stm_r[j] = U * V[j];
    }
  }
}

// use gate backward: stm = U ⊙ V, U = tanh(U_pre), V = sigma(V_pre). dstm: d stm (b, H); dout: d output or null.
template <typename T>
void use_back(int64_t b, int64_t H, const T* dstm, const T* dout, const T* u, const T* ifv, T* dpre, T* du_pre) {
  for (int64_t r = 0; r < b; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const int64_t q = r * H + j;
      T g = dstm[q] + (dout ? dout[q] : T(0));
      T V = ifv[r * 3 * H + 2 * H + j];
      dpre[r * 4 * H + 3 * H + j] = g * u[q] * V * (1 - V);  // d V_pre
      du_pre[q] = g * V * (1 - u[q] * u[q]);                 // d U_pre
    }
  }
}

// remember = forget + learn; learn = N ⊙ i; forget = ltm ⊙ f. dforget_u: d forget through U; dltm
// (in: at step t+1, out: at step t).
template <typename T>
void remember_back(int64_t b, int64_t H, const T* dforget_u, T* dltm, const T* ifv, const T* n, const T* ltm,
                   T* dpre) {
  for (int64_t r = 0; r < b; ++r) {
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      const int64_t q = r * H + j;
      T dremember = dltm[q];
      T dforget = dforget_u[q] + dremember;
      T i = ifv[r * 3 * H + j], f = ifv[r * 3 * H + H + j], N = n[q];
      dpre[r * 4 * H + j] = dremember * i * (1 - N * N);          // d N_pre
      dpre[r * 4 * H + H + j] = dremember * N * i * (1 - i);      // d i_pre
      dpre[r * 4 * H + 2 * H + j] = dforget * ltm[q] * f * (1 - f);  // d f_pre
      dltm[q] = dforget * f;                                       // to the previous ltm
    }
  }
}

}  // namespace

namespace {

// Work items run side by side on at::parallel_for's (OpenMP) threads; a BLAS call inside one runs on
// that one thread, since OpenMP does not nest by default.

// Row boundaries 0 = r_0 < ... < r_n = B splitting the batch into n chunks of about equal work (a
// row's work is its length; rows are sorted longest first). Rows never interact, so chunks run apart.
std::vector<int64_t> split_rows(const std::vector<int64_t>& batch_sizes, int64_t B, int64_t n) {
  std::vector<int64_t> cuts{0};
  if (n > 1 && B >= 8 * n) {
    std::vector<int64_t> length(B, 0);
    int64_t total = 0;
    for (int64_t b : batch_sizes) {
      for (int64_t r = 0; r < b; ++r) ++length[r];
      total += b;
    }
    int64_t acc = 0, k = 1;
    for (int64_t r = 0; r < B - 1 && k < n; ++r) {
      acc += length[r];
      if (acc * n >= total * k) { cuts.push_back(r + 1); ++k; }
    }
  }
  cuts.push_back(B);
  return cuts;
}

// How many row chunks per direction: enough to give every thread a work item (with fewer directions
// than threads, a direction's rows are split so that no thread waits on BLAS's own threads).
int64_t chunks_per_direction(int64_t D, int64_t B, const std::vector<int64_t>& batch_sizes,
                             std::vector<int64_t>* cuts) {
  const int64_t threads = at::get_num_threads();
  const int64_t n = D >= threads ? 1 : threads / D;
  *cuts = split_rows(batch_sizes, B, n);
  return (int64_t)cuts->size() - 1;
}

struct History {  // history.py's History, one direction
  at::Tensor ltm, stm, n, ifv, u, forget;
};

// The forward loop for rows [r0, r1) of one direction (see the layout at the top of the file).
template <typename T>
void forward_rows(History& h, const at::Tensor& proj, const std::vector<int64_t>& batch_sizes, const Weight<T>& Whh,
                  const Weight<T>& Wu, const at::Tensor& bias, const at::Tensor& bias_ih, bool save, int64_t r0,
                  int64_t r1) {
  const int64_t T_ = proj.size(0), B = proj.size(1), H = proj.size(2) / 4;
  // proj is this call's own scratch (the dispatcher projects afresh for every call and reads it no
  // more): each step's products are added into it in place
  T* P = const_cast<T*>(proj.data_ptr<T>());
  T *LTM = h.ltm.data_ptr<T>(), *STM = h.stm.data_ptr<T>(), *N = h.n.data_ptr<T>(), *IFV = h.ifv.data_ptr<T>();
  T *U = h.u.data_ptr<T>(), *FORGET = h.forget.data_ptr<T>();
  const T *bu = bias.data_ptr<T>(), *bi = bias_ih.data_ptr<T>();
  for (int64_t t = 0; t < T_; ++t) {
    const int64_t b = std::min(batch_sizes[t], r1);  // rows [r0, b) read at step t
    const int64_t k = save ? t : 0;
    T* stm = STM + t * B * H;            // (B, H) state before step t
    T* stm_next = STM + (t + 1) * B * H;
    T* forget = FORGET + k * B * H;
    const int64_t stop = std::max(b, r0);
    if (stop < r1) {  // rows that stopped reading: zero outputs, and zeros that weigh nothing in backward
      std::fill(stm_next + stop * H, stm_next + r1 * H, T(0));
      std::fill(forget + stop * H, forget + r1 * H, T(0));
    }
    if (b <= r0) continue;
    const int64_t n = b - r0;
    T* pre = P + (t * B + r0) * 4 * H;                       // (n, 4H): W_ih event, in place
    step_product<T>(n, 4 * H, H, stm + r0 * H, Whh, pre, true);  // += W_hh stm
    gates_step<T>(n, H, pre, bi, LTM + (t * B + r0) * H, LTM + ((t + 1) * B + r0) * H,
                  N + (k * B + r0) * H, IFV + (k * B + r0) * 3 * H, forget + r0 * H);
    T* u = U + (k * B + r0) * H;
    step_product<T>(n, H, H, forget + r0 * H, Wu, u);    // (n, H): W_u forget
    use_step<T>(n, H, u, bu, IFV + (k * B + r0) * 3 * H, stm_next + r0 * H);
  }
}

struct Backward {
  at::Tensor dout, dltm, dstm, dpre, du_pre, dforget_u;
};

// Backward through time for rows [r0, r1), mirroring forward step by step (reference/lstm.py).
template <typename T>
void backward_rows(Backward& g, const std::vector<int64_t>& batch_sizes, const Weight<T>& Whh, const Weight<T>& Wu,
                   const History& h, int64_t r0, int64_t r1) {
  const int64_t T_ = h.n.size(0), B = h.n.size(1), H = h.n.size(2);
  T *dstm = g.dstm.data_ptr<T>(), *dltm = g.dltm.data_ptr<T>(), *dforget_u = g.dforget_u.data_ptr<T>();
  T *DPRE = g.dpre.data_ptr<T>(), *DU_PRE = g.du_pre.data_ptr<T>();
  const T* DOUT = g.dout.defined() ? g.dout.data_ptr<T>() : nullptr;
  const T *U = h.u.data_ptr<T>(), *IFV = h.ifv.data_ptr<T>(), *N = h.n.data_ptr<T>(), *LTM = h.ltm.data_ptr<T>();
  for (int64_t t = T_ - 1; t >= 0; --t) {
    const int64_t b = std::min(batch_sizes[t], r1);
    T* dpre = DPRE + t * B * 4 * H;
    T* du_pre = DU_PRE + t * B * H;
    const int64_t stop = std::max(b, r0);
    if (stop < r1) {
      std::fill(dpre + stop * 4 * H, dpre + r1 * 4 * H, T(0));
      std::fill(du_pre + stop * H, du_pre + r1 * H, T(0));
    }
    if (b <= r0) continue;
    const int64_t n = b - r0, q = t * B + r0;
    const T* ifv = IFV + q * 3 * H;
    use_back<T>(n, H, dstm + r0 * H, DOUT ? DOUT + q * H : nullptr, U + q * H, ifv, dpre + r0 * 4 * H,
                du_pre + r0 * H);
    step_product<T>(n, H, H, du_pre + r0 * H, Wu, dforget_u + r0 * H);      // U read forget through W_u
    remember_back<T>(n, H, dforget_u + r0 * H, dltm + r0 * H, ifv, N + q * H, LTM + q * H, dpre + r0 * 4 * H);
    step_product<T>(n, H, 4 * H, dpre + r0 * 4 * H, Whh, dstm + r0 * H);   // to the previous stm
  }
}

}  // namespace

// Every direction of a layer, and within a direction chunks of rows, side by side: they share
// nothing but the lengths. args[d] is direction d's; returns {ltm, stm, n, ifv, u, forget} per d.
std::vector<std::vector<at::Tensor>> forward_dirs(const std::vector<at::Tensor>& proj,
                                                  const std::vector<int64_t>& batch_sizes,
                                                  const std::vector<at::Tensor>& ltm0, const std::vector<at::Tensor>& stm0,
                                                  const std::vector<at::Tensor>& weight_hh,
                                                  const std::vector<at::Tensor>& weight_u,
                                                  const std::vector<at::Tensor>& bias_u,
                                                  const std::vector<at::Tensor>& bias_ih, bool save) {
  const int64_t D = (int64_t)proj.size();
  TORCH_CHECK(D >= 1, "at least one direction");
  const int64_t T_ = proj[0].size(0), B = proj[0].size(1), H = proj[0].size(2) / 4;
  TORCH_CHECK((int64_t)batch_sizes.size() == T_, "batch_sizes must have T entries");
  std::vector<History> h(D);
  std::vector<at::Tensor> bias(D), bias_g(D);
  const int64_t depth = save ? T_ : 1;  // history for backward, or one step of scratch
  for (int64_t d = 0; d < D; ++d) {
    TORCH_CHECK(proj[d].dim() == 3 && proj[d].is_contiguous(), "proj must be a contiguous (T, B, 4H) tensor");
    // W_hh (4H, H) and W_u (H, H) as they are: BLAS reads them transposed, so no per-call copy (at one
    // review, a transposed copy of the weights is more work than the loop itself)
    TORCH_CHECK(weight_hh[d].is_contiguous() && weight_u[d].is_contiguous(), "weights must be contiguous");
    const auto& p = proj[d];
    h[d] = {p.new_empty({T_ + 1, B, H}), p.new_empty({T_ + 1, B, H}), p.new_empty({depth, B, H}),
            p.new_empty({depth, B, 3 * H}), p.new_empty({depth, B, H}), p.new_empty({depth, B, H})};
    h[d].ltm[0].copy_(ltm0[d]);
    h[d].stm[0].copy_(stm0[d]);
    bias[d] = bias_u[d].contiguous();
    bias_g[d] = bias_ih[d].contiguous();
  }
  std::vector<int64_t> cuts;
  const int64_t nc = chunks_per_direction(D, B, batch_sizes, &cuts);
  AT_DISPATCH_FLOATING_TYPES(proj[0].scalar_type(), "four_gate_forward", [&] {
    // each weight packed (when that library is on) once for all steps and chunks of this call
    std::vector<Weight<scalar_t>> whh(D), wu(D);
    for (int64_t d = 0; d < D; ++d) {
      whh[d] = step_weight<scalar_t>(weight_hh[d], true, B);
      wu[d] = step_weight<scalar_t>(weight_u[d], true, B);
    }
    at::parallel_for(0, D * nc, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t d = item / nc, c = item % nc;
        forward_rows<scalar_t>(h[d], proj[d], batch_sizes, whh[d], wu[d], bias[d], bias_g[d], save,
                               cuts[c], cuts[c + 1]);
      }
    });
  });
  std::vector<std::vector<at::Tensor>> out(D);
  for (int64_t d = 0; d < D; ++d) out[d] = {h[d].ltm, h[d].stm, h[d].n, h[d].ifv, h[d].u, h[d].forget};
  return out;
}

// histories[d] = {ltm, stm, n, ifv, u, forget}; grads[d] = {dout, dltm_T, dstm_T}, an empty tensor
// standing for "no gradient" (an output nobody used). Returns per d: {dpre (T, B, 4H), du_pre (T, B, H),
// dltm0, dstm0}; the weight gradients are products over all steps, made by the caller.
std::vector<std::vector<at::Tensor>> backward_dirs(const std::vector<std::vector<at::Tensor>>& grads,
                                                   const std::vector<int64_t>& batch_sizes,
                                                   const std::vector<at::Tensor>& weight_hh,
                                                   const std::vector<at::Tensor>& weight_u,
                                                   const std::vector<std::vector<at::Tensor>>& histories) {
  const int64_t D = (int64_t)histories.size();
  const auto& n0 = histories[0][2];
  const int64_t T_ = n0.size(0), B = n0.size(1), H = n0.size(2);
  std::vector<Backward> g(D);
  std::vector<History> h(D);
  std::vector<at::Tensor> w_hh(D), w_u(D);
  for (int64_t d = 0; d < D; ++d) {
    const auto& v = histories[d];
    h[d] = {v[0], v[1], v[2], v[3], v[4], v[5]};
    const auto& n = h[d].n;
    const auto &dout = grads[d][0], &dltm_T = grads[d][1], &dstm_T = grads[d][2];
    g[d] = {dout.numel() ? dout.contiguous() : at::Tensor(),
            dltm_T.numel() ? dltm_T.contiguous().clone() : n.new_zeros({B, H}),
            dstm_T.numel() ? dstm_T.contiguous().clone() : n.new_zeros({B, H}),
            n.new_empty({T_, B, 4 * H}), n.new_empty({T_, B, H}), n.new_empty({B, H})};
    w_hh[d] = weight_hh[d].contiguous();
    w_u[d] = weight_u[d].contiguous();
  }
  std::vector<int64_t> cuts;
  const int64_t nc = chunks_per_direction(D, B, batch_sizes, &cuts);
  AT_DISPATCH_FLOATING_TYPES(n0.scalar_type(), "four_gate_backward", [&] {
    std::vector<Weight<scalar_t>> whh(D), wu(D);
    for (int64_t d = 0; d < D; ++d) {
      whh[d] = step_weight<scalar_t>(w_hh[d], false, B);
      wu[d] = step_weight<scalar_t>(w_u[d], false, B);
    }
    at::parallel_for(0, D * nc, 1, [&](int64_t begin, int64_t end) {
      for (int64_t item = begin; item < end; ++item) {
        const int64_t d = item / nc, c = item % nc;
        backward_rows<scalar_t>(g[d], batch_sizes, whh[d], wu[d], h[d], cuts[c], cuts[c + 1]);
      }
    });
  });
  std::vector<std::vector<at::Tensor>> out(D);
  for (int64_t d = 0; d < D; ++d) out[d] = {g[d].dpre, g[d].du_pre, g[d].dltm, g[d].dstm};
  return out;
}

// Whether this build runs work items side by side: at::parallel_for is a header template that runs
// its whole range on the calling thread unless this file itself is compiled with OpenMP.
bool side_by_side() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// The per-step products' libraries, {forward rows < 16, forward rows >= 16, backward}: 0 BLAS, 1 BLAS
// with packed weights, 2 oneDNN. A library this torch lacks falls back to BLAS; returns what is in force.
std::vector<int64_t> set_step_libraries(const std::vector<int64_t>& libs) {
  TORCH_CHECK(libs.size() == 3, "three libraries: forward with rows < 16, forward with more, backward");
  for (int i = 0; i < 3; ++i) {
    TORCH_CHECK(libs[i] >= BLAS && libs[i] <= ONEDNN, "library must be 0, 1 or 2");
    Library lib = (Library)libs[i];
    if ((lib == BLAS_PACKED && !packing_available()) || (lib == ONEDNN && !onednn_available())) lib = BLAS;
    step_library[i] = lib;
  }
  return {step_library[FEW], step_library[MANY], step_library[BACK]};
}

// out (M, N) = a (M, K) @ b (K, N) (+ out when accumulate) through oneDNN, for the products over all
// steps at once (the input projection, the weight gradients) where oneDNN is the faster library.
void onednn_mm(const at::Tensor& a, const at::Tensor& b, const at::Tensor& out, bool accumulate) {
  TORCH_CHECK(onednn_available(), "this torch has no oneDNN matmul");
  TORCH_CHECK(a.scalar_type() == at::kFloat && b.scalar_type() == at::kFloat && out.scalar_type() == at::kFloat,
              "oneDNN products here are float32");
  at::native::mkldnn_matmul(a, b, out, accumulate ? 1.0f : 0.0f, 1.0f);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("packing_available", &packing_available, "whether MKL's packed GEMM is linked");
  m.def("onednn_available", &onednn_available, "whether torch's oneDNN matmul is linked");
  m.def("set_step_libraries", &set_step_libraries, "the per-step products' libraries {few rows, many, backward}");
  m.def("onednn_mm", &onednn_mm, "out = a @ b (+ out) through oneDNN");
  m.def("side_by_side", &side_by_side, "whether directions and row chunks run on threads side by side");
  m.def("forward_dirs", &forward_dirs, "four-gate LSTM over a length-sorted batch, every direction side by side");
  m.def("backward_dirs", &backward_dirs, "its backward through time");
}
