// The FP8 forward (forward_fp8: kernels/fwd_sm90_fp8.cuh) on a compute capability 9.0 device:
// seeded X and W quantised on the host to e4m3 with fp32 scales (X in 1×128 blocks, Wa and Wb each
// in 128×128 blocks, scale = amax / 448; and per-tensor X and W, and per-channel W), Z in bf16 and
// fp16 (and in e4m3 with 1×128 scales, dequantised) against an fp64 reference computed on the
// dequantised inputs, and H with the save output; tails in B, D and the K blocks; outputs poisoned
// first. Skipped on other GPUs. And the block quantisation kernel (quantize_e4m3:
// kernels/quantize.cuh) against the host's, bit for bit. The argument checks are test_fp8_api's.
#include <cuda_fp8.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/device.hpp"
#include "common/host_data.hpp"
#include "fp8_case.hpp"
#include "swiglu/fp8.hpp"

namespace swiglu::test {
namespace {

struct Shape {
  int64_t b, i, d;
};

const char* scale_name(kernels::Fp8Scale k) {
  return k == kernels::Fp8Scale::tensor ? "tensor" : k == kernels::Fp8Scale::blocks ? "blocks" : "channel";
}

// The internal launcher's parameters for e4m3 X (B×I, dense) and W12 with 1×128 and 128×128 block
// scales, Z into z; no bias, H, Z scales or amax until the caller sets them.
kernels::Fp8FwdParams block_params(int64_t B, int64_t I, int64_t D, const DeviceBuffer& xq, const DeviceBuffer& wq,
                                   const DeviceBuffer& xs, const DeviceBuffer& ws, DeviceBuffer& z) {
  kernels::Fp8FwdParams q;
  q.base.x = xq.get();
  q.base.w = wq.get();
  q.base.z = z.get();
  q.base.B = B;
  q.base.I = I;
  q.base.D = D;
  q.base.ldx = I;
  q.x_scale = xs.as<float>();
  q.w_scale = ws.as<float>();
  q.k_blocks = (I + 127) / 128;
  q.d_blocks = (D + 127) / 128;
  return q;
}

// z_e4m3: Z in e4m3 with 1×128 scales (and its amax), checked dequantised.
void check_shape(const Shape& s, DType out, bool bias, kernels::Fp8Scale x_kind, kernels::Fp8Scale w_kind,
                 uint64_t seed, bool z_e4m3 = false) {
  using kernels::Fp8Scale;
  const int64_t B = s.b, I = s.i, D = s.d;
  const std::string what = "B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D) +
                           " " + std::string(to_string(out)) + (bias ? " bias" : "") + " x " +
                           scale_name(x_kind) + " w " + scale_name(w_kind) + (z_e4m3 ? " z e4m3" : "");
  const auto x = common::uniform_values(static_cast<size_t>(B * I), -1, 1, seed, DType::f32);
  const float k = 1.0f / std::sqrt(static_cast<float>(I));
  const auto w = common::uniform_values(static_cast<size_t>(2 * D * I), -k, k, seed + 1, DType::f32);
  const auto b = common::uniform_values(static_cast<size_t>(2 * D), -k, k, seed + 2, out);
  const Quantised xq = x_kind == Fp8Scale::blocks ? quantise(x, B, I, 1) : quantise(x, B, I, B, I);
  // W12's bytes, scales (Fp8Scale's layouts) and dequantised values.
  Quantised wq;
  if (w_kind == Fp8Scale::blocks) {
    const std::vector<float> wa(w.begin(), w.begin() + D * I), wb(w.begin() + D * I, w.end());
    const Quantised aq = quantise(wa, D, I, 128), bq = quantise(wb, D, I, 128);
    wq = aq;
    wq.q.insert(wq.q.end(), bq.q.begin(), bq.q.end());
    wq.scale.insert(wq.scale.end(), bq.scale.begin(), bq.scale.end());
    wq.deq.insert(wq.deq.end(), bq.deq.begin(), bq.deq.end());
  } else {
    wq = w_kind == Fp8Scale::tensor ? quantise(w, 2 * D, I, 2 * D, I) : quantise(w, 2 * D, I, 1, I);
  }
  // The fp64 reference on the dequantised inputs and each element's bound (fp8_case.hpp).
  Fp8Problem p;
  p.batch = B;
  const TensorCoreOrder order =
      forward_fp8_kernel(p) == "sm90a-fp8-decode" ? TensorCoreOrder::decode : TensorCoreOrder::contiguous;
  const Fp8Reference ref = fp8_reference(xq.deq, wq.deq, bias ? b.data() : nullptr, B, I, D, out, order);
  const double u_out = ref.u_out;

  const DeviceBuffer dx = upload(xq.q), dw = upload(wq.q), dxs = upload(xq.scale), dws = upload(wq.scale);
  const DeviceBuffer dbias = upload(common::to_dtype_bytes(b, out));
  const size_t es = dtype_size(out);
  const int64_t z_blocks = (D + 127) / 128;
  DeviceBuffer dz(std::max<size_t>(static_cast<size_t>(B * D) * (z_e4m3 ? 1 : es), 16));
  DeviceBuffer dzs(std::max<size_t>(static_cast<size_t>(B * z_blocks) * 4, 16)), damax(16);
  CUDA_CHECK(cudaMemset(dzs.get(), common::kPoisonByte, dzs.bytes()));
  CUDA_CHECK(cudaMemset(damax.get(), 0, damax.bytes()));
  DeviceBuffer dh(std::max<size_t>(static_cast<size_t>(B * 2 * D) * es, 16));
  CUDA_CHECK(cudaMemset(dz.get(), common::kPoisonByte, dz.bytes()));
  CUDA_CHECK(cudaMemset(dh.get(), common::kPoisonByte, dh.bytes()));

  // Through the public entry point (forward_fp8), whose layouts are the kernel's.
  const auto scaling = [](Fp8Scale k) {
    return k == Fp8Scale::tensor ? Fp8Scaling::tensor : k == Fp8Scale::channel ? Fp8Scaling::channel : Fp8Scaling::blocks;
  };
  p.in_features = I;
  p.hidden = D;
  p.x_scaling = scaling(x_kind);
  p.w_scaling = scaling(w_kind);
  p.out = out;
  p.bias = bias;
  p.z_e4m3 = z_e4m3;
  Fp8Tensors t;
  t.x = dx.get();
  t.x_scale = dxs.as<float>();
  t.w = dw.get();
  t.w_scale = dws.as<float>();
  t.bias = bias ? dbias.get() : nullptr;
  t.z = dz.get();
  t.saved = dh.get();
  if (z_e4m3) {
    t.z_scale = dzs.as<float>();
    t.z_amax = damax.as<float>();
  }
  const Status st = forward_fp8(p, t, nullptr);
  ASSERT_TRUE(st.ok()) << what << ": " << st.message;
  CUDA_CHECK(cudaDeviceSynchronize());

  if (!z_e4m3) {
    const auto z = download(dz, static_cast<size_t>(B * D), out);
    expect_within(what, "Z", z, ref.z, [&](size_t e) { return 2 * u_out * std::fabs(ref.z[e]) + ref.z_acc[e]; });
  } else {
    float amax_got = 0.0f;
    CUDA_CHECK(cudaMemcpy(&amax_got, damax.get(), 4, cudaMemcpyDeviceToHost));
    expect_e4m3_z(what, download_raw<uint8_t>(dz, static_cast<size_t>(B * D)),
                  download_raw<float>(dzs, static_cast<size_t>(B * z_blocks)), ref, B, D, 0.0, &amax_got);
  }
  const auto h = download(dh, static_cast<size_t>(B * 2 * D), out);
  expect_within(what, "H", h, ref.h, [&](size_t e) { return ref.h_bound[e]; });
}

TEST(Fp8Forward, MatchesTheFp64ReferenceOnTheDequantisedInputs) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 forward needs compute capability 9.0";
  // Tails: B below and across the 128-row tile, D across the 64-column tile and the 128-row weight
  // blocks (192: a second, partial block; 100: no paired stores), I across K blocks. B = 200, 1024
  // and 1100 run in clusters of two blocks (1100: nine row tiles, the tenth past B), 333 without.
  // B <= kFp8DecodeMaxBatch (1, 11, 16) runs the decode kernel: one and two n8 tiles of rows, 11
  // with a partial one; 40 and 64 run the tiles.
  const Shape shapes[] = {{1, 128, 64}, {128, 128, 64}, {200, 384, 192}, {333, 1024, 320}, {77, 272, 100},
                          {1024, 4096, 1024}, {1100, 256, 192}, {16, 272, 100}, {11, 384, 192}, {64, 1024, 320}};
  using kernels::Fp8Scale;
  uint64_t seed = 900;
  for (const DType out : {DType::bf16, DType::f16}) {
    for (const bool bias : {false, true}) {
      for (const Shape& s : shapes) check_shape(s, out, bias, Fp8Scale::blocks, Fp8Scale::blocks, seed += 3);
    }
  }
  // The other scale layouts: per-tensor (the delayed-scaling recipes), per-channel weights.
  const std::pair<Fp8Scale, Fp8Scale> kinds[] = {{Fp8Scale::tensor, Fp8Scale::tensor},
                                                  {Fp8Scale::blocks, Fp8Scale::channel},
                                                  {Fp8Scale::tensor, Fp8Scale::blocks}};
  for (const auto& [xk, wk] : kinds) {
    for (const Shape& s : {shapes[2], shapes[4], shapes[8]}) check_shape(s, DType::bf16, true, xk, wk, seed += 3);
  }
  // Z in e4m3 with 1×128 scales: D a multiple of 128, of 64 only (a unit's second tile absent),
  // and neither; the decode kernel's too.
  for (const Shape& s : {shapes[0], shapes[1], shapes[2], shapes[3], shapes[4], shapes[5], shapes[6], shapes[7],
                         shapes[8], shapes[9]})
    check_shape(s, DType::bf16, true, Fp8Scale::blocks, Fp8Scale::blocks, seed += 3, /*z_e4m3=*/true);
}

// Clusters of two blocks share the W loads and change nothing else: the same bytes of Z (bf16 and
// e4m3 with its scales and amax) and H as single blocks, row tiles even, odd and fewer than two.
// Likewise the decode kernel's clusters of 2 and 4, which only share an e4m3 Z's row maxima.
TEST(Fp8Forward, ClustersOfTwoChangeNoBit) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 forward needs compute capability 9.0";
  for (const Shape& s : {Shape{200, 384, 192}, Shape{1100, 256, 320}, Shape{640, 512, 100}, Shape{64, 256, 128},
                         Shape{13, 256, 320}}) {
    const int64_t B = s.b, I = s.i, D = s.d, kb = (I + 127) / 128, db = (D + 127) / 128;
    const std::string what = "B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D);
    // Seeded e4m3 bytes (NaN codes cleared) and scales in [2^-8, 2^-6].
    const auto bytes = [](size_t n, uint64_t seed) {
      std::vector<uint8_t> v(n);
      const auto f = common::uniform_values(n, 0.0f, 256.0f, seed, DType::f32);
      for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(f[i]);
        if ((v[i] & 0x7F) == 0x7F) v[i] = 0x7E;
      }
      return v;
    };
    const DeviceBuffer xq = upload(bytes(static_cast<size_t>(B * I), 31)), wq = upload(bytes(static_cast<size_t>(2 * D * I), 32));
    const DeviceBuffer xs = upload(common::uniform_values(static_cast<size_t>(B * kb), 0x1p-8f, 0x1p-6f, 33, DType::f32));
    const DeviceBuffer ws = upload(common::uniform_values(static_cast<size_t>(2 * db * kb), 0x1p-8f, 0x1p-6f, 34, DType::f32));
    const DeviceBuffer bias = upload(common::to_dtype_bytes(common::uniform_values(static_cast<size_t>(2 * D), -1, 1, 35, DType::bf16), DType::bf16));
    for (const auto kernel : {detail::Fp8Kernel::tiles, detail::Fp8Kernel::decode}) {
      if (kernel == detail::Fp8Kernel::decode && B > detail::kFp8DecodeMaxBatch) continue;
      const std::string kname = kernel == detail::Fp8Kernel::tiles ? " tiles" : " decode";
      for (const bool z_e4m3 : {false, true}) {
        std::vector<uint8_t> out[3][4];  // per cluster size 1, 2, 4: Z, H, Z's scales, amax
        const int clusters = kernel == detail::Fp8Kernel::decode && z_e4m3 ? 3 : 2;
        for (int ci = 0; ci < clusters; ++ci) {
          const int c = 1 << ci;
          DeviceBuffer z(static_cast<size_t>(B * D) * 2), h(static_cast<size_t>(B * 2 * D) * 2);
          DeviceBuffer zs(static_cast<size_t>(B * db) * 4), amax(16);
          CUDA_CHECK(cudaMemset(z.get(), common::kPoisonByte, z.bytes()));
          CUDA_CHECK(cudaMemset(h.get(), common::kPoisonByte, h.bytes()));
          CUDA_CHECK(cudaMemset(zs.get(), common::kPoisonByte, zs.bytes()));
          CUDA_CHECK(cudaMemset(amax.get(), 0, amax.bytes()));
          kernels::Fp8FwdParams q = block_params(B, I, D, xq, wq, xs, ws, z);
          q.base.bias = bias.get();
          q.base.has_bias = 1;
          q.base.saved = h.get();
          if (z_e4m3) {
            q.z_scale = zs.as<float>();
            q.z_amax = amax.as<float>();
          }
          const Status st = detail::fp8_forward_sm90(q, DType::bf16, z_e4m3, nullptr, c, kernel);
          ASSERT_TRUE(st.ok()) << what << kname << " cluster " << c << ": " << st.message;
          CUDA_CHECK(cudaDeviceSynchronize());
          out[ci][0] = download_raw<uint8_t>(z, static_cast<size_t>(B * D) * (z_e4m3 ? 1 : 2));
          out[ci][1] = download_raw<uint8_t>(h, h.bytes());
          out[ci][2] = download_raw<uint8_t>(zs, z_e4m3 ? zs.bytes() : 0);
          out[ci][3] = download_raw<uint8_t>(amax, 4);
        }
        const char* names[] = {"Z", "H", "Z's scales", "amax"};
        for (int ci = 1; ci < clusters; ++ci) {
          for (int o = 0; o < 4; ++o) {
            EXPECT_TRUE(out[0][o] == out[ci][o])
                << what << kname << (z_e4m3 ? " e4m3 Z" : " bf16 Z") << " cluster " << (1 << ci) << ": " << names[o]
                << " differs";
          }
        }
      }
    }
  }
}

