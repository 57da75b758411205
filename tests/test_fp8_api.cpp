// The public FP8 forward's and backward's argument checks (validate_forward_fp8, forward_fp8,
// validate_backward_fp8, backward_fp8, quantize_e4m3) on
// the host, and check_fp8_scales' reading of scale values: every enum, size, pointer, alignment and overlap rule is an invalid_argument naming
// what is wrong, checked before any device is touched. The pointers are addresses that are never
// dereferenced.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "swiglu/fp8.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu {
namespace {

// Disjoint fake device addresses, 1 GiB apart.
void* at(int slot, int64_t offset = 0) {
  return reinterpret_cast<void*>((uintptr_t{1} << 40) + (static_cast<uintptr_t>(slot) << 30) + static_cast<uintptr_t>(offset));
}
float* fat(int slot, int64_t offset = 0) { return static_cast<float*>(at(slot, offset)); }

Fp8Problem problem() {
  Fp8Problem p;
  p.batch = 200;
  p.in_features = 272;
  p.hidden = 100;
  return p;
}

Fp8Tensors tensors() {
  Fp8Tensors t;
  t.x = at(0);
  t.x_scale = fat(1);
  t.w = at(2);
  t.w_scale = fat(3);
  t.bias = at(4);
  t.z = at(5);
  t.saved = at(6);
  return t;
}

// The message of a refused call, "" when it was accepted.
std::string refusal(const Fp8Problem& p, const Fp8Tensors& t) {
  const Status s = validate_forward_fp8(p, t);
  if (s.ok()) return "";
  EXPECT_EQ(s.code, StatusCode::invalid_argument) << s.message;
  return s.message;
}

bool says(const std::string& message, const std::string& part) {
  return message.find(part) != std::string::npos;
}

TEST(Fp8Validate, AcceptsEveryScalingAndOutput) {
  for (const Fp8Scaling xs : {Fp8Scaling::tensor, Fp8Scaling::blocks})
    for (const Fp8Scaling ws : {Fp8Scaling::tensor, Fp8Scaling::blocks, Fp8Scaling::channel})
      for (const DType out : {DType::bf16, DType::f16})
        for (const bool z_e4m3 : {false, true}) {
          Fp8Problem p = problem();
          p.x_scaling = xs;
          p.w_scaling = ws;
          p.out = out;
          p.bias = true;
          p.z_e4m3 = z_e4m3;
          Fp8Tensors t = tensors();
          if (z_e4m3) {
            t.z_scale = fat(7);
            t.z_amax = fat(8);
          }
          EXPECT_EQ(refusal(p, t), "") << to_string(xs) << " " << to_string(ws) << " " << to_string(out);
        }
  // Z alone, or H alone.
  Fp8Tensors z_only = tensors(), h_only = tensors();
  z_only.saved = nullptr;
  h_only.z = nullptr;
  EXPECT_EQ(refusal(problem(), z_only), "");
  EXPECT_EQ(refusal(problem(), h_only), "");
  // An empty batch needs no pointers.
  Fp8Problem empty = problem();
  empty.batch = 0;
  EXPECT_EQ(refusal(empty, Fp8Tensors{}), "");
}

TEST(Fp8Validate, EnumsOutOfRangeAndChannelScalesOfX) {
  Fp8Problem p = problem();
  p.x_scaling = Fp8Scaling::channel;
  EXPECT_TRUE(says(refusal(p, tensors()), "x_scaling 2 is not tensor or blocks"));
  p = problem();
  p.x_scaling = static_cast<Fp8Scaling>(9);
  EXPECT_TRUE(says(refusal(p, tensors()), "x_scaling 9"));
  p = problem();
  p.w_scaling = static_cast<Fp8Scaling>(-1);
  EXPECT_TRUE(says(refusal(p, tensors()), "w_scaling -1 is not tensor, blocks or channel"));
  p = problem();
  p.out = DType::f32;
  EXPECT_TRUE(says(refusal(p, tensors()), "out must be bf16 or fp16"));
  p.out = static_cast<DType>(7);
  EXPECT_TRUE(says(refusal(p, tensors()), "got 7"));
}

TEST(Fp8Validate, Sizes) {
  const auto with = [](auto change) {
    Fp8Problem p = problem();
    change(p);
    return refusal(p, tensors());
  };
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.batch = -1; }), "batch must be >= 0"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.in_features = 0; }), "in_features must be > 0"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.hidden = -5; }), "hidden must be > 0"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.in_features = 777; }), "multiples of 16"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.ldx = 280; }), "X's row stride (280)"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.ldx = 256; }), "ldx (256) is smaller than in_features (272)"));
  EXPECT_EQ(with([](Fp8Problem& p) { p.ldx = 288; }), "");
  EXPECT_TRUE(says(with([](Fp8Problem& p) { p.hidden = int64_t{1} << 62; }), "problem too large"));
  EXPECT_TRUE(says(with([](Fp8Problem& p) {
                     p.batch = int64_t{1} << 40;
                     p.in_features = int64_t{1} << 20;
                   }),
                   "problem too large"));
}

