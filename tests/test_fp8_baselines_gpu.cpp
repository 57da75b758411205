// The FP8 baselines (baselines::Fp8Plan: cuBLASLt FP8 GEMMs, the gate, quantize_e4m3) on a compute
// capability 9.0 device: seeded bf16 X and W quantised to e4m3 (1×128 X and 128×128 W blocks by the
// library's quantize_e4m3; per-tensor and per-channel scales, which it has no kernel for, by the
// host's), each variant × scale pair × Z dtype (bf16, fp16, e4m3) against the fp64 reference on the
// dequantised inputs (fp8_case.hpp's bounds plus the rounding of G, U and Z the unfused pipeline
// adds), H through the saved output, and forward_fp8 on the same inputs agreeing with the baseline
// within both bounds. What a plan turns down must be StatusCode::unsupported with a reason; the
// refusals are listed, and those the plan makes itself are checked. Skipped on other GPUs. The backward
// baselines (baselines::Fp8BackwardPlan) below, the same way.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "baselines/fp8_baselines.hpp"
#include "common/device.hpp"
#include "common/host_data.hpp"
#include "fp8_case.hpp"
#include "swiglu/elementwise.hpp"

namespace swiglu::test {
namespace {

using baselines::Variant;

struct Shape {
  int64_t b, i, d;
};

// One shape and scale pair's e4m3 operands in forward_fp8's layouts, and their dequantised values.
struct Operands {
  DeviceBuffer x, x_scale, w, w_scale;
  std::vector<double> x_deq, w_deq;
};

// X (B×I) and W12 (2D×I), seeded bf16 values, quantised per xs and ws into *o.
void quantise_operands(const Shape& s, Fp8Scaling xs, Fp8Scaling ws, uint64_t seed, Operands* o) {
  const int64_t B = s.b, I = s.i, D = s.d, k_blocks = (I + 127) / 128, d_blocks = (D + 127) / 128;
  const auto x = common::uniform_values(static_cast<size_t>(B * I), -1, 1, seed, DType::bf16);
  const float k = 1.0f / std::sqrt(static_cast<float>(I));
  const auto w = common::uniform_values(static_cast<size_t>(2 * D * I), -k, k, seed + 1, DType::bf16);
  if (xs == Fp8Scaling::blocks) {
    const DeviceBuffer xb = upload(common::to_dtype_bytes(x, DType::bf16));
    o->x = DeviceBuffer(static_cast<size_t>(B * I));
    o->x_scale = DeviceBuffer(static_cast<size_t>(B * k_blocks) * sizeof(float));
    const Status st = quantize_e4m3(DType::bf16, xb.get(), I, B, I, Fp8Blocks::row_1x128, o->x.get(), I,
                                    o->x_scale.as<float>(), nullptr);
    ASSERT_TRUE(st.ok()) << st.message;
    const auto q = download_raw<uint8_t>(o->x, static_cast<size_t>(B * I));
    const auto sc = download_raw<float>(o->x_scale, static_cast<size_t>(B * k_blocks));
    o->x_deq.resize(q.size());
    for (int64_t r = 0; r < B; ++r)
      for (int64_t c = 0; c < I; ++c) o->x_deq[r * I + c] = e4m3_value(q[r * I + c]) * sc[r * k_blocks + c / 128];
  } else {
    const Quantised q = quantise(x, B, I, B, I);
    o->x = upload(q.q);
    o->x_scale = upload(q.scale);
    o->x_deq = q.deq;
  }
  if (ws == Fp8Scaling::blocks) {
    // Wa and Wb one at a time (swiglu.hpp's quantize_e4m3): no block straddles them when D % 128 != 0.
    const DeviceBuffer wb = upload(common::to_dtype_bytes(w, DType::bf16));
    o->w = DeviceBuffer(static_cast<size_t>(2 * D * I));
    o->w_scale = DeviceBuffer(static_cast<size_t>(2 * d_blocks * k_blocks) * sizeof(float));
    for (int64_t h = 0; h < 2; ++h) {
      const Status st = quantize_e4m3(DType::bf16, wb.as<char>() + h * D * I * 2, I, D, I, Fp8Blocks::tile_128x128,
                                      o->w.as<char>() + h * D * I, I, o->w_scale.as<float>() + h * d_blocks * k_blocks,
                                      nullptr);
      ASSERT_TRUE(st.ok()) << st.message;
    }
    const auto q = download_raw<uint8_t>(o->w, static_cast<size_t>(2 * D * I));
    const auto sc = download_raw<float>(o->w_scale, static_cast<size_t>(2 * d_blocks * k_blocks));
    o->w_deq.resize(q.size());
    for (int64_t n = 0; n < 2 * D; ++n) {
      const int64_t row_block = (n / D) * d_blocks + (n % D) / 128;
      for (int64_t c = 0; c < I; ++c)
        o->w_deq[n * I + c] = e4m3_value(q[n * I + c]) * sc[row_block * k_blocks + c / 128];
    }
  } else {
    const Quantised q = ws == Fp8Scaling::tensor ? quantise(w, 2 * D, I, 2 * D, I) : quantise(w, 2 * D, I, 1, I);
    o->w = upload(q.q);
    o->w_scale = upload(q.scale);
    o->w_deq = q.deq;
  }
}

// One run's outputs: Z (in `out`, as floats, or e4m3 bytes with their scales) and H when saved.
struct Outputs {
  DeviceBuffer z, z_scale, h;
  bool bias = false, z_e4m3 = false;