// check_fp8_scales on device scales: what the quantiser writes passes; a NaN, an infinity, a zero
// or a negative scale in either operand is an invalid_argument that names it and its block.
TEST(Fp8Scales, AMalformedScaleIsAClearError) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 forward needs compute capability 9.0";
  Fp8Problem p;
  p.batch = 3;
  p.in_features = 272;  // 3 K blocks
  p.hidden = 200;       // 2 row blocks
  const auto x = common::uniform_values(3 * 272, -1, 1, 77, DType::bf16);
  const auto w = common::uniform_values(2 * 200 * 272, -1, 1, 78, DType::bf16);
  const DeviceBuffer dx = upload(common::to_dtype_bytes(x, DType::bf16)), dw = upload(common::to_dtype_bytes(w, DType::bf16));
  DeviceBuffer xq(3 * 272), wq(2 * 200 * 272), xs(3 * 3 * 4), ws(2 * 2 * 3 * 4);
  ASSERT_TRUE(quantize_e4m3(DType::bf16, dx.get(), 272, 3, 272, Fp8Blocks::row_1x128, xq.get(), 272, xs.as<float>(),
                            nullptr).ok());
  for (int h = 0; h < 2; ++h) {
    ASSERT_TRUE(quantize_e4m3(DType::bf16, static_cast<const char*>(dw.get()) + h * 200 * 272 * 2, 272, 200, 272,
                              Fp8Blocks::tile_128x128, static_cast<char*>(wq.get()) + h * 200 * 272, 272,
                              ws.as<float>() + h * 2 * 3, nullptr)
                    .ok());
  }
  Fp8Tensors t;
  t.x_scale = xs.as<float>();
  t.w_scale = ws.as<float>();
  const Status good = check_fp8_scales(p, t, nullptr);
  EXPECT_TRUE(good.ok()) << good.message;
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const struct {
    bool w;
    int index;
    float value;
    const char* says;
  } cases[] = {{false, 4, nan, "x_scale[4] (row 1, K block 1) is nan"},
               {false, 8, 0.0f, "x_scale[8] (row 2, K block 2) is 0"},
               {true, 7, inf, "w_scale[7] (Wb, row block 0, K block 1) is inf"},
               {true, 2, -1.0f, "w_scale[2] (Wa, row block 0, K block 2) is -1"}};
  for (const auto& c : cases) {
    float* where = (c.w ? ws.as<float>() : xs.as<float>()) + c.index;
    float kept = 0.0f;
    CUDA_CHECK(cudaMemcpy(&kept, where, 4, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(where, &c.value, 4, cudaMemcpyHostToDevice));
    const Status bad = check_fp8_scales(p, t, nullptr);
    EXPECT_EQ(bad.code, StatusCode::invalid_argument) << c.says;
    EXPECT_NE(bad.message.find(c.says), std::string::npos) << bad.message;
    Fp8Tensors one = t;  // the other operand alone passes
    (c.w ? one.w_scale : one.x_scale) = nullptr;
    EXPECT_TRUE(check_fp8_scales(p, one, nullptr).ok()) << c.says;
    CUDA_CHECK(cudaMemcpy(where, &kept, 4, cudaMemcpyHostToDevice));
  }
}