TEST(Fp8Validate, NullPointers) {
  const auto with = [](auto change, bool bias = false, bool z_e4m3 = false) {
    Fp8Problem p = problem();
    p.bias = bias;
    p.z_e4m3 = z_e4m3;
    Fp8Tensors t = tensors();
    if (z_e4m3) t.z_scale = fat(7);
    change(t);
    return refusal(p, t);
  };
  EXPECT_EQ(with([](Fp8Tensors& t) { t.x = nullptr; }), "x is null");
  EXPECT_EQ(with([](Fp8Tensors& t) { t.w = nullptr; }), "w is null");
  EXPECT_EQ(with([](Fp8Tensors& t) { t.x_scale = nullptr; }), "x_scale is null");
  EXPECT_EQ(with([](Fp8Tensors& t) { t.w_scale = nullptr; }), "w_scale is null");
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.bias = nullptr; }, true), "bias"));
  EXPECT_EQ(with([](Fp8Tensors& t) { t.bias = nullptr; }), "");  // no bias asked for
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z = t.saved = nullptr; }), "nothing to write"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z_scale = nullptr; }, false, true), "z_scale"));
  // Z's scales and amax belong to an e4m3 Z that is written.
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z_scale = fat(7); }), "for z_e4m3 only"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z_amax = fat(8); }), "for z_e4m3 only"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z = nullptr; }, false, true), "z is null"));
}

TEST(Fp8Validate, Alignment) {
  const auto with = [](auto change, bool z_e4m3 = false) {
    Fp8Problem p = problem();
    p.bias = true;
    p.z_e4m3 = z_e4m3;
    Fp8Tensors t = tensors();
    if (z_e4m3) t.z_scale = fat(7);
    change(t);
    return refusal(p, t);
  };
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.x = at(0, 8); }), "16-byte aligned"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.w = at(2, 1); }), "16-byte aligned"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.w_scale = fat(3, 2); }), "4-byte aligned"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.bias = at(4, 1); }), "aligned to their element size (bf16)"));
  EXPECT_TRUE(says(with([](Fp8Tensors& t) { t.z = at(5, 1); }), "aligned to their element size"));
  EXPECT_EQ(with([](Fp8Tensors& t) { t.z = at(5, 1); }, true), "");  // e4m3 bytes
}

