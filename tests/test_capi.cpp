// The C ABI (libswiglu_c) on the host: version, argument checking with messages, the thread-local
// error, B = 0 as a no-op, and the header compiling as plain C. Nothing here needs a GPU: every
// call fails (or finishes) before the library touches a device.
#include <gtest/gtest.h>

#include <string>
#include <thread>

#include "swiglu/swiglu_c.h"

extern "C" int swiglu_capi_header_is_c(void);

namespace {

swiglu_problem problem(int64_t b = 4, int64_t i = 8, int64_t d = 8) {
  swiglu_problem p{};
  p.batch = b;
  p.in_features = i;
  p.hidden = d;
  p.dtype = SWIGLU_DTYPE_BF16;
  p.layout = SWIGLU_LAYOUT_LINEAR;
  p.math = SWIGLU_MATH_EXACT;
  return p;
}

std::string last_error() { return swiglu_last_error(); }

TEST(CApi, Version) { EXPECT_EQ(swiglu_abi_version(), SWIGLU_C_ABI_VERSION); }

TEST(CApi, HeaderIsPlainC) { EXPECT_EQ(swiglu_capi_header_is_c(), SWIGLU_C_ABI_VERSION); }

TEST(CApi, EmptyBatchIsANoOp) {
  const swiglu_problem p = problem(0);
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr), SWIGLU_OK);
  EXPECT_EQ(last_error(), "");
}

TEST(CApi, EveryMathValueIsAccepted) {
  // The values are the ABI (appended, never renumbered); each gets past the enum check to the
  // pointer check.
  EXPECT_EQ(SWIGLU_MATH_EXACT, 0);
  EXPECT_EQ(SWIGLU_MATH_TF32, 1);
  EXPECT_EQ(SWIGLU_MATH_TF32X3, 2);
  for (const int32_t math : {SWIGLU_MATH_EXACT, SWIGLU_MATH_TF32, SWIGLU_MATH_TF32X3}) {
    swiglu_problem p = problem();
    p.dtype = SWIGLU_DTYPE_F32;
    p.math = math;
    EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
              SWIGLU_INVALID_ARGUMENT);
    EXPECT_NE(last_error().find("x is null"), std::string::npos) << math << ": " << last_error();
  }
}