  explicit Outputs(const Fp8Problem& p) : bias(p.bias), z_e4m3(p.z_e4m3) {
    const size_t bd = static_cast<size_t>(p.batch * p.hidden), es = dtype_size(p.out);
    z = DeviceBuffer(std::max<size_t>(bd * (p.z_e4m3 ? 1 : es), 16));
    z_scale = DeviceBuffer(std::max<size_t>(static_cast<size_t>(p.batch * ((p.hidden + 127) / 128)) * 4, 16));
    h = DeviceBuffer(std::max<size_t>(2 * bd * es, 16));
    for (const DeviceBuffer* d : {&z, &z_scale, &h}) CUDA_CHECK(cudaMemset(d->get(), common::kPoisonByte, d->bytes()));
  }
  Fp8Tensors tensors(const Operands& o, const DeviceBuffer& bias, bool saved) const {
    Fp8Tensors t;
    t.x = o.x.get();
    t.x_scale = o.x_scale.as<float>();
    t.w = o.w.get();
    t.w_scale = o.w_scale.as<float>();
    t.bias = this->bias ? bias.get() : nullptr;
    t.z = z.get();
    t.z_scale = z_e4m3 ? z_scale.as<float>() : nullptr;
    t.saved = saved ? h.get() : nullptr;
    return t;
  }
};

// Z's values, dequantised when in e4m3.
std::vector<double> z_values(const Fp8Problem& p, const Outputs& out, std::vector<float>* scales) {
  const size_t n = static_cast<size_t>(p.batch * p.hidden);
  std::vector<double> v(n);
  if (!p.z_e4m3) {
    const auto z = download(out.z, n, p.out);
    std::copy(z.begin(), z.end(), v.begin());
    return v;
  }
  const int64_t z_blocks = (p.hidden + 127) / 128;
  const auto q = download_raw<uint8_t>(out.z, n);
  *scales = download_raw<float>(out.z_scale, static_cast<size_t>(p.batch * z_blocks));
  for (int64_t r = 0; r < p.batch; ++r)
    for (int64_t c = 0; c < p.hidden; ++c)
      v[r * p.hidden + c] = e4m3_value(q[r * p.hidden + c]) * (*scales)[r * z_blocks + c / 128];
  return v;
}

// Z's bound against the reference: bf16/fp16 Z as test_fp8_gpu's, e4m3 as expect_e4m3_z's;
// z_rounding as there (2·u_out for the unfused pipeline's quantiser, which reads Z in `out`).
double z_bound(const Fp8Problem& p, const Fp8Reference& ref, const std::vector<float>& scales, size_t e,
               double z_rounding) {
  if (!p.z_e4m3) return 2 * ref.u_out * std::fabs(ref.z[e]) + ref.z_acc[e];
  const double scale = scales[(e / p.hidden) * ((p.hidden + 127) / 128) + (e % p.hidden) / 128];
  return std::fabs(ref.z[e]) * (0.0625 + z_rounding * 1.0625) + scale / 1024.0 + ref.z_acc[e];
}

const char* name(Fp8Scaling s) { return s == Fp8Scaling::tensor ? "tensor" : s == Fp8Scaling::blocks ? "blocks" : "channel"; }

TEST(Fp8Baselines, MatchTheFp64ReferenceAndTheFusedForward) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 baselines' block scales (and the fused forward) need compute capability 9.0";
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  // B = 1; odd B; I and D not multiples of 128 (I a multiple of 16, partial K and D blocks); an
  // aligned shape (cublas1 with W blocks); a LLaMA-like one.
  const Shape shapes[] = {{1, 272, 192}, {77, 400, 200}, {256, 1024, 384}, {512, 4096, 1408}};
  const std::pair<Fp8Scaling, Fp8Scaling> all_pairs[] = {
      {Fp8Scaling::tensor, Fp8Scaling::tensor}, {Fp8Scaling::blocks, Fp8Scaling::blocks},
      {Fp8Scaling::tensor, Fp8Scaling::blocks}, {Fp8Scaling::blocks, Fp8Scaling::tensor},
      {Fp8Scaling::tensor, Fp8Scaling::channel}, {Fp8Scaling::blocks, Fp8Scaling::channel}};
  std::vector<std::string> refused;
  uint64_t seed = 2100;
  for (size_t si = 0; si < std::size(shapes); ++si) {
    const Shape& s = shapes[si];
    const bool llama = si == 3, aligned = si == 2, bias = si != 2;
    for (const auto& [xs, ws] : all_pairs) {
      if (llama && xs != ws) continue;  // the LLaMA shape: tensor × tensor and blocks × blocks
      Operands o;
      ASSERT_NO_FATAL_FAILURE(quantise_operands(s, xs, ws, seed += 3, &o));
      const float k = 1.0f / std::sqrt(static_cast<float>(s.i));
      for (const DType out : {DType::bf16, DType::f16}) {
        const auto b = common::uniform_values(static_cast<size_t>(2 * s.d), -k, k, seed + 2, out);
        const DeviceBuffer dbias = upload(common::to_dtype_bytes(b, out));
        // cuBLASLt's sums held to the wgmma kernels' model (fp8_case.hpp): its instruction order and
        // promotion interval are not documented, and these bounds are what it is measured against.
        const Fp8Reference ref = fp8_reference(o.x_deq, o.w_deq, bias ? b.data() : nullptr, s.b, s.i, s.d, out,
                                               TensorCoreOrder::contiguous);
        for (const bool z_e4m3 : {false, true}) {
          if (z_e4m3 && out != DType::bf16) continue;
          Fp8Problem p;
          p.batch = s.b;
          p.in_features = s.i;
          p.hidden = s.d;
          p.x_scaling = xs;
          p.w_scaling = ws;
          p.out = out;
          p.bias = bias;
          p.z_e4m3 = z_e4m3;
          const std::string shape = "B=" + std::to_string(s.b) + " I=" + std::to_string(s.i) +
                                    " D=" + std::to_string(s.d) + (bias ? " bias" : "") + " x " + name(xs) + " w " +
                                    name(ws) + " z " + (z_e4m3 ? "e4m3" : std::string(to_string(out)));

          // The fused forward on the same inputs, for the agreement below, with its own bounds where
          // its decode kernel ran (another instruction order).
          const bool decode = forward_fp8_kernel(p) == "sm90a-fp8-decode";
          const Fp8Reference dref = decode ? fp8_reference(o.x_deq, o.w_deq, bias ? b.data() : nullptr, s.b, s.i, s.d,
                                                           out, TensorCoreOrder::decode)
                                           : Fp8Reference{};
          const Fp8Reference& fref = decode ? dref : ref;
          const Outputs fused(p);
          ASSERT_TRUE(forward_fp8(p, fused.tensors(o, dbias, false), nullptr).ok()) << shape;
          CUDA_CHECK(cudaDeviceSynchronize());
          std::vector<float> fused_scales;
          const std::vector<double> zf = z_values(p, fused, &fused_scales);

          for (const Variant v : {Variant::cublas2, Variant::cublas1}) {
            const std::string what = std::string(to_string(v)) + " " + shape;
            const bool saved = !z_e4m3;  // H through saved; with an e4m3 Z, G and U in scratch
            const Outputs got(p);
            DeviceBuffer scratch(std::max<size_t>(baselines::fp8_scratch_bytes(v, p), 16));
            baselines::Fp8Plan plan;
            const Status st = baselines::Fp8Plan::create(cublas, v, p, got.tensors(o, dbias, saved), scratch.get(), &plan);
            const bool plan_refuses = (xs == Fp8Scaling::blocks && ws == Fp8Scaling::channel) ||
                                      (v == Variant::cublas1 && ws == Fp8Scaling::blocks && s.d % 128 != 0);
            if (plan_refuses || !st.ok()) {
              EXPECT_EQ(st.code, StatusCode::unsupported) << what << ": " << st.message;
              EXPECT_FALSE(st.message.empty()) << what;
              // The aligned and LLaMA shapes run wherever the plan itself does not refuse.
              EXPECT_TRUE(plan_refuses || !(aligned || llama)) << what << ": " << st.message;
              refused.push_back(what + ": " + st.message);
              continue;
            }
            ASSERT_TRUE(plan.run(nullptr).ok()) << what;
            CUDA_CHECK(cudaDeviceSynchronize());
            std::printf("%s: %s\n", what.c_str(), plan.algorithms().c_str());
            const Fp8Reference uref = unfused_bounds(ref, plan.output_type_slices());
            const double z_rounding = 2 * ref.u_out;
            std::vector<float> scales;
            const std::vector<double> zb = z_values(p, got, &scales);
            if (z_e4m3) {
              expect_e4m3_z(what, download_raw<uint8_t>(got.z, zb.size()), scales, uref, s.b, s.d, z_rounding);
            } else {
              const std::vector<float> z(zb.begin(), zb.end());
              expect_within(what, "Z", z, uref.z, [&](size_t e) { return z_bound(p, uref, scales, e, 0.0); });
              const auto h = download(got.h, static_cast<size_t>(2 * s.b * s.d), out);
              expect_within(what, "H", h, uref.h, [&](size_t e) { return uref.h_bound[e]; });
            }
            // Fused and baseline within the sum of their bounds, element by element.
            int bad = 0;
            for (size_t e = 0; e < zb.size(); ++e) {
              const double bound = z_bound(p, fref, fused_scales, e, 0.0) + z_bound(p, uref, scales, e, z_rounding);
              if (!(std::fabs(zf[e] - zb[e]) <= bound) && bad++ < 5)
                ADD_FAILURE() << what << ": fused Z[" << e << "] = " << zf[e] << ", baseline " << zb[e] << " (± " << bound
                              << ")";
            }
          }
        }
      }
    }
  }
  std::printf("%zu cases turned down:\n", refused.size());
  for (const std::string& r : refused) std::printf("  %s\n", r.c_str());
}

// Distinct fake device addresses, 1 GiB apart, for the refusal tests: never dereferenced.
void* at(int slot) { return reinterpret_cast<void*>((uintptr_t{1} << 40) + (static_cast<uintptr_t>(slot) << 30)); }

// What the plan refuses before any device work, and the no-op of B = 0 (the pointers: at()).
TEST(Fp8Baselines, RefusalsSayWhyAndAnEmptyBatchIsANoOp) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Fp8Tensors t;
  t.x = at(0);
  t.x_scale = static_cast<const float*>(at(1));
  t.w = at(2);
  t.w_scale = static_cast<const float*>(at(3));
  t.z = at(4);
  Fp8Problem p;
  p.batch = 64;
  p.in_features = 256;
  p.hidden = 200;
  baselines::Fp8Plan plan;
  const auto refusal = [&](Variant v, const Fp8Problem& q, const Fp8Tensors& u) {
    return baselines::Fp8Plan::create(cublas, v, q, u, at(5), &plan);
  };
  // 1×128 X with per-channel W: no such cuBLASLt pair.
  Fp8Problem q = p;
  q.w_scaling = Fp8Scaling::channel;
  Status st = refusal(Variant::cublas2, q, t);
  EXPECT_EQ(st.code, StatusCode::unsupported) << st.message;
  EXPECT_NE(st.message.find("per-channel"), std::string::npos) << st.message;
  // cublas1 with 128×128 W blocks and D % 128 != 0: a block would straddle Wa and Wb.
  st = refusal(Variant::cublas1, p, t);
  EXPECT_EQ(st.code, StatusCode::unsupported) << st.message;
  EXPECT_NE(st.message.find("D % 128"), std::string::npos) << st.message;
  // No amax of Z.
  q = p;
  q.z_e4m3 = true;
  Fp8Tensors u = t;
  u.z_scale = static_cast<float*>(at(6));
  u.z_amax = static_cast<float*>(at(7));
  st = refusal(Variant::cublas2, q, u);
  EXPECT_EQ(st.code, StatusCode::unsupported) << st.message;
  EXPECT_NE(st.message.find("amax"), std::string::npos) << st.message;
  // validate_forward_fp8's rules hold: a null w is invalid.
  u = t;
  u.w = nullptr;
  EXPECT_EQ(refusal(Variant::cublas2, p, u).code, StatusCode::invalid_argument);
  // B == 0: nothing planned, nothing run.
  q = p;
  q.batch = 0;
  EXPECT_EQ(baselines::fp8_scratch_bytes(Variant::cublas2, q), 0u);
  ASSERT_TRUE(baselines::Fp8Plan::create(cublas, Variant::cublas2, q, Fp8Tensors{}, nullptr, &plan).ok());
  EXPECT_TRUE(plan.run(nullptr).ok());
  EXPECT_EQ(plan.algorithms(), "");
}