TEST(Fp8Validate, OverlapsMeasuredInEachOperandsOwnBytes) {
  Fp8Problem p = problem();  // B = 200, I = 272, D = 100: k_blocks 3, d_blocks 1
  const auto with = [&](auto change) {
    Fp8Tensors t = tensors();
    change(t);
    return refusal(p, t);
  };
  // X holds 199·272 + 272 bytes: Z right after it is fine, one element earlier is not.
  EXPECT_EQ(with([](Fp8Tensors& t) { t.z = at(0, 200 * 272); }), "");
  EXPECT_EQ(with([](Fp8Tensors& t) { t.z = at(0, 200 * 272 - 2); }), "z overlaps x");
  // W's 1×... blocks: 2·1·3 scales (24 bytes); channel: 200 scales (800 bytes).
  EXPECT_EQ(with([](Fp8Tensors& t) { t.saved = at(3, 32); }), "");
  p.w_scaling = Fp8Scaling::channel;
  EXPECT_EQ(with([](Fp8Tensors& t) { t.saved = at(3, 32); }), "saved overlaps w_scale");
  p = problem();
  // H is B·2D bf16 = 80,000 bytes.
  EXPECT_EQ(with([](Fp8Tensors& t) { t.z = at(6, 79'998); }), "saved overlaps z");
  EXPECT_EQ(with([](Fp8Tensors& t) { t.z = at(6, 80'000); }), "");
  p.z_e4m3 = true;
  EXPECT_EQ(with([](Fp8Tensors& t) {
              t.z_scale = fat(1, 0);  // over x_scale
            }),
            "z_scale overlaps x_scale");
  EXPECT_EQ(with([](Fp8Tensors& t) {
              t.z_scale = fat(7);
              t.z_amax = fat(7, 200 * 4 - 4);  // the last of Z's B·d_blocks scales
            }),
            "z_amax overlaps z_scale");
}

// The FP8 backward's checks (validate_backward_fp8): B = 200, I = 272, D = 112 (a multiple of 16).
Fp8Problem backward_problem() {
  Fp8Problem p = problem();
  p.hidden = 112;
  p.bias = true;
  return p;
}

Fp8BackwardTensors backward_tensors() {
  Fp8BackwardTensors t;
  t.dz = at(0);
  t.saved = at(1);
  t.wt = at(2);
  t.wt_scale = fat(3);
  t.xt = at(4);
  t.ldxt = 208;
  t.xt_scale = fat(5);
  t.dx = at(6);
  t.dw = at(7);
  t.dbias = at(8);
  return t;
}

void* const kWorkspace = at(9);

std::string backward_refusal(const Fp8Problem& p, const Fp8BackwardTensors& t, const void* ws = kWorkspace,
                             size_t bytes = size_t{1} << 29) {
  const Status s = validate_backward_fp8(p, t, ws, bytes);
  if (s.ok()) return "";
  EXPECT_EQ(s.code, StatusCode::invalid_argument) << s.message;
  return s.message;
}

TEST(Fp8BackwardValidate, AcceptsEachGradientAloneAndEveryOutputDtype) {
  EXPECT_EQ(backward_refusal(backward_problem(), backward_tensors()), "");
  for (const int keep : {0, 1, 2}) {
    Fp8BackwardTensors t = backward_tensors();
    if (keep != 0) {
      t.dx = nullptr;
      t.wt = nullptr;
      t.wt_scale = nullptr;
    }
    if (keep != 1) {
      t.dw = nullptr;
      t.xt = nullptr;
      t.xt_scale = nullptr;
      t.ldxt = 0;
    }
    if (keep != 2) t.dbias = nullptr;
    EXPECT_EQ(backward_refusal(backward_problem(), t), "") << "gradient " << keep;
  }
  for (const DType d : {DType::f32, DType::bf16, DType::f16}) {
    Fp8BackwardTensors t = backward_tensors();
    t.dx_dtype = t.dw_dtype = t.dbias_dtype = d;
    EXPECT_EQ(backward_refusal(backward_problem(), t), "");
  }
  Fp8Problem p = backward_problem();
  p.out = DType::f16;
  EXPECT_EQ(backward_refusal(p, backward_tensors()), "");
}

TEST(Fp8BackwardValidate, RefusalsNameWhatIsWrong) {
  const auto with = [](auto change, auto change_p) {
    Fp8Problem p = backward_problem();
    Fp8BackwardTensors t = backward_tensors();
    change(t);
    change_p(p);
    return backward_refusal(p, t);
  };
  const auto none = [](Fp8Problem&) {};
  const auto keep = [](Fp8BackwardTensors&) {};
  EXPECT_TRUE(says(with(keep, [](Fp8Problem& p) { p.hidden = 100; }), "multiple of 16"));
  EXPECT_TRUE(says(with(keep, [](Fp8Problem& p) { p.in_features = 100; }), "multiples of 16"));
  EXPECT_TRUE(says(with(keep, [](Fp8Problem& p) { p.out = DType::f32; }), "bf16 or fp16"));
  EXPECT_TRUE(says(with(keep, [](Fp8Problem& p) { p.bias = false; }), "no bias"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.dw_dtype = DType::e4m3; }, none), "fp32, bf16 or fp16"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.dx_dtype = static_cast<DType>(9); }, none), "fp32, bf16 or fp16"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.dx = t.dw = t.dbias = nullptr; }, none), "no gradient"));
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dz = nullptr; }, none), "dz is null");
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.saved = nullptr; }, none), "saved"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.wt = nullptr; }, none), "wt (W12^T, for dX) is null"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.wt_scale = nullptr; }, none), "wt_scale"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.xt = nullptr; }, none), "xt (X^T, for dW) is null"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.xt_scale = nullptr; }, none), "xt_scale"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.ldxt = 192; }, none), "ldxt (192) must be >= batch (200)"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.ldxt = 210; }, none), "multiple of 16"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.dz = at(0, 1); }, none), "aligned to their element size (bf16)"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.wt = at(2, 8); }, none), "16-byte aligned"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.xt_scale = fat(5, 2); }, none), "4-byte aligned"));
  EXPECT_TRUE(says(with([](Fp8BackwardTensors& t) { t.dw = at(7, 2); }, none), "element sizes"));  // fp32 dW
  // The workspace: its size from backward_fp8_workspace_bytes, its alignment.
  const size_t need = backward_fp8_workspace_bytes(backward_problem());
  EXPECT_GT(need, size_t{4} * 200 * 112);
  EXPECT_EQ(backward_refusal(backward_problem(), backward_tensors(), kWorkspace, need), "");
  EXPECT_TRUE(says(backward_refusal(backward_problem(), backward_tensors(), kWorkspace, need - 1),
                   "needs " + std::to_string(need) + " bytes"));
  EXPECT_TRUE(says(backward_refusal(backward_problem(), backward_tensors(), nullptr, need), "got null"));
  EXPECT_TRUE(says(backward_refusal(backward_problem(), backward_tensors(), at(9, 16), need), "256-byte aligned"));
  Fp8Problem odd = backward_problem();
  odd.hidden = 100;
  EXPECT_EQ(backward_fp8_workspace_bytes(odd), 0u);
  odd = backward_problem();
  odd.batch = 0;
  EXPECT_EQ(backward_fp8_workspace_bytes(odd), 0u);
}