TEST(CApi, BadArgumentsNameTheValue) {
  swiglu_problem p = problem();
  EXPECT_EQ(swiglu_forward(nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("problem is NULL"), std::string::npos) << last_error();

  p.dtype = 7;
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("dtype 7"), std::string::npos) << last_error();
  p = problem();
  p.layout = -1;
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("layout -1"), std::string::npos) << last_error();
  p = problem();
  p.math = 3;
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("math 3 is not SWIGLU_MATH_EXACT, _TF32 or _TF32X3"), std::string::npos)
      << last_error();

  p = problem();
  p.hidden = -3;
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("hidden must be > 0, got -3"), std::string::npos) << last_error();

  p = problem();
  EXPECT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("x is null"), std::string::npos) << last_error();

  EXPECT_EQ(swiglu_backward(&p, 5, 1, 1, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                            nullptr, nullptr, nullptr, 0, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("policy 5"), std::string::npos) << last_error();
  EXPECT_EQ(swiglu_backward(&p, SWIGLU_POLICY_SAVE, 0, 0, nullptr, nullptr, nullptr, nullptr,
                            nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("no gradient"), std::string::npos) << last_error();

  EXPECT_EQ(swiglu_backward_workspace_bytes(&p, 9, 1, 1), 0u);
  EXPECT_NE(last_error().find("policy 9"), std::string::npos) << last_error();

  EXPECT_EQ(swiglu_backward_workspace_bytes2(&p, SWIGLU_POLICY_SAVE, 1, 1, 2), 0u);
  EXPECT_NE(last_error().find("dh_storage 2"), std::string::npos) << last_error();
  EXPECT_EQ(swiglu_backward2(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_TENSORS, nullptr, nullptr, nullptr, nullptr,
                             nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("is null"), std::string::npos) << last_error();
}

TEST(CApi, DhInTheCallersMemoryLeavesItOutOfTheWorkspace) {
  // B×2D bf16 dH is the whole workspace of save at this size (no split-K sums), and none of it
  // with SWIGLU_DH_TENSORS; the old entry point is SWIGLU_DH_WORKSPACE.
  const swiglu_problem p = problem(4096, 4096, 11008);
  const size_t dh_bytes = size_t{4096} * 2 * 11008 * 2;
  EXPECT_EQ(swiglu_backward_workspace_bytes2(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE), dh_bytes);
  EXPECT_EQ(swiglu_backward_workspace_bytes(&p, SWIGLU_POLICY_SAVE, 1, 1), dh_bytes);
  EXPECT_EQ(swiglu_backward_workspace_bytes2(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_TENSORS), 0u);
  EXPECT_EQ(last_error(), "");
}

TEST(CApi, AWorkspaceBoundSplitsTheBackwardIntoRowChunks) {
  // Save with dH in the workspace at 4096x4096x11008: B×2D bf16 whole; a bound of a third takes
  // chunks of at most a third of the rows (each chunk's dH only), one below 64 rows' dH is refused.
  const swiglu_problem p = problem(4096, 4096, 11008);
  const size_t whole = size_t{4096} * 2 * 11008 * 2, row = size_t{2} * 11008 * 2;
  EXPECT_EQ(swiglu_backward_workspace_bytes3(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE, 0), whole);
  EXPECT_EQ(swiglu_backward_workspace_bytes3(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE, whole), whole);
  const size_t third = swiglu_backward_workspace_bytes3(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE, whole / 3);
  EXPECT_EQ(last_error(), "");
  EXPECT_LE(third, whole / 3);
  EXPECT_EQ(third % row, 0u);
  EXPECT_GE(third, 4096 / 4 * row);  // no more chunks than fit: four of 1024 rows would
  EXPECT_EQ(swiglu_backward_workspace_bytes3(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE, 63 * row), 0u);
  EXPECT_NE(last_error().find("max_workspace_bytes " + std::to_string(63 * row) + " is below"), std::string::npos)
      << last_error();
  // The launch validates the same bound before it touches a pointer.
  EXPECT_EQ(swiglu_backward3(&p, SWIGLU_POLICY_SAVE, 1, 1, SWIGLU_DH_WORKSPACE, 63 * row, nullptr, nullptr, nullptr,
                             nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, 0, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error(), "");
}

TEST(CApi, WorkspaceQueryReportsBadAndWrappingSizes) {
  // These once returned 0 with an empty error, as if no workspace were needed.
  for (const swiglu_problem& p : {problem(-5), problem(4, 8, 0), problem(int64_t{1} << 62, 8, int64_t{1} << 62)}) {
    EXPECT_EQ(swiglu_backward_workspace_bytes(&p, SWIGLU_POLICY_SAVE, 1, 1), 0u);
    EXPECT_NE(last_error(), "") << p.batch << " " << p.hidden;
  }
  const swiglu_problem bad_b = problem(-5);
  swiglu_backward_workspace_bytes(&bad_b, SWIGLU_POLICY_RECOMPUTE, 1, 1);
  EXPECT_NE(last_error().find("batch must be >= 0, got -5"), std::string::npos) << last_error();
  const swiglu_problem wrap = problem(int64_t{1} << 62, 8, int64_t{1} << 62);
  swiglu_backward_workspace_bytes(&wrap, SWIGLU_POLICY_RECOMPUTE, 1, 1);
  EXPECT_NE(last_error().find("too large"), std::string::npos) << last_error();
  const swiglu_problem good = problem(64, 64, 64);
  EXPECT_GT(swiglu_backward_workspace_bytes(&good, SWIGLU_POLICY_RECOMPUTE, 1, 1), 0u);
  EXPECT_EQ(last_error(), "");
}

// B = 4, I = 128, D = 64, blocks of X and W12, bf16 out.
swiglu_fp8_problem fp8_problem() {
  swiglu_fp8_problem p{};
  p.batch = 4;
  p.in_features = 128;
  p.hidden = 64;
  p.x_scaling = SWIGLU_FP8_SCALE_BLOCKS;
  p.w_scaling = SWIGLU_FP8_SCALE_BLOCKS;
  p.out_dtype = SWIGLU_DTYPE_BF16;
  return p;
}

// The FP8 entry points (ABI 3): enums by value, then forward_fp8's own checks, named.
TEST(CApi, Fp8ArgumentsNameTheValue) {
  EXPECT_EQ(SWIGLU_FP8_SCALE_TENSOR, 0);
  EXPECT_EQ(SWIGLU_FP8_SCALE_BLOCKS, 1);
  EXPECT_EQ(SWIGLU_FP8_SCALE_CHANNEL, 2);
  const swiglu_fp8_problem p = fp8_problem();
  const auto call = [](const swiglu_fp8_problem* q) {
    return swiglu_forward_fp8(q, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr);
  };
  EXPECT_EQ(call(nullptr), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("problem is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(call(&p), SWIGLU_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "x is null");
  swiglu_fp8_problem bad = p;
  bad.x_scaling = 3;
  EXPECT_EQ(call(&bad), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("x_scaling 3 is not"), std::string::npos) << last_error();
  bad = p;
  bad.x_scaling = SWIGLU_FP8_SCALE_CHANNEL;  // a valid value that X does not take
  EXPECT_EQ(call(&bad), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("X has no channel scales"), std::string::npos) << last_error();
  bad = p;
  bad.out_dtype = SWIGLU_DTYPE_F32;
  EXPECT_EQ(call(&bad), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("out_dtype 0 is not SWIGLU_DTYPE_BF16 or _F16"), std::string::npos) << last_error();
  bad = p;
  bad.batch = 0;
  EXPECT_EQ(call(&bad), SWIGLU_OK);
  EXPECT_EQ(swiglu_quantize_e4m3(SWIGLU_DTYPE_BF16, nullptr, 0, 0, 0, 2, nullptr, 0, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("blocks 2 is not"), std::string::npos) << last_error();
  EXPECT_EQ(swiglu_quantize_e4m3(5, nullptr, 0, 0, 0, 0, nullptr, 0, nullptr, nullptr), SWIGLU_INVALID_ARGUMENT);
  EXPECT_EQ(swiglu_quantize_e4m3(SWIGLU_DTYPE_F16, nullptr, 0, 0, 0, SWIGLU_FP8_BLOCKS_1X128, nullptr, 0, nullptr,
                                 nullptr),
            SWIGLU_OK);  // an empty matrix
  EXPECT_EQ(swiglu_check_fp8_scales(nullptr, nullptr, nullptr, nullptr), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("problem is NULL"), std::string::npos) << last_error();
  bad = p;
  bad.w_scaling = 7;
  EXPECT_EQ(swiglu_check_fp8_scales(&bad, nullptr, nullptr, nullptr), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("w_scaling 7 is not"), std::string::npos) << last_error();
  EXPECT_EQ(swiglu_check_fp8_scales(&p, nullptr, nullptr, nullptr), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("both null"), std::string::npos) << last_error();
}

// The FP8 backward and the transposing quantiser (added within ABI 3): enums by value, then
// backward_fp8's own checks, named; the workspace query's two kinds of 0.
TEST(CApi, Fp8BackwardArgumentsNameTheValue) {
  const swiglu_fp8_problem p = fp8_problem();
  const size_t need = swiglu_backward_fp8_workspace_bytes(&p);
  EXPECT_GT(need, size_t{4} * 4 * 64);
  EXPECT_EQ(last_error(), "");
  swiglu_fp8_problem bad = p;
  bad.hidden = 60;
  EXPECT_EQ(swiglu_backward_fp8_workspace_bytes(&bad), 0u);
  EXPECT_NE(last_error().find("multiple of 16"), std::string::npos) << last_error();
  bad = p;
  bad.batch = 0;
  EXPECT_EQ(swiglu_backward_fp8_workspace_bytes(&bad), 0u);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(swiglu_backward_fp8_workspace_bytes(nullptr), 0u);
  EXPECT_NE(last_error().find("problem is NULL"), std::string::npos) << last_error();

  int dx = 0;  // never written: every call below is refused or has B = 0
  const auto call = [&](const swiglu_fp8_problem* q, int32_t dx_dtype, int32_t dw_dtype, int32_t dbias_dtype) {
    return swiglu_backward_fp8(q, nullptr, nullptr, nullptr, nullptr, nullptr, 16, nullptr, &dx, dx_dtype, nullptr,
                               dw_dtype, 0, nullptr, dbias_dtype, nullptr, 0, nullptr);
  };
  EXPECT_EQ(call(nullptr, SWIGLU_DTYPE_BF16, SWIGLU_DTYPE_F32, SWIGLU_DTYPE_F32), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("problem is NULL"), std::string::npos) << last_error();
  EXPECT_EQ(call(&p, 3, SWIGLU_DTYPE_F32, SWIGLU_DTYPE_F32), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("dx_dtype 3 is not"), std::string::npos) << last_error();
  EXPECT_EQ(call(&p, SWIGLU_DTYPE_BF16, -1, SWIGLU_DTYPE_F32), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("dw_dtype -1 is not"), std::string::npos) << last_error();
  EXPECT_EQ(call(&p, SWIGLU_DTYPE_BF16, SWIGLU_DTYPE_F32, 9), SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("dbias_dtype 9 is not"), std::string::npos) << last_error();
  EXPECT_EQ(call(&p, SWIGLU_DTYPE_BF16, SWIGLU_DTYPE_F32, SWIGLU_DTYPE_F32), SWIGLU_INVALID_ARGUMENT);
  EXPECT_EQ(last_error(), "dz is null");
  bad = p;
  bad.batch = 0;
  EXPECT_EQ(call(&bad, SWIGLU_DTYPE_BF16, SWIGLU_DTYPE_F32, SWIGLU_DTYPE_F32), SWIGLU_OK);
  EXPECT_EQ(swiglu_quantize_e4m3_transposed(SWIGLU_DTYPE_BF16, nullptr, 0, 0, 0, 2, nullptr, 0, nullptr, nullptr, 0,
                                            nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("blocks 2 is not"), std::string::npos) << last_error();
  EXPECT_EQ(swiglu_quantize_e4m3_transposed(4, nullptr, 0, 0, 0, 0, nullptr, 0, nullptr, nullptr, 0, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  EXPECT_NE(last_error().find("in_dtype 4 is not"), std::string::npos) << last_error();
}

TEST(CApi, ASuccessClearsTheError) {
  swiglu_problem p = problem();
  p.dtype = 7;
  ASSERT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  const swiglu_problem empty = problem(0);
  EXPECT_EQ(swiglu_forward(&empty, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr), SWIGLU_OK);
  EXPECT_EQ(last_error(), "");
}

TEST(CApi, TheErrorBelongsToItsThread) {
  swiglu_problem p = problem();
  p.dtype = 7;
  ASSERT_EQ(swiglu_forward(&p, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr),
            SWIGLU_INVALID_ARGUMENT);
  std::string other = "unset";
  std::thread t([&] { other = swiglu_last_error(); });
  t.join();
  EXPECT_EQ(other, "");
  EXPECT_NE(last_error().find("dtype 7"), std::string::npos);
}

}  // namespace