TEST(Fp8Quantize, MatchesTheHostBitForBit) {
  // The kernel's e4m3 bytes and scales against quantise() above (the same IEEE quotients), for
  // activations (1×128, bf16 and fp32) and weights (128×128, fp32 and fp16), with tails in both
  // dimensions, an all-zero block (scale 1) and a NaN (kept).
  struct Case {
    int64_t rows, cols;
    int block_rows;
    DType in;
  };
  // 1×128: vector loads and word stores where rows start aligned (cols a multiple of 4), element
  // by element where not (777), over a thousand thread blocks (4100 rows).
  const Case cases[] = {{3, 300, 1, DType::bf16},    {129, 128, 1, DType::f32}, {5, 777, 1, DType::bf16},
                        {4100, 160, 1, DType::f16}, {200, 272, 128, DType::f32}, {130, 1001, 128, DType::f16}};
  uint64_t seed = 70;
  for (const Case& c : cases) {
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) + " in " +
                             std::to_string(c.block_rows) + "x128 blocks, " + std::string(to_string(c.in));
    std::vector<float> v = common::uniform_values(static_cast<size_t>(c.rows * c.cols), -3, 3, ++seed, c.in);
    for (int64_t r = 0; r < std::min<int64_t>(c.rows, c.block_rows); ++r)
      for (int64_t k = 0; k < std::min<int64_t>(c.cols, 128); ++k) v[r * c.cols + k] = 0.0f;  // block (0, 0)
    v[v.size() - 1] = std::nanf("");
    const Quantised want = quantise(v, c.rows, c.cols, c.block_rows);
    const DeviceBuffer a = upload(common::to_dtype_bytes(v, c.in));
    DeviceBuffer q(want.q.size()), sc(want.scale.size() * sizeof(float));
    CUDA_CHECK(cudaMemset(q.get(), common::kPoisonByte, q.bytes()));
    CUDA_CHECK(cudaMemset(sc.get(), common::kPoisonByte, sc.bytes()));
    const Status st = quantize_e4m3(c.in, a.get(), c.cols, c.rows, c.cols,
                                    c.block_rows == 1 ? Fp8Blocks::row_1x128 : Fp8Blocks::tile_128x128, q.get(), c.cols,
                                    sc.as<float>(), nullptr);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    std::vector<uint8_t> got_q(want.q.size());
    std::vector<float> got_s(want.scale.size());
    CUDA_CHECK(cudaMemcpy(got_q.data(), q.get(), q.bytes(), cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(got_s.data(), sc.get(), sc.bytes(), cudaMemcpyDeviceToHost));
    EXPECT_EQ(got_s, want.scale) << what;
    EXPECT_EQ(got_q, want.q) << what;
    EXPECT_EQ(got_s[0], 1.0f) << what << ": an all-zero block's scale";
  }
}

// A development timing of the work in progress, not a test: disabled, run with
// --gtest_also_run_disabled_tests --gtest_filter='*Timing*'. The FP8 forward (bf16 Z, and e4m3 Z
// with its scales and amax) and the bf16 fused forward (the heuristic's tile) at the LLaMA shapes,
// interleaved, CUDA events, the L2
// flushed before each sample, median of 20 after 3 warm-ups; inputs: seeded e4m3 bytes (no NaN
// codes), scales 1.
// quantize_e4m3_transposed: q and its scales as quantise() of A, qt and its scales as quantise() of
// Aᵀ with the same block rows (for 128×128 blocks, q transposed), bit for bit; padded row strides
// (the bytes between rows left alone), tails, an all-zero block, a NaN; q may be left out.
TEST(Fp8Quantize, TransposedCopyMatchesTheHostBitForBit) {
  struct Case {
    int64_t rows, cols;
    int block_rows;
    DType in;
    bool with_q;
  };
  const Case cases[] = {{3, 300, 1, DType::bf16, true},   {129, 128, 1, DType::f32, true},
                        {300, 257, 1, DType::f16, false}, {200, 272, 128, DType::f32, true},
                        {130, 1001, 128, DType::f16, true}, {1, 1, 128, DType::bf16, true},
                        {1, 1, 1, DType::bf16, false},    {1024, 384, 1, DType::bf16, true}};
  uint64_t seed = 170;
  for (const Case& c : cases) {
    const std::string what = std::to_string(c.rows) + "x" + std::to_string(c.cols) + " in " +
                             std::to_string(c.block_rows) + "x128 blocks, " + std::string(to_string(c.in)) +
                             (c.with_q ? "" : ", no q");
    const int64_t lda = c.cols + 5, ldq = c.cols + 3, ldqt = c.rows + 7;
    std::vector<float> v = common::uniform_values(static_cast<size_t>(c.rows * c.cols), -3, 3, ++seed, c.in);
    for (int64_t r = 0; r < std::min<int64_t>(c.rows, 128); ++r)
      for (int64_t k = 0; k < std::min<int64_t>(c.cols, 128); ++k) v[r * c.cols + k] = 0.0f;  // a zero block
    if (v.size() > 1) v[v.size() - 1] = std::nanf("");
    std::vector<float> vt(v.size()), padded(static_cast<size_t>(c.rows * lda), 7.0f);
    for (int64_t r = 0; r < c.rows; ++r) {
      for (int64_t k = 0; k < c.cols; ++k) {
        vt[k * c.rows + r] = v[r * c.cols + k];
        padded[r * lda + k] = v[r * c.cols + k];
      }
    }
    const Quantised want = quantise(v, c.rows, c.cols, c.block_rows);
    const Quantised want_t = quantise(vt, c.cols, c.rows, c.block_rows);
    const DeviceBuffer a = upload(common::to_dtype_bytes(padded, c.in));
    DeviceBuffer q(static_cast<size_t>(c.rows * ldq)), sc(want.scale.size() * sizeof(float));
    DeviceBuffer qt(static_cast<size_t>(c.cols * ldqt)), sct(want_t.scale.size() * sizeof(float));
    for (DeviceBuffer* b : {&q, &sc, &qt, &sct}) CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
    const Status st = quantize_e4m3_transposed(
        c.in, a.get(), lda, c.rows, c.cols, c.block_rows == 1 ? Fp8Blocks::row_1x128 : Fp8Blocks::tile_128x128,
        c.with_q ? q.get() : nullptr, ldq, c.with_q ? sc.as<float>() : nullptr, qt.get(), ldqt, sct.as<float>(),
        nullptr);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    // Rows of `rows` bytes at stride ld out of a buffer, the padding checked untouched.
    const auto rows_of = [&](const DeviceBuffer& buf, int64_t n, int64_t len, int64_t ld) {
      const auto raw = download_raw<uint8_t>(buf, static_cast<size_t>(n * ld));
      std::vector<uint8_t> out;
      for (int64_t r = 0; r < n; ++r) {
        out.insert(out.end(), raw.begin() + r * ld, raw.begin() + r * ld + len);
        for (int64_t e = len; e < ld; ++e)
          if (raw[r * ld + e] != common::kPoisonByte) ADD_FAILURE() << what << ": padding written at row " << r;
      }
      return out;
    };
    EXPECT_EQ(rows_of(qt, c.cols, c.rows, ldqt), want_t.q) << what << ": qt";
    EXPECT_EQ(download_raw<float>(sct, want_t.scale.size()), want_t.scale) << what << ": scale_t";
    if (c.with_q) {
      EXPECT_EQ(rows_of(q, c.rows, c.cols, ldq), want.q) << what << ": q";
      EXPECT_EQ(download_raw<float>(sc, want.scale.size()), want.scale) << what << ": scale";
    } else {
      const auto untouched = download_raw<uint8_t>(q, q.bytes());
      EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](uint8_t b) { return b == common::kPoisonByte; }))
          << what << ": q written though not asked for";
    }
  }
}

