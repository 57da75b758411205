// Shared by the FP8 GPU tests (test_fp8_gpu, test_fp8_baselines_gpu): the host e4m3 quantiser, the
// fp64 reference of the FP8 forward on dequantised operands with each element's error bound, and the
// checks of Z (in bf16/fp16, or in e4m3 with 1×128 scales) and H against it.
#pragma once

#include <cuda_fp8.h>
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "common/device.hpp"
#include "common/host_data.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::test {

using common::DeviceBuffer;

inline constexpr float kE4m3Max = 448.0f;

// The FP8 tensor cores' sums, as Fp8Gemm.DISABLED_AccumulationProbe measured them on Hopper: an
// instruction's 32 products (k32) and the accumulator it adds them to are aligned to the largest
// exponent among them, and each keeps 13 bits below that exponent, the rest truncated (a product
// 2^-14 below the largest vanished, 2^-13 below survived, and only the products of the largest one's
// instruction were cut). So one instruction errs by less than 33 · 2^-13 · M, M the largest of its
// |products| and |accumulator|. The kernels sum a 128-wide K block in four instructions from zero
// and then add it, scaled, to fp32 accumulators (two roundings, 2^-24 each, of at most Σ|x·w|).
// DeepSeek-V3's report of about 14 bits is the same finding; a bound of a fixed 2^-12 · Σ|x·w| is
// not one: a large product first and 127 products 2^-14 below it lose all 127.
inline constexpr double kTensorCoreUlp = 0x1p-13;
inline constexpr double kFp32Add = 2 * 0x1p-24;  // the block's scaling and add, each rounded once

// Which products share an instruction: `contiguous` (the wgmma kernels: K k32 apart, in order) or
// `decode` (fwd_fp8_decode.cuh's mma.sync: in each 64-wide chunk, lane t's 16 bytes at 16t feed
// their first 8 to the chunk's first mma and the last 8 to its second).
enum class TensorCoreOrder { contiguous, decode };

// The K positions of instruction j (0–3) of a 128-wide block, relative to it, as four runs of 8:
// run r starts at tensor_core_run(order, j, r).
inline int tensor_core_run(TensorCoreOrder order, int j, int r) {
  if (order == TensorCoreOrder::contiguous) return 32 * j + 8 * r;
  return (j / 2) * 64 + 16 * r + 8 * (j % 2);  // chunk j / 2, lane r's bytes, first or last 8
}

// A dot product Σ_k a_k·b_k (fp64, k from 0 to K, strided) and the error bound of the FP8 tensor
// cores' sum of it (see kTensorCoreUlp); the scales are constant along a K block of 128, so the
// bound on the dequantised products is the bound on the bytes' products, scaled.
struct TensorCoreDot {
  double sum = 0, bound = 0;
};

inline TensorCoreDot tensor_core_dot(const double* a, int64_t sa, const double* b, int64_t sb, int64_t K,
                                     TensorCoreOrder order) {
  TensorCoreDot out;
  for (int64_t k0 = 0; k0 < K; k0 += 128) {
    double part = 0, err = 0, abs_sum = 0;  // the block's exact partial sum, and its error so far
    for (int j = 0; j < 4; ++j) {
      double sum = 0, largest = 0;
      for (int r = 0; r < 4; ++r) {
        const int64_t k1 = k0 + tensor_core_run(order, j, r);
        for (int64_t k = k1; k < std::min(K, k1 + 8); ++k) {
          const double t = a[k * sa] * b[k * sb];
          sum += t;
          largest = std::max(largest, std::fabs(t));
          abs_sum += std::fabs(t);
        }
      }
      err += 33 * kTensorCoreUlp * std::max(std::fabs(part) + err, largest);
      part += sum;
    }
    out.sum += part;
    out.bound += err + kFp32Add * (abs_sum + std::fabs(out.sum));
  }
  return out;
}

// A row-major rows×cols matrix quantised to e4m3 in blocks of block_rows × block_cols (the last ones
// partial): q (bytes), the blocks' scales (row block-major, ceil(cols/block_cols) a row of blocks),
// and the dequantised values q·scale that the reference multiplies.
struct Quantised {
  std::vector<uint8_t> q;
  std::vector<float> scale;
  std::vector<double> deq;
};