TEST(Fp8BackwardValidate, OverlapsMeasuredInEachOperandsOwnBytes) {
  const auto with = [](auto change) {
    Fp8BackwardTensors t = backward_tensors();
    change(t);
    return backward_refusal(backward_problem(), t);
  };
  // dZ is B·D bf16 = 44,800 bytes; H 89,600.
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dx = at(0, 44'800); }), "");
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dx = at(0, 44'798); }), "dx overlaps dz");
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dbias = at(1, 89'596); }), "dbias overlaps saved");
  // Xᵀ: 271 rows of ldxt = 208 bytes and the last row's 200.
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dw = at(4, 271 * 208 + 200); }), "");
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dw = at(4, 271 * 208 + 196); }), "dw overlaps xt");
  // dX is B·I bf16 = 108,800 bytes; an fp32 dW after it.
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dw = at(6, 108'800); }), "");
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dw = at(6, 108'796); }), "dw overlaps dx");
  EXPECT_EQ(with([](Fp8BackwardTensors& t) { t.dbias = at(9, 256); }), "workspace overlaps dbias");
  // An input only the skipped gradient reads may lie anywhere.
  EXPECT_EQ(with([](Fp8BackwardTensors& t) {
              t.dx = nullptr;
              t.wt = at(7, 8192);
            }),
            "");
}

TEST(Fp8Backward, EmptyBatchAndArgumentsBeforeTheDevice) {
  Fp8Problem p = backward_problem();
  p.batch = 0;
  Fp8BackwardTensors t;
  t.dx = at(6);  // B = 0 needs no operand and no workspace
  EXPECT_EQ(backward_refusal(p, t, nullptr, 0), "");
  p = backward_problem();
  p.hidden = 100;
  EXPECT_EQ(backward_fp8(p, backward_tensors(), kWorkspace, size_t{1} << 29, nullptr).code,
            StatusCode::invalid_argument);
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) GTEST_SKIP() << "a CUDA device is present";
  const Status s = backward_fp8(backward_problem(), backward_tensors(), kWorkspace, size_t{1} << 29, nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code, StatusCode::invalid_argument) << s.message;
}