// The FP8 backward's gate step (gate_backward_e4m3): dG = dZ·U·silu'(G) and dU = dZ·silu(G) from
// seeded bf16/fp16 dZ and H, against fp64, in e4m3 twice: dH with 1×128 scales along each half and
// dHᵀ with 1×128 scales along B, and the partial column sums (dbias). Each scale is its block's
// amax / 448 up to the fp32 arithmetic before it (a few ulps: 2^-20 relative), each dequantised
// element within e4m3's half-spacing (2^-4 relative, 2^-10·scale below the normal range) of the
// fp64 value plus that fp32 error; tails in B and D across 128, an all-zero row block (scale 1),
// padded row strides left alone, dH left out.
TEST(Fp8GateBackward, MatchesTheFp64ReferenceInBothLayouts) {
  struct Case {
    int64_t b, d;
    DType t;
    bool with_dh;
    bool aligned;  // dHᵀ's row stride a multiple of 16 (its 16-byte stores), else B + 16
  };
  const Case cases[] = {{1, 64, DType::bf16, true, false},     {130, 300, DType::bf16, true, false},
                        {257, 128, DType::f16, true, true},    {64, 1001, DType::bf16, false, false},
                        {300, 260, DType::f16, true, false},   {300, 272, DType::bf16, true, true},
                        {384, 1024, DType::bf16, false, true}, {129, 4096, DType::f16, true, true}};
  uint64_t seed = 4200;
  for (const Case& c : cases) {
    const int64_t B = c.b, D = c.d, db = (D + 127) / 128, rb = (B + 127) / 128;
    const std::string what = "B=" + std::to_string(B) + " D=" + std::to_string(D) + " " +
                             std::string(to_string(c.t)) + (c.with_dh ? "" : ", no dH") +
                             (c.aligned ? ", dHt stride aligned" : "");
    std::vector<float> dz = common::uniform_values(static_cast<size_t>(B * D), -1, 1, ++seed, c.t);
    const std::vector<float> g = common::uniform_values(static_cast<size_t>(B * D), -4, 4, ++seed, c.t);
    const std::vector<float> u = common::uniform_values(static_cast<size_t>(B * D), -2, 2, ++seed, c.t);
    if (B > 128) std::fill(dz.begin(), dz.begin() + 128 * D, 0.0f);  // row block 0 all zero
    std::vector<float> h(static_cast<size_t>(B * 2 * D));
    for (int64_t r = 0; r < B; ++r) {
      std::copy(g.begin() + r * D, g.begin() + (r + 1) * D, h.begin() + r * 2 * D);
      std::copy(u.begin() + r * D, u.begin() + (r + 1) * D, h.begin() + r * 2 * D + D);
    }
    // The fp64 dH, and each element's fp32 error: a few ulps (2^-20) of the magnitudes of its
    // terms, since 1 + g·(1 − s) cancels near silu's minimum (g ≈ −1.28), so that a tiny dG can be
    // off by far more than its own ulps.
    std::vector<double> ref(static_cast<size_t>(B * 2 * D)), err(ref.size());
    for (int64_t r = 0; r < B; ++r) {
      for (int64_t j = 0; j < D; ++j) {
        const double gv = g[r * D + j], uv = u[r * D + j], z = dz[r * D + j];
        const double s = 1.0 / (1.0 + std::exp(-gv));
        ref[r * 2 * D + j] = z * uv * s * (1.0 + gv * (1.0 - s));
        ref[r * 2 * D + D + j] = z * gv * s;
        err[r * 2 * D + j] = 0x1p-20 * std::fabs(z * uv) * s * (1.0 + std::fabs(gv));
        err[r * 2 * D + D + j] = 0x1p-20 * std::fabs(z * gv * s);
      }
    }
    const int64_t lddh = 2 * D + 16, lddht = c.aligned ? (B + 15) / 16 * 16 + 16 : B + 16;
    const DeviceBuffer ddz = upload(common::to_dtype_bytes(dz, c.t)), dh_in = upload(common::to_dtype_bytes(h, c.t));
    DeviceBuffer dq(static_cast<size_t>(B * lddh)), dqs(static_cast<size_t>(B * 2 * db) * 4);
    DeviceBuffer dqt(static_cast<size_t>(2 * D * lddht)), dqts(static_cast<size_t>(2 * D * rb) * 4);
    DeviceBuffer sums(static_cast<size_t>(rb * 2 * D) * 4);
    for (DeviceBuffer* b : {&dq, &dqs, &dqt, &dqts, &sums}) CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
    detail::Fp8GateBackward gb;
    gb.dtype = c.t;
    gb.dz = ddz.get();
    gb.lddz = D;
    gb.h = dh_in.get();
    gb.ldh = 2 * D;
    gb.rows = B;
    gb.d = D;
    if (c.with_dh) {
      gb.dh = dq.get();
      gb.dh_scale = dqs.as<float>();
    }
    gb.lddh = lddh;
    gb.dht = dqt.get();
    gb.lddht = lddht;
    gb.dht_scale = dqts.as<float>();
    gb.col_sums = sums.as<float>();
    const Status st = detail::gate_backward_e4m3(gb, nullptr);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    CUDA_CHECK(cudaDeviceSynchronize());

    // A block's scale against its fp64 amax, and an element against its fp64 value.
    int bad = 0;
    // amax_err: the largest fp32 error in the block, which moves its amax by as much.
    const auto check_scale = [&](float got, double amax, double amax_err, const char* where) {
      const double want = amax > 0 ? amax / kE4m3Max : 1.0;
      if (!(std::fabs(got - want) <= 0x1p-22 * want + amax_err / kE4m3Max) && bad++ < 5)
        ADD_FAILURE() << what << ": " << where << " scale " << got << ", want " << want;
    };
    const auto check_elem = [&](uint8_t byte, float s, size_t e, const char* where) {
      const double got = e4m3_value(byte) * s, want = ref[e];
      const double bound = 0x1p-4 * (std::fabs(want) + err[e]) + 0x1p-10 * s + err[e];
      if (!(std::fabs(got - want) <= bound) && bad++ < 5)
        ADD_FAILURE() << what << ": " << where << " " << got << ", want " << want;
    };
    // dH, 1×128 blocks along each half.
    if (c.with_dh) {
      const auto q = download_raw<uint8_t>(dq, dq.bytes());
      const auto qs = download_raw<float>(dqs, static_cast<size_t>(B * 2 * db));
      for (int64_t r = 0; r < B; ++r) {
        for (int64_t half = 0; half < 2; ++half) {
          for (int64_t kb = 0; kb < db; ++kb) {
            const int64_t c0 = half * D + kb * 128, c1 = half * D + std::min(D, (kb + 1) * 128);
            double amax = 0, amax_err = 0;
            for (int64_t j = c0; j < c1; ++j) {
              amax = std::max(amax, std::fabs(ref[r * 2 * D + j]));
              amax_err = std::max(amax_err, err[r * 2 * D + j]);
            }
            const float s = qs[r * 2 * db + half * db + kb];
            check_scale(s, amax, amax_err, "dH");
            for (int64_t j = c0; j < c1; ++j) check_elem(q[r * lddh + j], s, static_cast<size_t>(r * 2 * D + j), "dH");
          }
        }
        for (int64_t j = 2 * D; j < lddh; ++j)
          if (q[r * lddh + j] != common::kPoisonByte && bad++ < 5) ADD_FAILURE() << what << ": dH padding written";
      }
      if (B > 128) {
        EXPECT_EQ(qs[0], 1.0f) << what << ": an all-zero block's scale";
      }
    } else {
      const auto q = download_raw<uint8_t>(dq, dq.bytes());
      EXPECT_TRUE(std::all_of(q.begin(), q.end(), [](uint8_t b) { return b == common::kPoisonByte; }))
          << what << ": dH written though not asked for";
    }
    // dHᵀ, 1×128 blocks along B.
    const auto qt = download_raw<uint8_t>(dqt, dqt.bytes());
    const auto qts = download_raw<float>(dqts, static_cast<size_t>(2 * D * rb));
    for (int64_t j = 0; j < 2 * D; ++j) {
      for (int64_t b0 = 0; b0 < rb; ++b0) {
        double amax = 0, amax_err = 0;
        for (int64_t r = b0 * 128; r < std::min(B, (b0 + 1) * 128); ++r) {
          amax = std::max(amax, std::fabs(ref[r * 2 * D + j]));
          amax_err = std::max(amax_err, err[r * 2 * D + j]);
        }
        const float s = qts[j * rb + b0];
        check_scale(s, amax, amax_err, "dHt");
        for (int64_t r = b0 * 128; r < std::min(B, (b0 + 1) * 128); ++r)
          check_elem(qt[j * lddht + r], s, static_cast<size_t>(r * 2 * D + j), "dHt");
      }
      for (int64_t r = B; r < lddht; ++r)
        if (qt[j * lddht + r] != common::kPoisonByte && bad++ < 5) ADD_FAILURE() << what << ": dHt padding written";
    }
    // The partial column sums, added in fp64, against the fp64 column sums.
    const auto part = download_raw<float>(sums, static_cast<size_t>(rb * 2 * D));
    for (int64_t j = 0; j < 2 * D; ++j) {
      double got = 0, want = 0, mag = 0, elems = 0;
      for (int64_t b0 = 0; b0 < rb; ++b0) got += part[b0 * 2 * D + j];
      for (int64_t r = 0; r < B; ++r) {
        want += ref[r * 2 * D + j];
        mag += std::fabs(ref[r * 2 * D + j]);
        elems += err[r * 2 * D + j];
      }
      // fp32: each element off by its err, then at most 128 additions a tile, each 2^-24 of the sum.
      if (!(std::fabs(got - want) <= 130 * 0x1p-24 * mag + elems) && bad++ < 5)
        ADD_FAILURE() << what << ": column " << j << " sum " << got << ", want " << want;
    }
    EXPECT_EQ(bad, 0) << what;
  }
}

// The FP8 backward's GEMMs (fp8_gemm_sm90) against fp64 on the dequantised operands, with
// magnitudes that differ by row, by column and by 128-block, so that a scale read from the wrong
// row, column, block or segment shows:
//  - the dX shape: A = dH (B × 2D) with 1×128 scales along each half, B = W12ᵀ (I × 2D) with the
//    128×128 blocks of Wa and Wb, K in two segments of D; C in fp32 (and accumulated onto a
//    seeded C) and bf16;
//  - the dW shape: A = dHᵀ (2D × B), B = Xᵀ (I × B), both with 1×128 scales along B (per-row B
//    scales), one segment; C in fp32.
// Each element within the tensor cores' accumulation bound (tensor_core_dot, fp8_case.hpp) plus C's
// rounding (and the accumulation's add); tails in M, N and K across 128.
// rows×cols seeded values, row r scaled by 0.1 + (r % 7) / 7 and 128-column block b by
// {1, 0.3, 0.7}[b % 3]: magnitudes that show a scale read from the wrong row, column or block.
std::vector<float> skewed(int64_t rows, int64_t cols, uint64_t seed) {
  std::vector<float> v = common::uniform_values(static_cast<size_t>(rows * cols), -1, 1, seed, DType::f32);
  const float block[3] = {1.0f, 0.3f, 0.7f};
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) v[r * cols + c] *= (0.1f + static_cast<float>(r % 7) / 7.0f) * block[(c / 128) % 3];
  return v;
}

// C = A·Bᵀ (m×n) from row-major A (m×k) and B (n×k), in fp64, with each element's accumulation
// bound (tensor_core_dot, in wgmma order): K in segments of `segment` (the GEMM's K blocks start
// afresh at each), or one.
void gemm_reference(const std::vector<double>& a, const std::vector<double>& b, int64_t m, int64_t n, int64_t k,
                    int64_t segment, std::vector<double>* c, std::vector<double>* bound) {
  c->assign(static_cast<size_t>(m * n), 0.0);
  bound->assign(c->size(), 0.0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t l0 = 0; l0 < k; l0 += segment) {
        const TensorCoreDot d = tensor_core_dot(a.data() + i * k + l0, 1, b.data() + j * k + l0, 1,
                                                std::min(segment, k - l0), TensorCoreOrder::contiguous);
        (*c)[i * n + j] += d.sum;
        (*bound)[i * n + j] += d.bound;
      }
}