inline Quantised quantise(const std::vector<float>& v, int64_t rows, int64_t cols, int64_t block_rows,
                          int64_t block_cols = 128) {
  const int64_t rb = (rows + block_rows - 1) / block_rows, kb = (cols + block_cols - 1) / block_cols;
  Quantised out;
  out.q.resize(static_cast<size_t>(rows * cols));
  out.deq.resize(out.q.size());
  out.scale.resize(static_cast<size_t>(rb * kb));
  for (int64_t br = 0; br < rb; ++br) {
    for (int64_t bk = 0; bk < kb; ++bk) {
      const int64_t r1 = std::min(rows, (br + 1) * block_rows), c1 = std::min(cols, (bk + 1) * block_cols);
      float amax = 0.0f;
      for (int64_t r = br * block_rows; r < r1; ++r)
        for (int64_t c = bk * block_cols; c < c1; ++c) amax = std::max(amax, std::fabs(v[r * cols + c]));
      const float scale = amax > 0.0f ? amax / kE4m3Max : 1.0f;
      out.scale[br * kb + bk] = scale;
      for (int64_t r = br * block_rows; r < r1; ++r) {
        for (int64_t c = bk * block_cols; c < c1; ++c) {
          const __nv_fp8_e4m3 e(v[r * cols + c] / scale);  // nearest even, saturated to ±448
          out.q[r * cols + c] = e.__x;
          out.deq[r * cols + c] = static_cast<double>(static_cast<float>(e)) * scale;
        }
      }
    }
  }
  return out;
}

// An e4m3 byte's value.
inline double e4m3_value(uint8_t byte) {
  __nv_fp8_e4m3 e;
  e.__x = byte;
  return static_cast<double>(static_cast<float>(e));
}

// A row-major rows×cols matrix transposed (cols×rows).
template <class T>
std::vector<T> transpose(const std::vector<T>& v, int64_t rows, int64_t cols) {
  std::vector<T> t(v.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) t[c * rows + r] = v[r * cols + c];
  return t;
}

template <class T>
DeviceBuffer upload(const std::vector<T>& v) {
  DeviceBuffer d(std::max<size_t>(v.size() * sizeof(T), 16));
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

template <class T>
std::vector<T> download_raw(const DeviceBuffer& d, size_t n) {
  std::vector<T> v(n);
  if (n > 0) CUDA_CHECK(cudaMemcpy(v.data(), d.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

inline std::vector<float> download(const DeviceBuffer& d, size_t n, DType t) {
  std::vector<unsigned char> raw(n * dtype_size(t));
  if (n > 0) CUDA_CHECK(cudaMemcpy(raw.data(), d.get(), raw.size(), cudaMemcpyDeviceToHost));
  return common::from_dtype_bytes(raw.data(), n, t);
}

inline bool on_hopper() {
  int device = 0, major = 0, minor = 0;
  return cudaGetDevice(&device) == cudaSuccess &&
         cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess &&
         cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device) == cudaSuccess && major == 9 &&
         minor == 0;
}

// The fp64 reference on the dequantised inputs x (B×I) and w (W12, 2D×I), the bias (2D values as
// rounded to the output dtype) when set, and each element's error bound: |err| ≤ u_out·|v| + the
// accumulation's, which for G (and U) is tensor_core_dot's in the kernel's instruction order, and
// for Z what the G and U errors become through z = silu(g)·u, plus Z's own rounding (twice u_out:
// the fp32 gate's few ulp included; the caller adds it). z_h is Z's sensitivity to a relative error
// of G and U, |silu'(g)·u·g| + |silu(g)·u|, for a gate that reads them rounded (unfused_bounds).
struct Fp8Reference {
  double u_out = 0;  // the output dtype's unit roundoff
  std::vector<double> z, z_acc, z_h, h, h_bound;  // z_acc: Z's bound but its rounding
};

inline Fp8Reference fp8_reference(const std::vector<double>& x, const std::vector<double>& w, const float* bias,
                                  int64_t B, int64_t I, int64_t D, DType out, TensorCoreOrder order) {
  Fp8Reference ref;
  const double u_out = out == DType::bf16 ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);  // unit roundoff
  ref.u_out = u_out;
  ref.z.resize(static_cast<size_t>(B * D));
  ref.z_acc.resize(ref.z.size());
  ref.z_h.resize(ref.z.size());
  ref.h.resize(static_cast<size_t>(B * 2 * D));
  ref.h_bound.resize(ref.h.size());
  const double* ad = w.data();
  const double* bd = w.data() + D * I;
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t n = 0; n < D; ++n) {
      const TensorCoreDot dg = tensor_core_dot(x.data() + r * I, 1, ad + n * I, 1, I, order);
      const TensorCoreDot du = tensor_core_dot(x.data() + r * I, 1, bd + n * I, 1, I, order);
      const double g = dg.sum + (bias ? bias[n] : 0.0), u = du.sum + (bias ? bias[D + n] : 0.0);
      const double sig = 1.0 / (1.0 + std::exp(-g)), silu = g * sig, dsilu = sig * (1.0 + g * (1.0 - sig));
      ref.z[r * D + n] = silu * u;
      ref.z_acc[r * D + n] = std::fabs(dsilu * u) * dg.bound + std::fabs(silu) * du.bound;
      ref.z_h[r * D + n] = std::fabs(dsilu * u * g) + std::fabs(silu * u);
      ref.h[r * 2 * D + n] = g;
      ref.h[r * 2 * D + D + n] = u;
      ref.h_bound[r * 2 * D + n] = u_out * std::fabs(g) + dg.bound;
      ref.h_bound[r * 2 * D + D + n] = u_out * std::fabs(u) + du.bound;
    }
  }
  return ref;
}