// ---- the backward (baselines::Fp8BackwardPlan) ---------------------------------------------------

// The forward's operands for the backward, made as the header says: X (B×I) and W12 (2D×I), seeded
// bf16 values, through quantize_e4m3_transposed (Xᵀ in 1×128 blocks along B, its padding columns
// zero; W12ᵀ from Wa's and Wb's 128×128 blocks), and their dequantised values.
struct BackwardOperands {
  DeviceBuffer xt, xt_scale, wt, wt_scale;
  int64_t ldxt = 0;
  std::vector<double> xt_deq, wt_deq;  // Xᵀ (I×B) and W12ᵀ (I×2D), dense
};

void quantise_backward_operands(const Shape& s, uint64_t seed, BackwardOperands* o) {
  const int64_t B = s.b, I = s.i, D = s.d, kb = (I + 127) / 128, db = (D + 127) / 128, rb = (B + 127) / 128;
  const auto x = common::uniform_values(static_cast<size_t>(B * I), -1, 1, seed, DType::bf16);
  const float k = 1.0f / std::sqrt(static_cast<float>(I));
  const auto w = common::uniform_values(static_cast<size_t>(2 * D * I), -k, k, seed + 1, DType::bf16);
  const DeviceBuffer xb = upload(common::to_dtype_bytes(x, DType::bf16));
  const DeviceBuffer wb = upload(common::to_dtype_bytes(w, DType::bf16));
  o->ldxt = (B + 15) / 16 * 16;
  o->xt = DeviceBuffer(static_cast<size_t>(I * o->ldxt));
  o->xt_scale = DeviceBuffer(static_cast<size_t>(I * rb) * 4);
  o->wt = DeviceBuffer(static_cast<size_t>(I * 2 * D));
  o->wt_scale = DeviceBuffer(static_cast<size_t>(2 * kb * db) * 4);
  DeviceBuffer xq(static_cast<size_t>(B * I)), xs(static_cast<size_t>(B * kb) * 4), wq(static_cast<size_t>(2 * D * I)),
      ws(static_cast<size_t>(2 * db * kb) * 4);
  CUDA_CHECK(cudaMemset(o->xt.get(), 0, o->xt.bytes()));
  Status st = quantize_e4m3_transposed(DType::bf16, xb.get(), I, B, I, Fp8Blocks::row_1x128, xq.get(), I, xs.as<float>(),
                                       o->xt.get(), o->ldxt, o->xt_scale.as<float>(), nullptr);
  ASSERT_TRUE(st.ok()) << st.message;
  for (int64_t h = 0; h < 2; ++h) {
    st = quantize_e4m3_transposed(DType::bf16, wb.as<char>() + h * D * I * 2, I, D, I, Fp8Blocks::tile_128x128,
                                  wq.as<char>() + h * D * I, I, ws.as<float>() + h * db * kb,
                                  o->wt.as<char>() + h * D, 2 * D, o->wt_scale.as<float>() + h * kb * db, nullptr);
    ASSERT_TRUE(st.ok()) << st.message;
  }
  const auto xtq = download_raw<uint8_t>(o->xt, o->xt.bytes());
  const auto xts = download_raw<float>(o->xt_scale, static_cast<size_t>(I * rb));
  o->xt_deq.resize(static_cast<size_t>(I * B));
  for (int64_t i = 0; i < I; ++i)
    for (int64_t b = 0; b < B; ++b) o->xt_deq[i * B + b] = e4m3_value(xtq[i * o->ldxt + b]) * xts[i * rb + b / 128];
  const auto wtq = download_raw<uint8_t>(o->wt, o->wt.bytes());
  const auto wts = download_raw<float>(o->wt_scale, static_cast<size_t>(2 * kb * db));
  o->wt_deq.resize(static_cast<size_t>(I * 2 * D));
  for (int64_t i = 0; i < I; ++i)
    for (int64_t c = 0; c < 2 * D; ++c) {
      const int64_t h = c / D, d = c % D;
      o->wt_deq[i * 2 * D + c] = e4m3_value(wtq[i * 2 * D + c]) * wts[h * kb * db + (i / 128) * db + d / 128];
    }
}