// Each element of an FP8 GEMM's C (+ c0 when accumulated) within its accumulation bound plus C's
// rounding (u_out, twice for safety) and the accumulation's add.
void expect_gemm_within(const std::string& what, const std::vector<float>& got, const std::vector<double>& want,
                        const std::vector<double>& acc_bound, double u_out, const std::vector<float>* c0) {
  int bad = 0;
  for (size_t e = 0; e < want.size(); ++e) {
    const double w = want[e] + (c0 != nullptr ? (*c0)[e] : 0.0);
    const double bound = acc_bound[e] + 2 * u_out * std::fabs(w) + 0x1p-24 * std::fabs(w);
    if (!(std::fabs(got[e] - w) <= bound) && bad++ < 5)
      ADD_FAILURE() << what << ": element " << e << " is " << got[e] << ", want " << w << " ± " << bound;
  }
  EXPECT_EQ(bad, 0) << what;
}

TEST(Fp8Gemm, MatchesTheFp64ReferenceOnTheDequantisedOperands) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 GEMMs need compute capability 9.0";
  uint64_t seed = 5100;
  // The dX shape.
  // 64×128→2048: one tile and 32 K steps, which with a split-K workspace run as two slices. 16-bit
  // C goes out through TMA stores where its rows are whole 16 bytes (I = 272, 128, 144), from
  // registers where not (I = 100).
  for (const auto& [B, I, D] : {std::tuple<int64_t, int64_t, int64_t>{130, 272, 208},
                                {64, 128, 256},
                                {1, 144, 16},
                                {64, 128, 2048},
                                {5, 100, 64}}) {
    const int64_t db = (D + 127) / 128, ib = (I + 127) / 128;
    const std::string what = "dX B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D);
    const std::vector<float> dh = skewed(B, 2 * D, ++seed), w = skewed(2 * D, I, ++seed);
    // dH's halves in 1×128 blocks, packed B × 2D with their scales [half 0 | half 1] a row.
    std::vector<uint8_t> aq(static_cast<size_t>(B * 2 * D));
    std::vector<float> as(static_cast<size_t>(B * 2 * db));
    std::vector<double> adeq(aq.size());
    // W12ᵀ: I × 2D, each half the transpose of Wa's (Wb's) 128×128 quantisation; the scales as Wa's
    // and Wb's own (row block of W, K block of W): for B = W12ᵀ, block (n / 128 = i-block, kb = d-block).
    std::vector<uint8_t> bq(static_cast<size_t>(I * 2 * D));
    std::vector<float> bs;
    std::vector<double> bdeq(bq.size());
    for (int64_t h = 0; h < 2; ++h) {
      std::vector<float> half(static_cast<size_t>(B * D)), wh(w.begin() + h * D * I, w.begin() + (h + 1) * D * I);
      for (int64_t r = 0; r < B; ++r)
        std::copy(dh.begin() + r * 2 * D + h * D, dh.begin() + r * 2 * D + (h + 1) * D, half.begin() + r * D);
      const Quantised qa = quantise(half, B, D, 1), qw = quantise(wh, D, I, 128);
      for (int64_t r = 0; r < B; ++r) {
        for (int64_t c = 0; c < D; ++c) {
          aq[r * 2 * D + h * D + c] = qa.q[r * D + c];
          adeq[r * 2 * D + h * D + c] = qa.deq[r * D + c];
        }
        for (int64_t kb = 0; kb < db; ++kb) as[r * 2 * db + h * db + kb] = qa.scale[r * db + kb];
      }
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t i = 0; i < I; ++i) {
          bq[i * 2 * D + h * D + d] = qw.q[d * I + i];
          bdeq[i * 2 * D + h * D + d] = qw.deq[d * I + i];
        }
      }
      bs.insert(bs.end(), qw.scale.begin(), qw.scale.end());  // db × ib, row-major
    }
    std::vector<double> ref, acc;
    gemm_reference(adeq, bdeq, B, I, 2 * D, D, &ref, &acc);
    const DeviceBuffer da = upload(aq), dbq = upload(bq), das = upload(as), dbs = upload(bs);
    const std::vector<float> c0 = common::uniform_values(static_cast<size_t>(B * I), -1, 1, ++seed, DType::f32);
    for (const auto& [out, accumulate, split] :
         {std::tuple<DType, bool, bool>{DType::f32, false, false}, {DType::f32, true, false}, {DType::bf16, false, false},
          {DType::f32, true, true}, {DType::bf16, false, true}}) {
      const std::string w2 = what + " " + std::string(to_string(out)) + (accumulate ? " accumulate" : "") +
                             (split ? " split-K workspace" : "");
      DeviceBuffer sw(std::max<size_t>(detail::fp8_gemm_split_bytes(B, I), 16));
      DeviceBuffer dc(static_cast<size_t>(B * I) * dtype_size(out));
      if (accumulate) {
        CUDA_CHECK(cudaMemcpy(dc.get(), c0.data(), dc.bytes(), cudaMemcpyHostToDevice));
      } else {
        CUDA_CHECK(cudaMemset(dc.get(), common::kPoisonByte, dc.bytes()));
      }
      detail::Fp8Gemm g;
      g.m = B;
      g.n = I;
      g.k = D;
      g.segments = 2;
      g.a[0] = da.get();
      g.a[1] = da.as<uint8_t>() + D;
      g.b[0] = dbq.get();
      g.b[1] = dbq.as<uint8_t>() + D;
      g.lda = 2 * D;
      g.ldb = 2 * D;
      g.a_scale = das.as<float>();
      g.a_seg = db;
      g.a_m = 2 * db;
      g.a_kb = 1;
      g.b_scale = dbs.as<float>();
      g.b_seg = db * ib;
      g.b_n = 1;
      g.b_kb = ib;
      g.out = out;
      g.c = dc.get();
      g.ldc = I;
      g.accumulate = accumulate;
      if (split) g.split_workspace = sw.get();
      const Status st = detail::fp8_gemm_sm90(g, nullptr);
      ASSERT_TRUE(st.ok()) << w2 << ": " << st.message;
      CUDA_CHECK(cudaDeviceSynchronize());
      const double u_out = out == DType::f32 ? 0x1p-24 : 0x1p-8;
      expect_gemm_within(w2, download(dc, static_cast<size_t>(B * I), out), ref, acc, u_out, accumulate ? &c0 : nullptr);
    }
  }
  // The dW shape: K = B tokens, per-row scales on both sides.
  for (const auto& [B, I, D] : {std::tuple<int64_t, int64_t, int64_t>{272, 144, 104}, {16, 256, 64}}) {
    const int64_t rb = (B + 127) / 128;
    const std::string what = "dW B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D);
    const std::vector<float> dht = transpose(skewed(B, 2 * D, ++seed), B, 2 * D);  // 2D × B
    const std::vector<float> xt = transpose(skewed(B, I, ++seed), B, I);           // I × B
    const Quantised qa = quantise(dht, 2 * D, B, 1), qb = quantise(xt, I, B, 1);
    std::vector<double> ref, acc;
    gemm_reference(qa.deq, qb.deq, 2 * D, I, B, B, &ref, &acc);
    const DeviceBuffer da = upload(qa.q), dbq = upload(qb.q), das = upload(qa.scale), dbs = upload(qb.scale);
    for (const DType out : {DType::f32, DType::bf16}) {
      const std::string w2 = what + " " + std::string(to_string(out));
      DeviceBuffer dc(static_cast<size_t>(2 * D * I) * dtype_size(out));
      CUDA_CHECK(cudaMemset(dc.get(), common::kPoisonByte, dc.bytes()));
      detail::Fp8Gemm g;
      g.m = 2 * D;
      g.n = I;
      g.k = B;
      g.a[0] = da.get();
      g.b[0] = dbq.get();
      g.lda = B;
      g.ldb = B;
      g.a_scale = das.as<float>();
      g.a_m = rb;
      g.a_kb = 1;
      g.b_scale = dbs.as<float>();
      g.b_n = rb;
      g.b_kb = 1;
      g.b_rows = true;
      g.out = out;
      g.c = dc.get();
      g.ldc = I;
      const Status st = detail::fp8_gemm_sm90(g, nullptr);
      ASSERT_TRUE(st.ok()) << w2 << ": " << st.message;
      CUDA_CHECK(cudaDeviceSynchronize());
      expect_gemm_within(w2, download(dc, static_cast<size_t>(2 * D * I), out), ref, acc,
                         out == DType::f32 ? 0x1p-24 : 0x1p-8, nullptr);
    }
  }
}

