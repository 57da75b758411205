#include "train/trainer.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>

#include "baselines/lt_gemm.hpp"
#include "common/host_data.hpp"
#include "swiglu/gate.hpp"
#include "train/train_kernels.hpp"

namespace swiglu::train {
namespace {

using common::DeviceBuffer;

// Why 16: the logits and their gradient are stored with a row stride of 16 elements (32 bytes in
// the 16-bit dtypes), so every row starts aligned for cuBLASLt's vectorised kernels; columns
// classes..15 are zero.
constexpr int64_t kLogitsLd = 16;

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw common::CudaError(fmt::format("{}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e)));
}

void check(const Status& s, const char* what) {
  if (!s.ok()) throw std::runtime_error(fmt::format("{}: {}", what, s.message));
}

DeviceBuffer upload_bytes(const void* data, size_t bytes) {
  DeviceBuffer d(bytes);
  if (bytes > 0) check(cudaMemcpy(d.get(), data, bytes, cudaMemcpyHostToDevice), "upload");
  return d;
}

DeviceBuffer upload_as(const std::vector<float>& values, DType dtype) {
  std::vector<float> rounded(values.size());
  for (size_t i = 0; i < values.size(); ++i) rounded[i] = common::round_to(values[i], dtype);
  const auto bytes = common::to_dtype_bytes(rounded, dtype);
  return upload_bytes(bytes.data(), bytes.size());
}

DeviceBuffer zeros(size_t bytes) {
  DeviceBuffer d(bytes);
  if (bytes > 0) check(cudaMemset(d.get(), 0, bytes), "cudaMemset");
  return d;
}

std::vector<float> download_f32(const DeviceBuffer& b, size_t n) {
  std::vector<float> out(n);
  if (n > 0) check(cudaMemcpy(out.data(), b.get(), n * sizeof(float), cudaMemcpyDeviceToHost), "download");
  return out;
}

std::vector<uint8_t> download_u8(const DeviceBuffer& b, size_t n) {
  std::vector<uint8_t> out(n);
  if (n > 0) check(cudaMemcpy(out.data(), b.get(), n, cudaMemcpyDeviceToHost), "download");
  return out;
}

std::string tile_name(const TileConfig& t) { return t.block_m == 0 ? std::string("-") : t.name(); }

}  // namespace

// ---- data ---------------------------------------------------------------------------------------

DeviceSplit::DeviceSplit(const Split& split, DType dtype, Normalization norm, cudaStream_t stream)
    : count_(split.count), features_(split.features()), dtype_(dtype) {
  nvtx3::scoped_range range{"train/upload split"};
  const int64_t n = count_ * features_;
  DeviceBuffer pixels(split.pixels.size());
  if (!split.pixels.empty()) {
    // Why on `stream`: the copy must be ordered before the kernel that reads it (a plain cudaMemcpy
    // from pageable memory may return before its DMA lands, and `stream` does not wait for it).
    check(cudaMemcpyAsync(pixels.get(), split.pixels.data(), split.pixels.size(),
                          cudaMemcpyHostToDevice, stream),
          "pixel upload");
  }
  x_ = DeviceBuffer(static_cast<size_t>(n) * dtype_size(dtype));
  check(launch_normalize(dtype, pixels.as<uint8_t>(), x_.get(), n, static_cast<float>(norm.mean),
                         static_cast<float>(1.0 / norm.stddev), stream),
        "normalize launch");
  std::vector<int32_t> labels(split.labels.begin(), split.labels.end());
  labels_ = upload_bytes(labels.data(), labels.size() * sizeof(int32_t));
  // Why: `pixels` is freed when this returns, so the kernel must be done with it; and the device-wide
  // wait also covers the label upload's DMA.
  check(cudaDeviceSynchronize(), "normalize");
}

std::vector<int32_t> epoch_order(uint64_t seed, int epoch, int64_t n) {
  std::vector<int32_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  uint64_t state = seed ^ (0xA0761D6478BD642Full * static_cast<uint64_t>(epoch));
  for (int64_t i = n - 1; i > 0; --i) {
    // j uniform in 0..i: the top 32 random bits scaled by i + 1 (bias below 2^-32 · n).
    const uint64_t r = splitmix64(state) >> 32;
    const auto j = static_cast<int64_t>((r * static_cast<uint64_t>(i + 1)) >> 32);
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

InitialParams initial_params(int64_t in_features, int64_t hidden, int classes, uint64_t seed) {
  uint64_t state = seed;
  const uint64_t s_w12 = splitmix64(state), s_b12 = splitmix64(state), s_w2 = splitmix64(state),
                 s_b2 = splitmix64(state);
  const float a1 = 1.0f / std::sqrt(static_cast<float>(in_features));
  const float a2 = 1.0f / std::sqrt(static_cast<float>(hidden));
  const auto n = [](int64_t a, int64_t b) { return static_cast<size_t>(a * b); };
  InitialParams p;
  p.w12 = common::uniform_values(n(2 * hidden, in_features), -a1, a1, s_w12, DType::f32);
  p.b12 = common::uniform_values(n(2 * hidden, 1), -a1, a1, s_b12, DType::f32);
  p.w2 = common::uniform_values(n(classes, hidden), -a2, a2, s_w2, DType::f32);
  p.b2 = common::uniform_values(n(classes, 1), -a2, a2, s_b2, DType::f32);
  return p;
}

std::vector<int64_t> step_rows(int64_t n, int64_t batch, int64_t max_steps) {
  std::vector<int64_t> rows;
  for (int64_t first = 0; first < n; first += batch) {
    if (max_steps > 0 && static_cast<int64_t>(rows.size()) >= max_steps) break;
    rows.push_back(std::min(batch, n - first));
  }
  return rows;
}

// ---- the trainer --------------------------------------------------------------------------------

// The GEMMs and the baseline's plans for one batch size (they bind their buffers at planning).
struct RowPlans {
  baselines::Plan forward;             // baselines only
  baselines::BackwardPlan backward;    // baselines only
  baselines::LtGemm logits, dw2, dz;   // the output layer
};

struct Trainer::Impl {
  TrainConfig c;
  const DeviceSplit& train;
  const DeviceSplit& test;
  const baselines::Cublas& cublas;
  cudaStream_t stream;
  int64_t in = 0, max_steps = 0, max_rows = 0;
  std::vector<int64_t> train_rows, test_rows;  // rows of each step

  // fp32 masters and optimizer state (m: momentum or first moment; v: second moment, AdamW).
  DeviceBuffer w12, b12, w2, b2;
  DeviceBuffer m_w12, m_b12, m_w2, m_b2, v_w12, v_b12, v_w2, v_b2;
  // Compute copies in the dtype (fp32: none, the masters are read directly).
  DeviceBuffer w12_lp, b12_lp, w2_lp;
  // --dtype fp8: X and W12 quantised to e4m3 for each forward (W12 from the fp32 masters): the
  // forward's copies (xq, wq) and the backward's transposed ones (xt, wt), with their scales, and
  // the FP8 backward's workspace.
  DeviceBuffer xq, xq_scale, xt, xt_scale, wq, wq_scale, wt, wt_scale, fp8_workspace;
  int64_t ldxt = 0;
  size_t fp8_workspace_bytes = 0;
  std::string fp8_kernel;
  // Gradients: the SwiGLU layer's in the dtype, the output layer's in fp32.
  DeviceBuffer dw12, db12, dw2, db2;
  // Activations for up to max_rows rows.
  DeviceBuffer xb, yb, z, saved, scratch, bwd_scratch, workspace, logits, dlog_f32, dlog, dz, dx;
  size_t workspace_bytes = 0;
  // Per-example loss and correctness, indexed by position in the epoch / the test split.
  DeviceBuffer train_loss, train_correct, test_loss, test_correct, order;
  common::Event start, stop;
  std::map<int64_t, std::unique_ptr<RowPlans>> plans;
  int64_t adam_t = 0;
  TileConfig used_forward;
  BackwardTiles used_backward;
  // What the fused layer ran on a full training batch (layer_tiles()).
  TileConfig step_forward;
  BackwardTiles step_backward;

  Impl(const TrainConfig& cfg, const DeviceSplit& tr, const DeviceSplit& te,
       const baselines::Cublas& cb, cudaStream_t s, int64_t steps)
      : c(cfg), train(tr), test(te), cublas(cb), stream(s), max_steps(steps) {}

  bool fused() const { return c.variant == LayerVariant::fused; }
  bool fp8() const { return c.dtype == DType::e4m3; }
  // The dtype of the data, the output layer and (but for FP8) the SwiGLU layer.
  DType cdt() const { return compute_dtype(c.dtype); }
  bool lowp() const { return cdt() != DType::f32; }
  const void* w12_compute() const { return lowp() ? w12_lp.get() : w12.get(); }
  const void* b12_compute() const { return lowp() ? b12_lp.get() : b12.get(); }
  const void* w2_compute() const { return lowp() ? w2_lp.get() : w2.get(); }
  size_t es() const { return dtype_size(cdt()); }
  // The SwiGLU layer's gradients' dtype: the compute dtype, or fp32 for FP8 (its GEMMs write the
  // master gradient directly).
  DType grad_dtype() const { return fp8() ? DType::f32 : cdt(); }

  Problem problem(int64_t rows) const {
    Problem p;
    p.batch = rows;
    p.in_features = in;
    p.hidden = c.hidden;
    p.dtype = c.dtype;
    p.bias = true;
    p.layout = Layout::linear;
    return p;
  }

  Fp8Problem fp8_problem(int64_t rows) const {
    Fp8Problem p;
    p.batch = rows;
    p.in_features = in;
    p.hidden = c.hidden;
    p.x_scaling = Fp8Scaling::blocks;
    p.w_scaling = Fp8Scaling::blocks;
    p.out = DType::bf16;
    p.bias = true;
    return p;
  }

  BackwardOptions backward_options() const {
    BackwardOptions o;
    o.policy = c.policy;
    o.grads = c.grads;
    return o;
  }

  void allocate();
  void plan(int64_t rows);
  void step(const DeviceSplit& split, const int32_t* order_dev, int64_t first, int64_t rows,
            bool update);
  void forward(int64_t rows, bool keep_for_backward);
  void forward_fp8(int64_t rows, bool keep_for_backward);
  void backward_fp8(int64_t rows);
  void eval_batch(int64_t first, int64_t rows);
  void update(int64_t rows);

  // The milliseconds between events recorded on the stream before and after `enqueue` queues its
  // work; `what` names the wait for the second event in an error.
  template <class Enqueue>
  float time_ms(const char* what, Enqueue&& enqueue) {
    check(cudaEventRecord(start.get(), stream), "cudaEventRecord");
    enqueue();
    check(cudaEventRecord(stop.get(), stream), "cudaEventRecord");
    check(cudaEventSynchronize(stop.get()), what);
    float ms = 0;
    check(cudaEventElapsedTime(&ms, start.get(), stop.get()), "cudaEventElapsedTime");
    return ms;
  }
};

void Trainer::Impl::allocate() {
  const int64_t D = c.hidden, C = c.classes, R = max_rows;
  const size_t es = this->es();
  const auto n = [](int64_t a, int64_t b) { return static_cast<size_t>(a) * static_cast<size_t>(b); };
  const InitialParams init = initial_params(in, D, C, c.seed);
  w12 = upload_as(init.w12, DType::f32);
  b12 = upload_as(init.b12, DType::f32);
  w2 = upload_as(init.w2, DType::f32);
  b2 = upload_as(init.b2, DType::f32);
  if (lowp()) {
    // (FP8 quantises W12 from the masters: no compute copy of it.)
    if (!fp8()) w12_lp = upload_as(init.w12, cdt());
    b12_lp = upload_as(init.b12, cdt());
    w2_lp = upload_as(init.w2, cdt());
  }
  const bool adam = c.optimizer == Optimizer::adamw;
  m_w12 = zeros(init.w12.size() * 4);
  m_b12 = zeros(init.b12.size() * 4);
  m_w2 = zeros(init.w2.size() * 4);
  m_b2 = zeros(init.b2.size() * 4);
  if (adam) {
    v_w12 = zeros(init.w12.size() * 4);
    v_b12 = zeros(init.b12.size() * 4);
    v_w2 = zeros(init.w2.size() * 4);
    v_b2 = zeros(init.b2.size() * 4);
  }
  if (c.grads.dw) {
    dw12 = DeviceBuffer(n(2 * D, in) * dtype_size(grad_dtype()));
    db12 = DeviceBuffer(n(2 * D, 1) * dtype_size(grad_dtype()));
  }
  dw2 = DeviceBuffer(n(C, D) * 4);
  db2 = DeviceBuffer(n(C, 1) * 4);

  xb = DeviceBuffer(n(R, in) * es);
  yb = DeviceBuffer(n(R, 1) * sizeof(int32_t));
  z = DeviceBuffer(n(R, D) * es);
  if (fp8()) {
    const int64_t kb = (in + 127) / 128, db = (D + 127) / 128, rb = (R + 127) / 128;
    ldxt = (R + 15) / 16 * 16;
    xq = DeviceBuffer(n(R, in));
    xq_scale = DeviceBuffer(n(R, kb) * 4);
    xt = DeviceBuffer(n(in, ldxt));
    xt_scale = DeviceBuffer(n(in, rb) * 4);
    wq = DeviceBuffer(n(2 * D, in));
    wq_scale = DeviceBuffer(n(2 * db, kb) * 4);
    wt = DeviceBuffer(n(in, 2 * D));
    wt_scale = DeviceBuffer(n(2 * kb, db) * 4);
    saved = DeviceBuffer(n(R, 2 * D) * es);
    for (const int64_t rows : train_rows) {
      size_t bytes = 0;
      check(backward_fp8_workspace_bytes(fp8_problem(rows), &bytes), "FP8 backward workspace");
      fp8_workspace_bytes = std::max(fp8_workspace_bytes, bytes);
    }
    fp8_workspace = DeviceBuffer(fp8_workspace_bytes);
  } else if (fused()) {
    if (c.policy == Policy::save) saved = DeviceBuffer(n(R, 2 * D) * es);
    for (const int64_t rows : train_rows)
      workspace_bytes = std::max(workspace_bytes, backward_workspace_bytes(problem(rows), backward_options()));
    workspace = DeviceBuffer(workspace_bytes);
  } else {
    const auto v = c.variant == LayerVariant::cublas2 ? baselines::Variant::cublas2 : baselines::Variant::cublas1;
    scratch = DeviceBuffer(baselines::scratch_bytes(v, problem(R)));
    bwd_scratch = DeviceBuffer(baselines::backward_scratch_bytes(v, problem(R)));
  }
  logits = zeros(n(R, kLogitsLd) * 4);
  dlog_f32 = zeros(n(R, kLogitsLd) * 4);
  dlog = zeros(n(R, kLogitsLd) * es);
  dz = DeviceBuffer(n(R, D) * es);
  if (c.grads.dx) dx = DeviceBuffer(n(R, in) * es);
  train_loss = DeviceBuffer(n(train.count(), 1) * 4);
  train_correct = DeviceBuffer(n(train.count(), 1));
  test_loss = DeviceBuffer(n(test.count(), 1) * 4);
  test_correct = DeviceBuffer(n(test.count(), 1));
  order = DeviceBuffer(n(train.count(), 1) * sizeof(int32_t));
}

void Trainer::Impl::plan(int64_t rows) {
  if (plans.count(rows) != 0) return;
  auto rp = std::make_unique<RowPlans>();
  const Problem p = problem(rows);
  const int64_t D = c.hidden, C = c.classes;
  const cudaDataType_t t = baselines::cuda_type(cdt());
  if (!fused()) {
    const auto v = c.variant == LayerVariant::cublas2 ? baselines::Variant::cublas2 : baselines::Variant::cublas1;
    check(baselines::Plan::create(cublas, v, p, xb.get(), w12_compute(), b12_compute(), z.get(),
                                  scratch.get(), &rp->forward),
          "baseline forward plan");
    check(baselines::BackwardPlan::create(cublas, v, p, xb.get(), w12_compute(), scratch.get(),
                                          dz.get(), c.grads, dx.get(), dw12.get(), db12.get(),
                                          bwd_scratch.get(), &rp->backward),
          "baseline backward plan");
  }
  const auto plan_gemm = [&](baselines::LtGemm& gemm, const baselines::MatmulSpec& s, const char* what) {
    check(gemm.plan(cublas.handle(), s, cublas.workspace_bytes()), what);
  };
  // logits (rows × C, fp32, ld 16) = Z (rows × D) · W2ᵀ, W2 stored C × D (nn.Linear).
  plan_gemm(rp->logits,
            {.m = rows, .n = C, .k = D, .a = z.get(), .lda = D, .b = w2_compute(), .ldb = D,
             .trans_b = true, .out = logits.get(), .ld_out = kLogitsLd, .in_type = t,
             .out_type = CUDA_R_32F},
            "logits GEMM plan");
  // dW2 (C × D, fp32) = dlogitsᵀ (C × rows) · Z (rows × D); dlogits is stored rows × C.
  plan_gemm(rp->dw2,
            {.m = C, .n = D, .k = rows, .a = dlog.get(), .lda = kLogitsLd, .trans_a = true,
             .b = z.get(), .ldb = D, .out = dw2.get(), .ld_out = D, .in_type = t,
             .out_type = CUDA_R_32F},
            "dW2 GEMM plan");
  // dZ (rows × D, dtype) = dlogits (rows × C) · W2 (C × D).
  plan_gemm(rp->dz,
            {.m = rows, .n = D, .k = C, .a = dlog.get(), .lda = kLogitsLd, .b = w2_compute(),
             .ldb = D, .out = dz.get(), .ld_out = D, .in_type = t, .out_type = t},
            "dZ GEMM plan");
  plans.emplace(rows, std::move(rp));
}

// X and the fp32 master W12 to e4m3 in the blockwise recipe's blocks (X 1×128 with, for the
// backward, Xᵀ along the batch; Wa's and Wb's 128×128 blocks apart, with W12ᵀ), then the FP8
// forward, keeping H for the backward when asked.
void Trainer::Impl::forward_fp8(int64_t rows, bool keep_for_backward) {
  const int64_t D = c.hidden, kb = (in + 127) / 128, db = (D + 127) / 128;
  {
    nvtx3::scoped_range r{"quantise"};
    for (int64_t half = 0; half < 2; ++half) {
      check(quantize_e4m3_transposed(DType::f32, w12.as<float>() + half * D * in, in, D, in, Fp8Blocks::tile_128x128,
                                     wq.as<uint8_t>() + half * D * in, in, wq_scale.as<float>() + half * db * kb,
                                     wt.as<uint8_t>() + half * D, 2 * D, wt_scale.as<float>() + half * kb * db, stream),
            "W12 quantisation");
    }
    if (keep_for_backward) {
      check(quantize_e4m3_transposed(DType::bf16, xb.get(), in, rows, in, Fp8Blocks::row_1x128, xq.get(), in,
                                     xq_scale.as<float>(), xt.get(), ldxt, xt_scale.as<float>(), stream),
            "X quantisation");
    } else {
      check(quantize_e4m3(DType::bf16, xb.get(), in, rows, in, Fp8Blocks::row_1x128, xq.get(), in,
                          xq_scale.as<float>(), stream),
            "X quantisation");
    }
  }
  const Fp8Problem p = fp8_problem(rows);
  Fp8Tensors t;
  t.x = xq.get();
  t.x_scale = xq_scale.as<float>();
  t.w = wq.get();
  t.w_scale = wq_scale.as<float>();
  t.bias = b12_lp.get();
  t.z = z.get();
  t.saved = keep_for_backward ? saved.get() : nullptr;
  check(swiglu::forward_fp8(p, t, stream), "FP8 forward");
  fp8_kernel = std::string(forward_fp8_kernel(p));
}

void Trainer::Impl::backward_fp8(int64_t rows) {
  Fp8BackwardTensors t;
  t.dz = dz.get();
  t.saved = saved.get();
  if (c.grads.dx) {
    t.wt = wt.get();
    t.wt_scale = wt_scale.as<float>();
    t.dx = dx.get();
    t.dx_dtype = DType::bf16;
  }
  t.xt = xt.get();
  t.ldxt = ldxt;
  t.xt_scale = xt_scale.as<float>();
  if (c.grads.dw) {
    t.dw = dw12.get();
    t.dw_dtype = DType::f32;
    t.dbias = db12.get();
    t.dbias_dtype = DType::f32;
  }
  check(swiglu::backward_fp8(fp8_problem(rows), t, fp8_workspace.get(), fp8_workspace_bytes, stream), "FP8 backward");
}

void Trainer::Impl::forward(int64_t rows, bool keep_for_backward) {
  nvtx3::scoped_range range{"forward"};
  if (fp8()) {
    forward_fp8(rows, keep_for_backward);
  } else if (fused()) {
    ForwardOptions fo;
    if (keep_for_backward && c.policy == Policy::save) fo.saved = saved.get();
    check(swiglu::forward(problem(rows), xb.get(), w12_compute(), b12_compute(), z.get(), stream, fo,
                          &used_forward),
          "fused forward");
  } else {
    check(plans.at(rows)->forward.run(stream), "baseline forward");
  }
  check(plans.at(rows)->logits.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream),
        "logits GEMM");
}

void Trainer::Impl::step(const DeviceSplit& split, const int32_t* order_dev, int64_t first,
                         int64_t rows, bool do_update) {
  nvtx3::scoped_range range{"step"};
  RowPlans& rp = *plans.at(rows);
  check(launch_gather(cdt(), split.x(), in, split.labels(), order_dev, first, rows, xb.get(),
                      yb.as<int32_t>(), stream),
        "gather launch");
  forward(rows, true);
  {
    nvtx3::scoped_range r{"loss"};
    check(launch_softmax_xent(cdt(), logits.as<float>(), kLogitsLd, b2.as<float>(),
                              yb.as<int32_t>(), rows, c.classes, dlog_f32.as<float>(), dlog.get(),
                              train_loss.as<float>(), train_correct.as<uint8_t>(), first, stream),
          "softmax cross-entropy launch");
  }
  {
    nvtx3::scoped_range r{"backward"};
    check(detail::launch_column_sum(DType::f32, DType::f32, dlog_f32.get(), kLogitsLd, db2.get(),
                                    rows, c.classes, stream),
          "db2 column sum launch");
    const auto run = [&](const baselines::LtGemm& gemm, const char* what) {
      check(gemm.run(cublas.handle(), cublas.workspace(), cublas.workspace_bytes(), stream), what);
    };
    run(rp.dw2, "dW2 GEMM");
    run(rp.dz, "dZ GEMM");
    if (fp8()) {
      backward_fp8(rows);
    } else if (fused()) {
      BackwardTensors t;
      t.x = xb.get();
      t.w = w12_compute();
      t.bias = b12_compute();
      t.dz = dz.get();
      t.saved = saved.get();
      t.dx = dx.get();
      t.dw = dw12.get();
      t.dbias = db12.get();
      check(swiglu::backward(problem(rows), t, backward_options(), workspace.get(), workspace_bytes,
                             stream, &used_backward),
            "fused backward");
      if (rows == train_rows.front()) {
        step_forward = used_forward;
        step_backward = used_backward;
      }
    } else {
      check(rp.backward.run(stream), "baseline backward");
    }
  }
  if (do_update) update(rows);
}

void Trainer::Impl::update(int64_t rows) {
  nvtx3::scoped_range range{"optimizer"};
  const float scale = 1.0f / static_cast<float>(rows);
  const DType lp = lowp() ? cdt() : DType::f32;
  std::vector<ParamRef> params;
  const auto add = [&](DeviceBuffer& master, const DeviceBuffer& grad, DType grad_type,
                       DeviceBuffer* lowp_copy, DeviceBuffer& m, DeviceBuffer& v) {
    ParamRef p;
    p.master = master.as<float>();
    p.grad = grad.get();
    p.grad_type = grad_type;
    p.lowp = lowp_copy != nullptr && lowp() ? lowp_copy->get() : nullptr;
    p.lowp_type = p.lowp != nullptr ? lp : DType::f32;
    p.m = m.as<float>();
    p.v = v.as<float>();
    p.n = static_cast<int64_t>(master.bytes() / sizeof(float));
    params.push_back(p);
  };
  if (c.grads.dw) {
    // FP8: the layer reads W12 from the fp32 masters (quantised each forward), so there is no
    // compute copy of it to refresh; the bias keeps its bf16 copy.
    add(w12, dw12, grad_dtype(), fp8() ? nullptr : &w12_lp, m_w12, v_w12);
    add(b12, db12, grad_dtype(), &b12_lp, m_b12, v_b12);
  }
  add(w2, dw2, DType::f32, &w2_lp, m_w2, v_w2);
  add(b2, db2, DType::f32, nullptr, m_b2, v_b2);
  if (c.optimizer == Optimizer::sgd) {
    const SgdHyper h{c.lr, c.momentum, c.weight_decay};
    for (const ParamRef& p : params) check(launch_sgd(p, h, scale, stream), "SGD launch");
  } else {
    ++adam_t;
    AdamWHyper h;
    h.lr = c.lr;
    h.weight_decay = c.weight_decay;
    for (const ParamRef& p : params) check(launch_adamw(p, h, scale, adam_t, stream), "AdamW launch");
  }
}

void Trainer::Impl::eval_batch(int64_t first, int64_t rows) {
  check(launch_gather(cdt(), test.x(), in, test.labels(), nullptr, first, rows, xb.get(),
                      yb.as<int32_t>(), stream),
        "gather launch");
  forward(rows, false);
  check(launch_softmax_xent(cdt(), logits.as<float>(), kLogitsLd, b2.as<float>(),
                            yb.as<int32_t>(), rows, c.classes, nullptr, nullptr,
                            test_loss.as<float>(), test_correct.as<uint8_t>(), first, stream),
        "softmax cross-entropy launch");
}

Trainer::Trainer(const TrainConfig& config, const DeviceSplit& train, const DeviceSplit& test,
                 const baselines::Cublas& cublas, cudaStream_t stream, int64_t max_steps)
    : impl_(std::make_unique<Impl>(config, train, test, cublas, stream, max_steps)) {
  Impl& m = *impl_;
  if (train.features() != test.features() || train.dtype() != compute_dtype(config.dtype) ||
      test.dtype() != compute_dtype(config.dtype))
    throw std::invalid_argument("the training and test splits must have the same features and dtype as the model");
  if (config.batch < 1 || config.hidden < 1 || config.classes < 1 || config.classes > kLogitsLd)
    throw std::invalid_argument(fmt::format("batch {} and hidden {} must be >= 1, classes {} in 1..{}",
                                            config.batch, config.hidden, config.classes, kLogitsLd));
  if (!config.grads.dx && !config.grads.dw)
    throw std::invalid_argument("the SwiGLU layer must compute dx, dw or both");
  if (config.dtype == DType::e4m3 &&
      (config.variant != LayerVariant::fused || config.policy != Policy::save || config.hidden % 16 != 0))
    throw std::invalid_argument("FP8 trains the fused layer with the save policy, hidden a multiple of 16");
  if (train.count() < 1 || test.count() < 1)
    throw std::invalid_argument("the training and test splits must not be empty");
  m.in = train.features();
  m.train_rows = step_rows(train.count(), config.batch, max_steps);
  m.test_rows = step_rows(test.count(), config.batch, 0);
  m.max_rows = std::max(*std::max_element(m.train_rows.begin(), m.train_rows.end()),
                        *std::max_element(m.test_rows.begin(), m.test_rows.end()));
  nvtx3::scoped_range range{"train/setup"};
  m.allocate();
  for (const int64_t r : std::set<int64_t>(m.train_rows.begin(), m.train_rows.end())) m.plan(r);
  for (const int64_t r : std::set<int64_t>(m.test_rows.begin(), m.test_rows.end())) m.plan(r);
  // Why the whole device: the uploads and memsets above ran on the legacy stream, which `stream`
  // (non-blocking) does not wait for.
  check(cudaDeviceSynchronize(), "trainer setup");
}

Trainer::~Trainer() = default;

const TrainConfig& Trainer::config() const { return impl_->c; }

void Trainer::warm_up() {
  Impl& m = *impl_;
  nvtx3::scoped_range range{"train/warm-up"};
  // Identity order over the first rows: the buffers' contents are overwritten by the first epoch.
  for (const int64_t r : std::set<int64_t>(m.train_rows.begin(), m.train_rows.end()))
    m.step(m.train, nullptr, 0, r, false);
  for (const int64_t r : std::set<int64_t>(m.test_rows.begin(), m.test_rows.end())) m.eval_batch(0, r);
  check(cudaStreamSynchronize(m.stream), "warm-up");
}

EpochStats Trainer::train_epoch(const std::vector<int32_t>& order, const std::atomic<bool>* stop) {
  Impl& m = *impl_;
  if (static_cast<int64_t>(order.size()) != m.train.count())
    throw std::invalid_argument(fmt::format("the order has {} entries for {} training examples",
                                            order.size(), m.train.count()));
  check(cudaMemcpyAsync(m.order.get(), order.data(), order.size() * sizeof(int32_t),
                        cudaMemcpyHostToDevice, m.stream),
        "order upload");
  EpochStats st;
  st.ms = m.time_ms("training epoch", [&] {
    nvtx3::scoped_range range{"train/steps"};
    int64_t first = 0;
    for (const int64_t rows : m.train_rows) {
      if (stop != nullptr && stop->load()) break;
      m.step(m.train, m.order.as<int32_t>(), first, rows, true);
      st.step_rows.push_back(rows);
      first += rows;
    }
    st.images = first;
  });
  st.complete = st.step_rows.size() == m.train_rows.size();

  // Per-step means in step order, in double: the same numbers for every run of the same losses.
  const std::vector<float> loss = download_f32(m.train_loss, static_cast<size_t>(st.images));
  const std::vector<uint8_t> correct = download_u8(m.train_correct, static_cast<size_t>(st.images));
  double total = 0;
  int64_t right = 0, pos = 0;
  for (const int64_t rows : st.step_rows) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r, ++pos) {
      s += loss[static_cast<size_t>(pos)];
      right += correct[static_cast<size_t>(pos)];
    }
    st.step_loss.push_back(s / static_cast<double>(rows));
    total += s;
  }
  if (st.images > 0) {
    st.loss = total / static_cast<double>(st.images);
    st.accuracy = static_cast<double>(right) / static_cast<double>(st.images);
  }
  return st;
}

EvalStats Trainer::evaluate() {
  Impl& m = *impl_;
  EvalStats st;
  st.ms = m.time_ms("evaluation", [&] {
    nvtx3::scoped_range range{"eval"};
    int64_t first = 0;
    for (const int64_t rows : m.test_rows) {
      m.eval_batch(first, rows);
      first += rows;
    }
    st.images = first;
  });
  const std::vector<float> loss = download_f32(m.test_loss, static_cast<size_t>(st.images));
  const std::vector<uint8_t> correct = download_u8(m.test_correct, static_cast<size_t>(st.images));
  double total = 0;
  int64_t right = 0;
  for (size_t i = 0; i < loss.size(); ++i) {
    total += loss[i];
    right += correct[i];
  }
  st.loss = total / static_cast<double>(st.images);
  st.accuracy = static_cast<double>(right) / static_cast<double>(st.images);
  return st;
}

std::string Trainer::layer_tiles() const {
  const Impl& m = *impl_;
  if (m.fp8()) return "fp8: fwd=" + m.fp8_kernel + " bwd=backward_fp8 (sm90a)";
  if (!m.fused()) return "cublasLt";
  const BackwardTiles& b = m.step_backward;
  std::string s = "fwd=" + tile_name(m.step_forward);
  if (b.recompute.block_m != 0) s += " recompute=" + tile_name(b.recompute);
  if (m.c.grads.dx) {
    s += " dx=" + tile_name(b.dx);
    if (b.dx_splits > 1) s += fmt::format("/split{}", b.dx_splits);
  }
  if (m.c.grads.dw) s += " dw=" + tile_name(b.dw);
  return s;
}

InitialParams Trainer::parameters() const {
  const Impl& m = *impl_;
  check(cudaStreamSynchronize(m.stream), "parameters");
  InitialParams p;
  p.w12 = download_f32(m.w12, m.w12.bytes() / 4);
  p.b12 = download_f32(m.b12, m.b12.bytes() / 4);
  p.w2 = download_f32(m.w2, m.w2.bytes() / 4);
  p.b2 = download_f32(m.b2, m.b2.bytes() / 4);
  return p;
}

}  // namespace swiglu::train