// The FP8 backward baselines on a compute capability 9.0 device against fp64 on the very operands
// their GEMMs read. dH is the gate backward kernel's (run here too: the same kernel on the same
// bf16 dZ and H gives the same bf16 dH), quantised on the host as the library's quantiser does bit
// for bit (test_fp8_gpu): along each half (cublas2) or along 2D (cublas1), and dHᵀ along B. Each
// element of dX and dW12 within the tensor cores' accumulation bound (fp8_case.hpp, in wgmma order,
// K blocks starting afresh at each GEMM) plus the output's rounding, cublas2's first dX GEMM's
// rounded output included; dW12 also accumulated onto a seeded one; dbias the fp64 column sum of
// the bf16 dH. So a scale read in the wrong layout, row, block or half shows (the operands'
// magnitudes differ by row and block). Odd shapes (B not a multiple of 16: K padded over Xᵀ's zero
// columns; D off the 128 blocks: cublas1 refuses its dX) and the aligned ones, which must run.
TEST(Fp8Baselines, BackwardMatchesTheFp64ReferenceOnItsOperands) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 backward baselines' block scales need compute capability 9.0";
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  const Shape shapes[] = {{128, 256, 256}, {256, 1024, 384}, {200, 272, 208}, {24, 144, 16}, {1, 144, 16}};
  std::vector<std::string> refused;
  uint64_t seed = 7100;
  for (size_t si = 0; si < std::size(shapes); ++si) {
    const Shape& s = shapes[si];
    const bool aligned = si < 2;
    const int64_t B = s.b, I = s.i, D = s.d;
    BackwardOperands o;
    ASSERT_NO_FATAL_FAILURE(quantise_backward_operands(s, seed += 5, &o));
    // dZ and H as a forward would leave them (bf16); dH from the gate backward kernel.
    const auto dz = common::uniform_values(static_cast<size_t>(B * D), -1, 1, seed + 2, DType::bf16);
    const auto h = common::uniform_values(static_cast<size_t>(B * 2 * D), -2, 2, seed + 3, DType::bf16);
    const DeviceBuffer ddz = upload(common::to_dtype_bytes(dz, DType::bf16));
    const DeviceBuffer dh_in = upload(common::to_dtype_bytes(h, DType::bf16));
    DeviceBuffer ddh(static_cast<size_t>(B * 2 * D) * 2);
    ASSERT_EQ(detail::launch_gate_backward(DType::bf16, DType::bf16, dh_in.get(), 2 * D, dh_in.as<char>() + D * 2, 2 * D,
                                           ddz.get(), D, ddh.get(), 2 * D, ddh.as<char>() + D * 2, 2 * D, B, D, nullptr),
              cudaSuccess);
    const std::vector<float> dh = download(ddh, static_cast<size_t>(B * 2 * D), DType::bf16);
    for (const Variant v : {Variant::cublas2, Variant::cublas1}) {
      const bool two = v == Variant::cublas2;
      const int64_t hc = two ? D : 2 * D;
      // What the plan's GEMMs read: dH (B×2D) and dHᵀ (2D×B) quantised per half, dequantised.
      std::vector<double> dhq(static_cast<size_t>(B * 2 * D)), dhtq(static_cast<size_t>(2 * D * B));
      for (int64_t j = 0; j < (two ? 2 : 1); ++j) {
        std::vector<float> half(static_cast<size_t>(B * hc));
        for (int64_t b = 0; b < B; ++b)
          for (int64_t c = 0; c < hc; ++c) half[b * hc + c] = dh[b * 2 * D + j * D + c];
        const Quantised q = quantise(half, B, hc, 1), qt = quantise(transpose(half, B, hc), hc, B, 1);
        for (int64_t b = 0; b < B; ++b)
          for (int64_t c = 0; c < hc; ++c) dhq[b * 2 * D + j * D + c] = q.deq[b * hc + c];
        std::copy(qt.deq.begin(), qt.deq.end(), dhtq.begin() + j * D * B);
      }
      // The references: each element's value, its accumulation bound plus the rounding of every
      // GEMM's output (cublas2's first dX GEMM writes a bf16 partial sum), and Σ|terms|, which
      // bounds a split-K slice reduced in the output type.
      struct Ref {
        std::vector<double> want, bound, abs;
      };
      Ref rx, rw;
      for (Ref* r : {&rx, &rw}) {
        const size_t n = static_cast<size_t>(r == &rx ? B * I : 2 * D * I);
        r->want.assign(n, 0.0);
        r->bound.assign(n, 0.0);
        r->abs.assign(n, 0.0);
      }
      const auto dot = [](const double* a, const double* b, int64_t k, Ref* r, size_t e, double u_out) {
        const TensorCoreDot d = tensor_core_dot(a, 1, b, 1, k, TensorCoreOrder::contiguous);
        r->want[e] += d.sum;
        r->bound[e] += d.bound + 2 * u_out * std::fabs(r->want[e]);
        for (int64_t l = 0; l < k; ++l) r->abs[e] += std::fabs(a[l] * b[l]);
      };
      for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < I; ++i)
          for (int64_t k0 = 0; k0 < 2 * D; k0 += hc)  // K = 2D in segments of hc
            dot(dhq.data() + b * 2 * D + k0, o.wt_deq.data() + i * 2 * D + k0, hc, &rx, static_cast<size_t>(b * I + i),
                0x1p-8);
      for (int64_t r = 0; r < 2 * D; ++r)  // K = B (the padding adds zeros); the output's rounding apart
        for (int64_t i = 0; i < I; ++i)
          dot(dhtq.data() + r * B, o.xt_deq.data() + i * B, B, &rw, static_cast<size_t>(r * I + i), 0);

      for (const bool bias : {false, true}) {
        for (const bool master : {false, true}) {  // bf16 gradients, or fp32 dW accumulated and dbias
          const std::string what = std::string(to_string(v)) + " B=" + std::to_string(B) + " I=" + std::to_string(I) +
                                   " D=" + std::to_string(D) + (bias ? " bias" : "") + (master ? " fp32 dW+=" : "");
          Fp8Problem p;
          p.batch = B;
          p.in_features = I;
          p.hidden = D;
          p.bias = bias;
          const DType dw_dtype = master ? DType::f32 : DType::bf16;
          DeviceBuffer dx(static_cast<size_t>(B * I) * 2), dw(static_cast<size_t>(2 * D * I) * dtype_size(dw_dtype)),
              db(static_cast<size_t>(2 * D) * 4);
          for (const DeviceBuffer* d : {&dx, &dw, &db}) CUDA_CHECK(cudaMemset(d->get(), common::kPoisonByte, d->bytes()));
          const auto dw0 = common::uniform_values(static_cast<size_t>(2 * D * I), -1, 1, seed + 4, DType::f32);
          Fp8BackwardTensors t;
          t.dz = ddz.get();
          t.saved = dh_in.get();
          t.wt = o.wt.get();
          t.wt_scale = o.wt_scale.as<float>();
          t.xt = o.xt.get();
          t.ldxt = o.ldxt;
          t.xt_scale = o.xt_scale.as<float>();
          t.dx = dx.get();
          t.dx_dtype = DType::bf16;
          t.dw = dw.get();
          t.dw_dtype = dw_dtype;
          t.accumulate_dw = master;
          t.dbias = bias ? db.get() : nullptr;
          t.dbias_dtype = master ? DType::f32 : DType::bf16;
          const Grads all;
          DeviceBuffer scratch(baselines::fp8_backward_scratch_bytes(v, p, all));
          CUDA_CHECK(cudaMemset(scratch.get(), common::kPoisonByte, scratch.bytes()));
          baselines::Fp8BackwardPlan plan;
          const Status st = baselines::Fp8BackwardPlan::create(cublas, v, p, t, scratch.get(), &plan);
          const bool plan_refuses = !two && D % 128 != 0;
          if (plan_refuses || !st.ok()) {
            EXPECT_EQ(st.code, StatusCode::unsupported) << what << ": " << st.message;
            EXPECT_FALSE(st.message.empty()) << what;
            EXPECT_TRUE(plan_refuses || !aligned) << what << ": " << st.message;
            if (plan_refuses) {
              EXPECT_NE(st.message.find("D % 128"), std::string::npos) << st.message;
            }
            refused.push_back(what + ": " + st.message);
            continue;
          }
          // Twice: a run reads nothing a previous one left (dW accumulates, so onto dw0 afresh).
          for (int rep = 0; rep < 2; ++rep) {
            if (master) CUDA_CHECK(cudaMemcpy(dw.get(), dw0.data(), dw.bytes(), cudaMemcpyHostToDevice));
            ASSERT_TRUE(plan.run(nullptr).ok()) << what;
          }
          CUDA_CHECK(cudaDeviceSynchronize());
          std::printf("%s: %s\n", what.c_str(), plan.algorithms().c_str());

          // dX in bf16, with any output-type split-K slices beyond the GEMMs' own outputs.
          const auto got_dx = download(dx, static_cast<size_t>(B * I), DType::bf16);
          const int dx_extra = plan.dx_slices() - (two ? 2 : 1);
          int bad = 0;
          for (size_t e = 0; e < rx.want.size(); ++e) {
            const double bound = rx.bound[e] + dx_extra * 0x1p-8 * rx.abs[e];
            if (!(std::fabs(got_dx[e] - rx.want[e]) <= bound) && bad++ < 5)
              ADD_FAILURE() << what << ": dX[" << e / I << "][" << e % I << "] = " << got_dx[e] << ", want "
                            << rx.want[e] << " ± " << bound;
          }
          EXPECT_EQ(bad, 0) << what << " dX";
          // dW12, onto dw0 when accumulated.
          const auto got_dw = download(dw, static_cast<size_t>(2 * D * I), dw_dtype);
          const double u_dw = master ? 0x1p-24 : 0x1p-8;
          const int dw_extra = plan.dw_slices() - 1;
          bad = 0;
          for (size_t e = 0; e < rw.want.size(); ++e) {
            const double c0 = master ? dw0[e] : 0.0, want = rw.want[e] + c0;
            const double bound = rw.bound[e] + 2 * u_dw * std::fabs(want) + 0x1p-24 * std::fabs(want) +
                                 dw_extra * u_dw * (rw.abs[e] + std::fabs(c0));
            if (!(std::fabs(got_dw[e] - want) <= bound) && bad++ < 5)
              ADD_FAILURE() << what << ": dW[" << e / I << "][" << e % I << "] = " << got_dw[e] << ", want " << want
                            << " ± " << bound;
          }
          EXPECT_EQ(bad, 0) << what << " dW";
          if (bias) {
            const auto got_db = download(db, static_cast<size_t>(2 * D), t.dbias_dtype);
            bad = 0;
            for (int64_t c = 0; c < 2 * D; ++c) {
              double want = 0, mag = 0;
              for (int64_t b = 0; b < B; ++b) {
                want += dh[b * 2 * D + c];
                mag += std::fabs(dh[b * 2 * D + c]);
              }
              const double bound = 130 * 0x1p-24 * mag + (master ? 0x1p-24 : 0x1p-8) * std::fabs(want);
              if (!(std::fabs(got_db[c] - want) <= bound) && bad++ < 5)
                ADD_FAILURE() << what << ": dbias[" << c << "] = " << got_db[c] << ", want " << want;
            }
            EXPECT_EQ(bad, 0) << what << " dbias";
          }
        }
      }
    }
  }
  std::printf("%zu cases turned down:\n", refused.size());
  for (const std::string& r : refused) std::printf("  %s\n", r.c_str());
}