// The whole FP8 backward (backward_fp8_sm90) from seeded dZ and H and the forward's operands in
// their transposed e4m3 copies (W12ᵀ from Wa's and Wb's 128×128 blocks, Xᵀ in 1×128 blocks along
// B): dX and dW12 against fp64 on the dequantised operands (the dH and dHᵀ the workspace holds
// afterwards, whose own error test Fp8GateBackward bounds), as Fp8Gemm's test bounds them; dW12
// also accumulated onto a seeded one; dbias against fp64 from dZ and H. Tails in B, I and D.
TEST(Fp8Backward, MatchesTheFp64ReferenceOnTheDequantisedOperands) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 backward needs compute capability 9.0";
  uint64_t seed = 6100;
  for (const auto& [B, I, D] : {std::tuple<int64_t, int64_t, int64_t>{130, 272, 208}, {16, 128, 64}, {1, 144, 16}}) {
    const int64_t db = (D + 127) / 128, ib = (I + 127) / 128, rb = (B + 127) / 128, ldxt = (B + 15) / 16 * 16;
    const std::string what = "B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D);
    const std::vector<float> x = skewed(B, I, ++seed), w = skewed(2 * D, I, ++seed);
    const std::vector<float> dz = common::uniform_values(static_cast<size_t>(B * D), -1, 1, ++seed, DType::bf16);
    const std::vector<float> h = common::uniform_values(static_cast<size_t>(B * 2 * D), -3, 3, ++seed, DType::bf16);
    // Xᵀ (I × B, row stride ldxt) in 1×128 blocks along B.
    const Quantised xtq = quantise(transpose(x, B, I), I, B, 1);
    std::vector<uint8_t> xt(static_cast<size_t>(I * ldxt), 0);
    for (int64_t i = 0; i < I; ++i) std::copy(xtq.q.begin() + i * B, xtq.q.begin() + (i + 1) * B, xt.begin() + i * ldxt);
    // W12ᵀ (I × 2D): each half Wa's (Wb's) 128×128 quantisation transposed, the scales too.
    std::vector<uint8_t> w12t(static_cast<size_t>(I * 2 * D));
    std::vector<float> w12t_scale;
    std::vector<double> wdeq(static_cast<size_t>(2 * D * I));
    for (int64_t half = 0; half < 2; ++half) {
      const std::vector<float> wh(w.begin() + half * D * I, w.begin() + (half + 1) * D * I);
      const Quantised q = quantise(wh, D, I, 128);
      for (int64_t d = 0; d < D; ++d) {
        for (int64_t i = 0; i < I; ++i) {
          w12t[i * 2 * D + half * D + d] = q.q[d * I + i];
          wdeq[(half * D + d) * I + i] = q.deq[d * I + i];
        }
      }
      const std::vector<float> st = transpose(q.scale, db, ib);  // ib × db
      w12t_scale.insert(w12t_scale.end(), st.begin(), st.end());
    }
    const DeviceBuffer ddz = upload(common::to_dtype_bytes(dz, DType::bf16));
    const DeviceBuffer dh = upload(common::to_dtype_bytes(h, DType::bf16));
    const DeviceBuffer dw12t = upload(w12t), dw12ts = upload(w12t_scale), dxt = upload(xt), dxts = upload(xtq.scale);
    const detail::Fp8BackwardWorkspace layout = detail::fp8_backward_workspace(B, I, D);
    DeviceBuffer ws(layout.bytes);
    CUDA_CHECK(cudaMemset(ws.get(), common::kPoisonByte, ws.bytes()));
    DeviceBuffer ddx(static_cast<size_t>(B * I) * 2), ddw(static_cast<size_t>(2 * D * I) * 4),
        ddb(static_cast<size_t>(2 * D) * 4);
    const std::vector<float> dw0 = common::uniform_values(static_cast<size_t>(2 * D * I), -1, 1, ++seed, DType::f32);
    for (const bool accumulate : {false, true}) {
      const std::string w2 = what + (accumulate ? " accumulate" : "");
      CUDA_CHECK(cudaMemset(ddx.get(), common::kPoisonByte, ddx.bytes()));
      CUDA_CHECK(cudaMemset(ddb.get(), common::kPoisonByte, ddb.bytes()));
      if (accumulate) {
        CUDA_CHECK(cudaMemcpy(ddw.get(), dw0.data(), ddw.bytes(), cudaMemcpyHostToDevice));
      } else {
        CUDA_CHECK(cudaMemset(ddw.get(), common::kPoisonByte, ddw.bytes()));
      }
      detail::Fp8Backward b;
      b.rows = B;
      b.in = I;
      b.d = D;
      b.dz = ddz.get();
      b.h = dh.get();
      b.w12t = dw12t.get();
      b.w12t_scale = dw12ts.as<float>();
      b.xt = dxt.get();
      b.ldxt = ldxt;
      b.xt_scale = dxts.as<float>();
      b.dx = ddx.get();
      b.dw = ddw.get();
      b.accumulate = accumulate;
      b.dbias = ddb.get();
      const Status st = detail::backward_fp8_sm90(b, ws.get(), ws.bytes(), nullptr);
      ASSERT_TRUE(st.ok()) << w2 << ": " << st.message;
      CUDA_CHECK(cudaDeviceSynchronize());
      // The dH and dHᵀ the GEMMs read, dequantised.
      const auto raw = download_raw<uint8_t>(ws, ws.bytes());
      const auto f32_at = [&](size_t off, int64_t i) {
        float v;
        std::memcpy(&v, raw.data() + off + 4 * i, 4);
        return v;
      };
      std::vector<double> dh_deq(static_cast<size_t>(B * 2 * D)), dht_deq(static_cast<size_t>(2 * D * B));
      for (int64_t r = 0; r < B; ++r)
        for (int64_t j = 0; j < 2 * D; ++j)
          dh_deq[r * 2 * D + j] =
              e4m3_value(raw[layout.dh + r * 2 * D + j]) * f32_at(layout.dh_scale, r * 2 * db + (j / D) * db + (j % D) / 128);
      for (int64_t j = 0; j < 2 * D; ++j)
        for (int64_t r = 0; r < B; ++r)
          dht_deq[j * B + r] = e4m3_value(raw[layout.dht + j * layout.lddht + r]) * f32_at(layout.dht_scale, j * rb + r / 128);
      // dX = Σ over K = 2D of dH·W12: B operand rows are W12ᵀ's, i.e. W12's columns.
      std::vector<double> ref, acc;
      gemm_reference(dh_deq, transpose(wdeq, 2 * D, I), B, I, 2 * D, D, &ref, &acc);
      expect_gemm_within(w2 + " dX", download(ddx, static_cast<size_t>(B * I), DType::bf16), ref, acc, 0x1p-8, nullptr);
      std::vector<double> xt_deq(static_cast<size_t>(I * B));
      for (size_t e = 0; e < xt_deq.size(); ++e) xt_deq[e] = xtq.deq[e];
      gemm_reference(dht_deq, xt_deq, 2 * D, I, B, B, &ref, &acc);
      expect_gemm_within(w2 + " dW", download(ddw, static_cast<size_t>(2 * D * I), DType::f32), ref, acc, 0x1p-24,
                         accumulate ? &dw0 : nullptr);
      // dbias: fp64 from dZ and H, within the fp32 sums' error (as Fp8GateBackward's test).
      const auto got_b = download(ddb, static_cast<size_t>(2 * D), DType::f32);
      int bad = 0;
      for (int64_t j = 0; j < 2 * D; ++j) {
        double want = 0, bound = 0;
        for (int64_t r = 0; r < B; ++r) {
          const int64_t c = j % D;
          const double gv = h[r * 2 * D + c], uv = h[r * 2 * D + D + c], z = dz[r * D + c];
          const double sg = 1.0 / (1.0 + std::exp(-gv));
          const double v = j < D ? z * uv * sg * (1.0 + gv * (1.0 - sg)) : z * gv * sg;
          want += v;
          bound += 130 * 0x1p-24 * std::fabs(v) + 0x1p-20 * std::fabs(z) * (std::fabs(uv) + 1.0) * (1.0 + std::fabs(gv));
        }
        if (!(std::fabs(got_b[j] - want) <= bound) && bad++ < 5)
          ADD_FAILURE() << w2 << ": dbias[" << j << "] " << got_b[j] << ", want " << want;
      }
      EXPECT_EQ(bad, 0) << w2 << " dbias";
    }
  }
}