// The bounds of an unfused pipeline (GEMMs writing G and U in the output dtype, a gate reading them):
// H rounded once per partial sum of a split-K GEMM (`slices` of them), and Z's accumulation bound
// grown by what that rounding of G and U becomes through the gate.
inline Fp8Reference unfused_bounds(Fp8Reference ref, int slices) {
  const double u_h = slices * ref.u_out;
  for (size_t e = 0; e < ref.z.size(); ++e) ref.z_acc[e] += u_h * ref.z_h[e];
  for (size_t e = 0; e < ref.h.size(); ++e) ref.h_bound[e] += (slices - 1) * ref.u_out * std::fabs(ref.h[e]);
  return ref;
}

// got against want within bound, element by element; the first few misses reported, and the
// relative L2 error printed. Returns the number of misses.
template <class Bound>
int expect_within(const std::string& what, const char* name, const std::vector<float>& got,
                  const std::vector<double>& want, Bound&& bound) {
  int bad = 0;
  double err2 = 0.0, ref2 = 0.0;
  for (size_t e = 0; e < want.size(); ++e) {
    const double d = std::fabs(static_cast<double>(got[e]) - want[e]);
    if (!(d <= bound(e)) && bad++ < 5)
      ADD_FAILURE() << what << " " << name << "[" << e << "] = " << got[e] << ", expected " << want[e] << " ± "
                    << bound(e);
    err2 += d * d;
    ref2 += want[e] * want[e];
  }
  std::printf("%s %s: rel_l2 %.3e, %d of %zu over their bound\n", what.c_str(), name,
              std::sqrt(err2 / std::max(ref2, 1e-300)), bad, want.size());
  return bad;
}

// Z in e4m3 (B×D bytes) with its 1×128 scales (B × ceil(D/128)) against the reference. Each row's
// 128-column block: its scale is amax / 448 of the Z that was quantised, within the block's largest
// accumulation bound (/ 448) of the reference's; dequantised, Z is within e4m3's half unit (2^-4
// relative, 2^-10 of the scale in the subnormals) plus that bound. z_rounding: Z's relative rounding
// before its quantisation (an unfused quantiser reads Z in the output dtype), 0 when it is
// quantised from fp32. amax, when not null: the amax written alongside, checked too.
inline void expect_e4m3_z(const std::string& what, const std::vector<uint8_t>& zq, const std::vector<float>& zs,
                          const Fp8Reference& ref, int64_t B, int64_t D, double z_rounding = 0.0,
                          const float* amax = nullptr) {
  const int64_t z_blocks = (D + 127) / 128;
  double amax_ref = 0.0, amax_bound = 0.0, err2 = 0.0, ref2 = 0.0;
  int bad = 0;
  for (int64_t r = 0; r < B; ++r) {
    for (int64_t zb = 0; zb < z_blocks; ++zb) {
      double block_max = 0.0, block_acc = 0.0;
      for (int64_t n = zb * 128; n < std::min(D, zb * 128 + 128); ++n) {
        block_max = std::max(block_max, std::fabs(ref.z[r * D + n]));
        block_acc = std::max(block_acc, ref.z_acc[r * D + n]);
      }
      amax_ref = std::max(amax_ref, block_max);
      amax_bound = std::max(amax_bound, block_acc);
      const double scale = zs[r * z_blocks + zb], want = block_max > 0 ? block_max / kE4m3Max : 1.0;
      if (std::fabs(scale - want) > (block_acc + z_rounding * block_max) / kE4m3Max + 1e-6 * want && bad++ < 5)
        ADD_FAILURE() << what << " row " << r << " block " << zb << ": scale " << scale << ", expected " << want;
      for (int64_t n = zb * 128; n < std::min(D, zb * 128 + 128); ++n) {
        const double got = e4m3_value(zq[r * D + n]) * scale, want_z = ref.z[r * D + n];
        const double bound = std::fabs(want_z) * 0.0625 + scale / 1024.0 + ref.z_acc[r * D + n] +
                             z_rounding * std::fabs(want_z) * 1.0625;
        if (!(std::fabs(got - want_z) <= bound) && bad++ < 5)
          ADD_FAILURE() << what << " Z[" << r << "][" << n << "] = " << got << ", expected " << want_z;
        err2 += (got - want_z) * (got - want_z);
        ref2 += want_z * want_z;
      }
    }
  }
  EXPECT_LE(std::sqrt(err2 / std::max(ref2, 1e-300)), 0.0625) << what << ": Z's rel L2";
  if (amax != nullptr) {
    EXPECT_NEAR(*amax, amax_ref, amax_bound + 1e-6 * amax_ref) << what << ": Z's amax";
  }
}

}  // namespace swiglu::test