// What the backward plan refuses before any device work, and the no-op of B = 0 (the pointers: at()).
TEST(Fp8Baselines, BackwardRefusalsSayWhyAndAnEmptyBatchIsANoOp) {
  baselines::Cublas cublas;
  ASSERT_TRUE(cublas.init().ok());
  Fp8BackwardTensors t;
  t.dz = at(0);
  t.saved = at(1);
  t.wt = at(2);
  t.wt_scale = static_cast<const float*>(at(3));
  t.xt = at(4);
  t.ldxt = 64;
  t.xt_scale = static_cast<const float*>(at(5));
  t.dx = at(6);
  t.dw = at(7);
  Fp8Problem p;
  p.batch = 64;
  p.in_features = 256;
  p.hidden = 208;
  baselines::Fp8BackwardPlan plan;
  // cublas1's dX over K = 2D with D % 128 != 0: W12ᵀ's and dH's blocks would straddle the halves.
  Status st = baselines::Fp8BackwardPlan::create(cublas, Variant::cublas1, p, t, at(8), &plan);
  EXPECT_EQ(st.code, StatusCode::unsupported) << st.message;
  EXPECT_NE(st.message.find("D % 128"), std::string::npos) << st.message;
  // dbias in another 16-bit dtype than dH's: no column sum writes it.
  Fp8Problem q = p;
  q.bias = true;
  Fp8BackwardTensors u = t;
  u.dbias = at(9);
  u.dbias_dtype = DType::f16;
  st = baselines::Fp8BackwardPlan::create(cublas, Variant::cublas2, q, u, at(8), &plan);
  EXPECT_EQ(st.code, StatusCode::unsupported) << st.message;
  EXPECT_NE(st.message.find("dbias"), std::string::npos) << st.message;
  // validate_backward_fp8's rules hold: a null dz, or D not a multiple of 16, is invalid.
  u = t;
  u.dz = nullptr;
  EXPECT_EQ(baselines::Fp8BackwardPlan::create(cublas, Variant::cublas2, p, u, at(8), &plan).code,
            StatusCode::invalid_argument);
  q = p;
  q.hidden = 200;
  EXPECT_EQ(baselines::Fp8BackwardPlan::create(cublas, Variant::cublas2, q, t, at(8), &plan).code,
            StatusCode::invalid_argument);
  // The scratch covers the fused backward's workspace (create() checks with validate_backward_fp8).
  const Grads all;
  for (const Variant v : {Variant::cublas2, Variant::cublas1})
    EXPECT_GE(baselines::fp8_backward_scratch_bytes(v, p, all), backward_fp8_workspace_bytes(p));
  // B == 0: nothing planned, nothing run.
  q = p;
  q.batch = 0;
  EXPECT_EQ(baselines::fp8_backward_scratch_bytes(Variant::cublas2, q, all), 0u);
  ASSERT_TRUE(baselines::Fp8BackwardPlan::create(cublas, Variant::cublas2, q, t, nullptr, &plan).ok());
  EXPECT_TRUE(plan.run(nullptr).ok());
  EXPECT_EQ(plan.algorithms(), "");
}

}  // namespace
}  // namespace swiglu::test