// backward_fp8, the public entry point, from its operands made as its header says: the transposed
// copies quantize_e4m3_transposed writes of Wa and Wb (128×128 blocks, into W12ᵀ's two column
// halves) and of X (1×128 blocks, Xᵀ's rows padded to a multiple of 16), and H from forward_fp8.
// The copies match the host quantiser bit for bit (the layout the header documents); the gradients
// match backward_fp8_sm90's on the same operands bit for bit (that test holds it to fp64), in two
// sets of output dtypes and with dW accumulated; B = 0 zeroes dW and dbias and leaves dX alone.
TEST(Fp8Backward, PublicEntryPointOnTheQuantisersCopies) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 backward needs compute capability 9.0";
  const int64_t B = 130, I = 272, D = 208;
  const int64_t db = (D + 127) / 128, ib = (I + 127) / 128, rb = (B + 127) / 128, ldxt = (B + 15) / 16 * 16;
  uint64_t seed = 6300;
  const std::vector<float> x = common::uniform_values(static_cast<size_t>(B * I), -1, 1, ++seed, DType::bf16);
  const std::vector<float> w = common::uniform_values(static_cast<size_t>(2 * D * I), -0.1f, 0.1f, ++seed, DType::bf16);
  const std::vector<float> dz = common::uniform_values(static_cast<size_t>(B * D), -1, 1, ++seed, DType::bf16);
  const DeviceBuffer xin = upload(common::to_dtype_bytes(x, DType::bf16)), win = upload(common::to_dtype_bytes(w, DType::bf16));
  const DeviceBuffer ddz = upload(common::to_dtype_bytes(dz, DType::bf16));
  DeviceBuffer xq(static_cast<size_t>(B * I)), xs(static_cast<size_t>(B * ib) * 4), xt(static_cast<size_t>(I * ldxt)),
      xts(static_cast<size_t>(I * rb) * 4);
  DeviceBuffer wq(static_cast<size_t>(2 * D * I)), wsc(static_cast<size_t>(2 * db * ib) * 4),
      wt(static_cast<size_t>(I * 2 * D)), wts(static_cast<size_t>(2 * ib * db) * 4);
  for (DeviceBuffer* b : {&xt, &wt, &wts}) CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
  Status st = quantize_e4m3_transposed(DType::bf16, xin.get(), I, B, I, Fp8Blocks::row_1x128, xq.get(), I, xs.as<float>(),
                                       xt.get(), ldxt, xts.as<float>(), nullptr);
  ASSERT_TRUE(st.ok()) << st.message;
  for (int64_t half = 0; half < 2; ++half) {
    st = quantize_e4m3_transposed(DType::bf16, static_cast<const uint16_t*>(win.get()) + half * D * I, I, D, I,
                                  Fp8Blocks::tile_128x128, static_cast<uint8_t*>(wq.get()) + half * D * I, I,
                                  wsc.as<float>() + half * db * ib, static_cast<uint8_t*>(wt.get()) + half * D, 2 * D,
                                  wts.as<float>() + half * ib * db, nullptr);
    ASSERT_TRUE(st.ok()) << st.message;
  }
  // The forward (no bias), keeping H.
  Fp8Problem p;
  p.batch = B;
  p.in_features = I;
  p.hidden = D;
  DeviceBuffer h(static_cast<size_t>(B * 2 * D) * 2);
  Fp8Tensors ft;
  ft.x = xq.get();
  ft.x_scale = xs.as<float>();
  ft.w = wq.get();
  ft.w_scale = wsc.as<float>();
  ft.saved = h.get();
  st = forward_fp8(p, ft, nullptr);
  ASSERT_TRUE(st.ok()) << st.message;
  CUDA_CHECK(cudaDeviceSynchronize());

  // The copies, against the host quantiser: Xᵀ in 1×128 blocks along B, W12ᵀ from each half's
  // 128×128 blocks transposed.
  const Quantised xtq = quantise(transpose(x, B, I), I, B, 1);
  const auto xt_raw = download_raw<uint8_t>(xt, xt.bytes());
  std::vector<uint8_t> xt_rows;
  for (int64_t i = 0; i < I; ++i) xt_rows.insert(xt_rows.end(), xt_raw.begin() + i * ldxt, xt_raw.begin() + i * ldxt + B);
  EXPECT_EQ(xt_rows, xtq.q) << "X^T";
  EXPECT_EQ(download_raw<float>(xts, xtq.scale.size()), xtq.scale) << "X^T's scales";
  std::vector<uint8_t> w12t(static_cast<size_t>(I * 2 * D));
  std::vector<float> w12t_scale;
  for (int64_t half = 0; half < 2; ++half) {
    const Quantised q = quantise(std::vector<float>(w.begin() + half * D * I, w.begin() + (half + 1) * D * I), D, I, 128);
    for (int64_t d = 0; d < D; ++d)
      for (int64_t i = 0; i < I; ++i) w12t[i * 2 * D + half * D + d] = q.q[d * I + i];
    const std::vector<float> sct = transpose(q.scale, db, ib);
    w12t_scale.insert(w12t_scale.end(), sct.begin(), sct.end());
  }
  EXPECT_EQ(download_raw<uint8_t>(wt, wt.bytes()), w12t) << "W12^T";
  EXPECT_EQ(download_raw<float>(wts, w12t_scale.size()), w12t_scale) << "W12^T's scales";

  // The gradients: the public call and the internal one, each into its own poisoned outputs.
  p.bias = true;  // for dbias (the forward ran without one: H is what it is)
  const size_t ws_bytes = backward_fp8_workspace_bytes(p);
  ASSERT_EQ(ws_bytes, detail::fp8_backward_workspace(B, I, D).bytes);
  DeviceBuffer ws(ws_bytes);
  const std::vector<float> dw0 = common::uniform_values(static_cast<size_t>(2 * D * I), -1, 1, ++seed, DType::f32);
  struct Dtypes {
    DType dx, dw, dbias;
    bool accumulate;
  };
  for (const Dtypes& o : {Dtypes{DType::bf16, DType::f32, DType::f32, false}, Dtypes{DType::f32, DType::bf16, DType::f16, false},
                          Dtypes{DType::bf16, DType::f32, DType::f32, true}}) {
    const std::string what = std::string(to_string(o.dx)) + "/" + std::string(to_string(o.dw)) + "/" +
                             std::string(to_string(o.dbias)) + (o.accumulate ? " accumulate" : "");
    const size_t nx = static_cast<size_t>(B * I) * dtype_size(o.dx), nw = static_cast<size_t>(2 * D * I) * dtype_size(o.dw),
                 nb = static_cast<size_t>(2 * D) * dtype_size(o.dbias);
    DeviceBuffer gx[2] = {DeviceBuffer(nx), DeviceBuffer(nx)}, gw[2] = {DeviceBuffer(nw), DeviceBuffer(nw)},
                 gb[2] = {DeviceBuffer(nb), DeviceBuffer(nb)};
    for (int k = 0; k < 2; ++k) {
      for (DeviceBuffer* b : {&gx[k], &gw[k], &gb[k]}) CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
      if (o.accumulate) CUDA_CHECK(cudaMemcpy(gw[k].get(), dw0.data(), gw[k].bytes(), cudaMemcpyHostToDevice));
    }
    Fp8BackwardTensors t;
    t.dz = ddz.get();
    t.saved = h.get();
    t.wt = wt.get();
    t.wt_scale = wts.as<float>();
    t.xt = xt.get();
    t.ldxt = ldxt;
    t.xt_scale = xts.as<float>();
    t.dx = gx[0].get();
    t.dx_dtype = o.dx;
    t.dw = gw[0].get();
    t.dw_dtype = o.dw;
    t.accumulate_dw = o.accumulate;
    t.dbias = gb[0].get();
    t.dbias_dtype = o.dbias;
    st = backward_fp8(p, t, ws.get(), ws.bytes(), nullptr);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    detail::Fp8Backward b;
    b.rows = B;
    b.in = I;
    b.d = D;
    b.dz = ddz.get();
    b.h = h.get();
    b.w12t = wt.get();
    b.w12t_scale = wts.as<float>();
    b.xt = xt.get();
    b.ldxt = ldxt;
    b.xt_scale = xts.as<float>();
    b.dx = gx[1].get();
    b.dx_dtype = o.dx;
    b.dw = gw[1].get();
    b.dw_dtype = o.dw;
    b.accumulate = o.accumulate;
    b.dbias = gb[1].get();
    b.dbias_dtype = o.dbias;
    st = detail::backward_fp8_sm90(b, ws.get(), ws.bytes(), nullptr);
    ASSERT_TRUE(st.ok()) << what << ": " << st.message;
    CUDA_CHECK(cudaDeviceSynchronize());
    for (const auto& [name, pair] : {std::pair{"dX", gx}, std::pair{"dW", gw}, std::pair{"dbias", gb}}) {
      const auto a = download_raw<uint8_t>(pair[0], pair[0].bytes()), c = download_raw<uint8_t>(pair[1], pair[1].bytes());
      EXPECT_EQ(a, c) << what << ": " << name << " differs from backward_fp8_sm90's";
      EXPECT_TRUE(std::any_of(a.begin(), a.end(), [](uint8_t v) { return v != common::kPoisonByte; }))
          << what << ": " << name << " not written";
    }
  }

  // B = 0: dW and dbias zeroed, dX untouched.
  Fp8Problem p0 = p;
  p0.batch = 0;
  DeviceBuffer zx(64), zw(static_cast<size_t>(2 * D * I) * 4), zb(static_cast<size_t>(2 * D) * 4);
  for (DeviceBuffer* b : {&zx, &zw, &zb}) CUDA_CHECK(cudaMemset(b->get(), common::kPoisonByte, b->bytes()));
  Fp8BackwardTensors t0;
  t0.dx = zx.get();
  t0.dw = zw.get();
  t0.dbias = zb.get();
  st = backward_fp8(p0, t0, nullptr, 0, nullptr);
  ASSERT_TRUE(st.ok()) << st.message;
  CUDA_CHECK(cudaDeviceSynchronize());
  const auto all = [](const std::vector<uint8_t>& v, uint8_t want) {
    return std::all_of(v.begin(), v.end(), [want](uint8_t e) { return e == want; });
  };
  EXPECT_TRUE(all(download_raw<uint8_t>(zw, zw.bytes()), 0)) << "B = 0: dW";
  EXPECT_TRUE(all(download_raw<uint8_t>(zb, zb.bytes()), 0)) << "B = 0: dbias";
  EXPECT_TRUE(all(download_raw<uint8_t>(zx, zx.bytes()), common::kPoisonByte)) << "B = 0: dX written";
}

// A measurement, not a test (disabled; run with --gtest_also_run_disabled_tests
// --gtest_filter='*Accumulation*'): how many bits the FP8 tensor cores keep of a sum, the basis
// kTensorCoreUlp rests on (fp8_case.hpp). One K block of 128 through fp8_gemm_sm90 (M = N = 1, scales 1):
// A = [1, 2^-q, ..., 2^-q] (the large term first, or last), B = [1, 2^-r, ..., 2^-r], so that
// C = 1 + 127·2^-p exactly, p = q + r. The kept fraction (C − 1) / (127·2^-p) says whether
// products 2^-p below the largest survive (1), are rounded or truncated away (0), or partly;
// and C − 1 − 127·2^-p's sign says which way.
TEST(Fp8Gemm, DISABLED_AccumulationProbe) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 GEMMs need compute capability 9.0";
  const auto e4m3 = [](double v) { return __nv_fp8_e4m3(static_cast<float>(v)).__x; };
  for (const bool last : {false, true}) {
    for (int p = 6; p <= 18; ++p) {
      const int q = p / 2, r = p - q;  // 2^-q and 2^-r are e4m3 values (down to 2^-9)
      std::vector<uint8_t> a(128), b(128);
      const int big = last ? 127 : 0;
      for (int k = 0; k < 128; ++k) {
        a[k] = k == big ? e4m3(1.0) : e4m3(std::ldexp(1.0, -q));
        b[k] = k == big ? e4m3(1.0) : e4m3(std::ldexp(1.0, -r));
      }
      const DeviceBuffer da = upload(a), db = upload(b), ones = upload(std::vector<float>(16, 1.0f));
      DeviceBuffer dc(16);
      detail::Fp8Gemm g;
      g.m = 1;
      g.n = 1;
      g.k = 128;
      g.a[0] = da.get();
      g.b[0] = db.get();
      g.lda = 128;
      g.ldb = 128;
      g.a_scale = ones.as<float>();
      g.b_scale = ones.as<float>();
      g.out = DType::f32;
      g.c = dc.get();
      g.ldc = 1;
      ASSERT_TRUE(detail::fp8_gemm_sm90(g, nullptr).ok());
      CUDA_CHECK(cudaDeviceSynchronize());
      const float c = download_raw<float>(dc, 1)[0];
      const double small = 127 * std::ldexp(1.0, -p);
      std::printf("large term %s  p=%2d  C-1=%.9g  exact %.9g  kept %.4f\n", last ? "last " : "first", p, c - 1.0,
                  small, (c - 1.0) / small);
    }
  }
}