TEST(Fp8Forward, ArgumentsAreCheckedBeforeTheDevice) {
  Fp8Problem p = problem();
  p.in_features = 100;
  EXPECT_EQ(forward_fp8(p, tensors(), nullptr).code, StatusCode::invalid_argument);
  // Valid arguments get past the checks: without a device the call fails on the device check.
  // (With one, these fake pointers must not be launched on.)
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) GTEST_SKIP() << "a CUDA device is present";
  const Status s = forward_fp8(problem(), tensors(), nullptr);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code, StatusCode::invalid_argument) << s.message;
}

TEST(Fp8Quantize, Arguments) {
  const auto code = [](Status s) { return s.code; };
  EXPECT_EQ(code(quantize_e4m3(DType::bf16, at(0), 256, 4, 256, static_cast<Fp8Blocks>(5), at(1), 256, fat(2), nullptr)),
            StatusCode::invalid_argument);
  EXPECT_EQ(code(quantize_e4m3(static_cast<DType>(9), at(0), 256, 4, 256, Fp8Blocks::row_1x128, at(1), 256, fat(2), nullptr)),
            StatusCode::invalid_argument);
  const Status over = quantize_e4m3(DType::bf16, at(0), 256, 4, 256, Fp8Blocks::row_1x128, at(0, 512), 256, fat(2), nullptr);
  EXPECT_TRUE(says(over.message, "q overlaps a")) << over.message;
  const Status scale_over = quantize_e4m3(DType::f32, at(0), 256, 4, 256, Fp8Blocks::tile_128x128, at(1), 256, fat(1, 1020), nullptr);
  EXPECT_TRUE(says(scale_over.message, "quantize: scale overlaps q")) << scale_over.message;
  EXPECT_TRUE(says(quantize_e4m3(DType::f16, at(0, 1), 256, 4, 256, Fp8Blocks::row_1x128, at(1), 256, fat(2), nullptr).message,
                   "aligned"));
  EXPECT_EQ(code(quantize_e4m3(DType::bf16, at(0), 100, 4, 256, Fp8Blocks::row_1x128, at(1), 256, fat(2), nullptr)),
            StatusCode::invalid_argument);  // a row stride below cols
  EXPECT_TRUE(quantize_e4m3(DType::bf16, nullptr, 0, 0, 0, Fp8Blocks::row_1x128, nullptr, 0, nullptr, nullptr).ok());
}

// check_fp8_scales' verdict on host copies: the first scale that is not finite and > 0, named by
// operand, index and block in each layout.
TEST(Fp8Scales, TheFirstBadScaleIsNamedWithItsBlock) {
  Fp8Problem p = problem();  // B 200, I 272 (3 K blocks), D 100 (1 row block)
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const auto bad = [&](bool is_w, std::vector<float> s) {
    EXPECT_EQ(static_cast<int64_t>(s.size()), detail::fp8_scale_count(p, is_w));
    return detail::describe_bad_scale(p, is_w, s.data(), static_cast<int64_t>(s.size()));
  };
  std::vector<float> x(200 * 3, 0.5f);
  EXPECT_EQ(bad(false, x), "");
  x[2 * 3 + 1] = nan;
  x[3 * 3] = 0.0f;  // a later bad one is not the one named
  EXPECT_TRUE(says(bad(false, x), "x_scale[7] (row 2, K block 1) is nan")) << bad(false, x);
  x[7] = 1e-30f;  // tiny is finite and positive
  EXPECT_TRUE(says(bad(false, x), "x_scale[9] (row 3, K block 0) is 0")) << bad(false, x);

  std::vector<float> w(2 * 1 * 3, 2.0f);  // Wa's 3 blocks, then Wb's
  w[4] = -inf;
  EXPECT_TRUE(says(bad(true, w), "w_scale[4] (Wb, row block 0, K block 1) is -inf")) << bad(true, w);
  w[4] = -1.0f;
  EXPECT_TRUE(says(bad(true, w), "is -1")) << bad(true, w);

  p.w_scaling = Fp8Scaling::channel;
  std::vector<float> c(200, 1.0f);
  c[150] = inf;
  EXPECT_TRUE(says(bad(true, c), "w_scale[150] (Wb, row 50) is inf")) << bad(true, c);
  c[150] = 1.0f;
  c[99] = nan;
  EXPECT_TRUE(says(bad(true, c), "w_scale[99] (Wa, row 99)")) << bad(true, c);

  p.x_scaling = Fp8Scaling::tensor;
  EXPECT_TRUE(says(bad(false, {0.0f}), "x_scale[0] (the operand's one scale) is 0")) << bad(false, {0.0f});
  EXPECT_TRUE(says(bad(false, {0.0f}), "finite and > 0")) << bad(false, {0.0f});
  EXPECT_EQ(bad(false, {3.0f}), "");

  p.batch = 0;  // no rows: no X scales to read
  p.x_scaling = Fp8Scaling::blocks;
  EXPECT_EQ(detail::fp8_scale_count(p, false), 0);
}

// The FP8 forward pairs 128-row tiles in clusters of two when they pair up evenly, or when there
// are eight or more (the odd one out then wastes an eighth at most).
TEST(Fp8Quantize, TransposedArguments) {
  const auto call = [](void* q, int64_t ldq, float* scale, void* qt, int64_t ldqt, float* scale_t,
                       Fp8Blocks blocks = Fp8Blocks::row_1x128) {
    return quantize_e4m3_transposed(DType::bf16, at(0), 256, 4, 256, blocks, q, ldq, scale, qt, ldqt, scale_t, nullptr);
  };
  EXPECT_EQ(call(at(1), 256, fat(2), at(3), 4, fat(4), static_cast<Fp8Blocks>(3)).code, StatusCode::invalid_argument);
  EXPECT_TRUE(says(call(at(1), 256, fat(2), at(0, 256), 4, fat(4)).message, "qt overlaps a"));
  EXPECT_TRUE(says(call(at(1), 256, fat(2), at(3), 4, fat(3, 512)).message, "scale_t overlaps qt"));
  EXPECT_TRUE(says(call(at(1), 256, fat(2), at(2, 8), 4, fat(4)).message, "qt overlaps scale"));
  EXPECT_TRUE(says(call(at(1), 256, nullptr, at(3), 4, fat(4)).message, "q and scale go together"));
  EXPECT_TRUE(says(call(at(1), 256, fat(2), at(3), 3, fat(4)).message, "qt's >= rows"));  // ldqt below rows
  EXPECT_TRUE(says(call(at(1), 256, fat(2), at(3), 4, fat(4, 2)).message, "aligned"));
  // Without q, and without a device: past the checks to the launch, which fails off the device.
  int devices = 0;
  if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) GTEST_SKIP() << "a CUDA device is present";
  const Status s = call(nullptr, 0, nullptr, at(3), 4, fat(4), Fp8Blocks::tile_128x128);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.code, StatusCode::invalid_argument) << s.message;
}

// The automatic choices (docs/kernels-sm90-fp8.md): the decode kernel up to kFp8DecodeMaxBatch rows,
// the tiles beyond, in single blocks (pairs were measured slower); forward_fp8_kernel names them.
TEST(Fp8Forward, KernelRule) {
  for (const auto& [batch, decode] : std::vector<std::pair<int64_t, bool>>{
           {0, true}, {1, true}, {8, true}, {16, true}, {17, false}, {128, false}, {129, false}, {16384, false}}) {
    EXPECT_EQ(detail::fp8_forward_decode(batch), decode) << batch;
    EXPECT_EQ(detail::fp8_forward_cluster(batch), 1) << batch;
    Fp8Problem p = problem();
    p.batch = batch;
    EXPECT_EQ(forward_fp8_kernel(p), decode ? "sm90a-fp8-decode" : "sm90a-fp8") << batch;
  }
}

TEST(Fp8Scales, ArgumentsAreCheckedBeforeTheDevice) {
  Fp8Tensors none;
  const Status both_null = check_fp8_scales(problem(), none, nullptr);
  EXPECT_EQ(both_null.code, StatusCode::invalid_argument);
  EXPECT_TRUE(says(both_null.message, "both null")) << both_null.message;
  Fp8Problem p = problem();
  p.in_features = 100;
  Fp8Tensors t;
  t.w_scale = fat(3);
  EXPECT_TRUE(says(check_fp8_scales(p, t, nullptr).message, "multiples of 16"));
  t.w_scale = fat(3, 2);
  EXPECT_TRUE(says(check_fp8_scales(problem(), t, nullptr).message, "4-byte aligned"));
}

}  // namespace
}  // namespace swiglu