TEST(Fp8Forward, DISABLED_TimingAtTheLlamaShapes) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 forward needs compute capability 9.0";
  const Shape shapes[] = {{4096, 4096, 11008}, {8192, 4096, 14336}, {16384, 8192, 28672}};
  int l2 = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  DeviceBuffer flush(static_cast<size_t>(2 * l2));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (const Shape& s : shapes) {
    const int64_t B = s.b, I = s.i, D = s.d;
    std::vector<uint8_t> bytes(static_cast<size_t>(std::max(B * I, 2 * D * I)));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint8_t& v : bytes) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v = static_cast<uint8_t>(x >> 56);
      if ((v & 0x7F) == 0x7F) v = 0;  // e4m3's NaN codes
    }
    const DeviceBuffer xq = upload(std::vector<uint8_t>(bytes.begin(), bytes.begin() + B * I));
    const DeviceBuffer wq = upload(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 2 * D * I));
    const int64_t kb = (I + 127) / 128, db = (D + 127) / 128;
    const DeviceBuffer xs = upload(std::vector<float>(static_cast<size_t>(B * kb), 1.0f));
    const DeviceBuffer ws = upload(std::vector<float>(static_cast<size_t>(2 * db * kb), 1.0f));
    DeviceBuffer z(static_cast<size_t>(B * D) * 2);
    // The bf16 operands: the same bytes read as bf16 (their values do not matter to the time).
    DeviceBuffer xb(static_cast<size_t>(B * I) * 2), wb(static_cast<size_t>(2 * D * I) * 2);
    CUDA_CHECK(cudaMemset(xb.get(), 0x3c, xb.bytes()));
    CUDA_CHECK(cudaMemset(wb.get(), 0x3c, wb.bytes()));
    const kernels::Fp8FwdParams q = block_params(B, I, D, xq, wq, xs, ws, z);
    Problem p;
    p.batch = B;
    p.in_features = I;
    p.hidden = D;
    p.dtype = DType::bf16;
    DeviceBuffer zs(static_cast<size_t>(B * ((D + 127) / 128)) * 4), amax(16);
    kernels::Fp8FwdParams qz = q;
    qz.z_scale = zs.as<float>();
    qz.z_amax = amax.as<float>();
    // The e4m3-Z forward in clusters of one and of two blocks, to set fp8_forward_cluster's rule.
    auto run_fp8 = [&] { ASSERT_TRUE(detail::fp8_forward_sm90(q, DType::bf16, false, nullptr).ok()); };
    auto run_fp8z = [&](int c) { ASSERT_TRUE(detail::fp8_forward_sm90(qz, DType::bf16, true, nullptr, c).ok()); };
    auto run_bf16 = [&] { ASSERT_TRUE(forward(p, xb.get(), wb.get(), nullptr, z.get(), nullptr).ok()); };
    std::vector<float> t[4];
    for (int rep = 0; rep < 23; ++rep) {
      for (int v = 0; v < 4; ++v) {
        CUDA_CHECK(cudaMemsetAsync(flush.get(), rep, flush.bytes(), nullptr));
        CUDA_CHECK(cudaEventRecord(start, nullptr));
        if (v == 0) run_fp8(); else if (v == 1) run_fp8z(1); else if (v == 2) run_fp8z(2); else run_bf16();
        CUDA_CHECK(cudaEventRecord(stop, nullptr));
        CUDA_CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
        if (rep >= 3) t[v].push_back(ms);
      }
    }
    double med[4];
    for (int v = 0; v < 4; ++v) {
      std::sort(t[v].begin(), t[v].end());
      med[v] = t[v][t[v].size() / 2];
    }
    const double flops = 2.0 * B * I * 2 * D;
    std::printf("B=%lld I=%lld D=%lld  fp8 (bf16 Z, auto) %.3f ms %.0f TFLOP/s  fp8 (e4m3 Z) cluster 1 %.3f ms "
                "%.0f TFLOP/s, cluster 2 %.3f ms %.0f TFLOP/s  bf16 %.3f ms %.0f TFLOP/s  e4m3-Z (cluster 2)/bf16 "
                "speedup %.2fx\n",
                static_cast<long long>(B), static_cast<long long>(I), static_cast<long long>(D), med[0],
                flops / med[0] / 1e9, med[1], flops / med[1] / 1e9, med[2], flops / med[2] / 1e9, med[3],
                flops / med[3] / 1e9, med[3] / med[2]);
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
}

// A development timing, disabled as the one above: the decode kernel (clusters of 1, 2 and 4 for
// an e4m3 Z) against the 128-row tiles at small B, to set kFp8DecodeMaxBatch and
// kFp8DecodeCluster. GB/s counts W12's bytes only (what a small batch streams).
TEST(Fp8Forward, DISABLED_TimingOfTheDecodeKernel) {
  if (!on_hopper()) GTEST_SKIP() << "the FP8 forward needs compute capability 9.0";
  int l2 = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0));
  DeviceBuffer flush(static_cast<size_t>(2 * l2));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  for (const auto& [I, D] : {std::pair<int64_t, int64_t>{4096, 14336}, {8192, 28672}}) {
    std::vector<uint8_t> bytes(static_cast<size_t>(2 * D * I));
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (uint8_t& v : bytes) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      v = static_cast<uint8_t>(x >> 56);
      if ((v & 0x7F) == 0x7F) v = 0;  // e4m3's NaN codes
    }
    const DeviceBuffer wq = upload(bytes);
    for (const int64_t B : {1, 4, 8, 16, 32}) {
      const DeviceBuffer xq = upload(std::vector<uint8_t>(bytes.begin(), bytes.begin() + B * I));
      const int64_t kb = (I + 127) / 128, db = (D + 127) / 128;
      const DeviceBuffer xs = upload(std::vector<float>(static_cast<size_t>(B * kb), 1.0f));
      const DeviceBuffer ws = upload(std::vector<float>(static_cast<size_t>(2 * db * kb), 1.0f));
      DeviceBuffer z(static_cast<size_t>(B * D) * 2), zs(static_cast<size_t>(B * db) * 4), amax(16);
      kernels::Fp8FwdParams q = block_params(B, I, D, xq, wq, xs, ws, z);
      kernels::Fp8FwdParams qz = q;
      qz.z_scale = zs.as<float>();
      qz.z_amax = amax.as<float>();
      using detail::Fp8Kernel;
      // Variants: e4m3 Z by the tiles, by the decode kernel in clusters of 1, 2, 4; bf16 Z by each.
      const auto run = [&](int v) {
        const Status st =
            v < 4 ? detail::fp8_forward_sm90(qz, DType::bf16, true, nullptr, v == 0 ? 0 : (v == 3 ? 4 : v),
                                             v == 0 ? Fp8Kernel::tiles : Fp8Kernel::decode)
                  : detail::fp8_forward_sm90(q, DType::bf16, false, nullptr, 0,
                                             v == 4 ? Fp8Kernel::tiles : Fp8Kernel::decode);
        ASSERT_TRUE(st.ok()) << st.message;
      };
      constexpr int kVariants = 6;
      std::vector<float> t[kVariants];
      for (int rep = 0; rep < 23; ++rep) {
        for (int v = 0; v < kVariants; ++v) {
          CUDA_CHECK(cudaMemsetAsync(flush.get(), rep, flush.bytes(), nullptr));
          CUDA_CHECK(cudaEventRecord(start, nullptr));
          run(v);
          CUDA_CHECK(cudaEventRecord(stop, nullptr));
          CUDA_CHECK(cudaEventSynchronize(stop));
          float ms = 0;
          CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
          if (rep >= 3) t[v].push_back(ms);
        }
      }
      std::string line = "B=" + std::to_string(B) + " I=" + std::to_string(I) + " D=" + std::to_string(D) + " W GB/s:";
      const char* names[kVariants] = {"e4m3Z tiles", "decode c1", "decode c2", "decode c4", "bf16Z tiles", "decode"};
      for (int v = 0; v < kVariants; ++v) {
        std::sort(t[v].begin(), t[v].end());
        const double ms = t[v][t[v].size() / 2];
        char buf[96];
        std::snprintf(buf, sizeof(buf), " %s %.1f us %.0f", names[v], ms * 1e3, 2.0 * D * I / ms / 1e6);
        line += buf;
      }
      std::printf("%s\n", line.c_str());
    }
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
}

}  // namespace
}  // namespace swiglu::test
