#include "common/host_data.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/parallel.hpp"

namespace swiglu::common {
namespace {

uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace

float round_to(float v, DType dtype) {
  switch (dtype) {
    case DType::f32: return v;
    case DType::f16: return __half2float(__float2half_rn(v));
    case DType::bf16: return __bfloat162float(__float2bfloat16_rn(v));
    case DType::e4m3: return static_cast<float>(__nv_fp8_e4m3(v));
  }
  return v;
}

std::vector<float> uniform_values(size_t n, float lo, float hi, uint64_t seed, DType dtype) {
  std::vector<float> out(n);
  const uint64_t key = splitmix64(seed);
  const auto fill = [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      // 24 random bits give a float in [0, 1) exactly.
      const double u = static_cast<double>(splitmix64(key ^ (i * 0xD1B54A32D192ED03ull)) >> 40) * 0x1.0p-24;
      out[i] = round_to(static_cast<float>(lo + (hi - lo) * u), dtype);
    }
  };
  // Element i depends on i alone, so large fills split over the host's threads (LLM-sized weights
  // are billions of values).
  parallel_for(static_cast<int64_t>(n), threads_for(n), [&](int64_t b, int64_t e) {
    fill(static_cast<size_t>(b), static_cast<size_t>(e));
  });
  return out;
}

std::vector<unsigned char> to_dtype_bytes(const std::vector<float>& values, DType dtype) {
  const size_t es = dtype_size(dtype);
  std::vector<unsigned char> out(values.size() * es);
  parallel_for(static_cast<int64_t>(values.size()), threads_for(values.size()), [&](int64_t b, int64_t e) {
    for (auto i = static_cast<size_t>(b); i < static_cast<size_t>(e); ++i) {
      if (dtype == DType::f32) {
        std::memcpy(out.data() + 4 * i, &values[i], 4);
      } else if (dtype == DType::f16) {
        const __half h = __float2half_rn(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      } else if (dtype == DType::e4m3) {
        out[i] = __nv_fp8_e4m3(values[i]).__x;
      } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(values[i]);
        std::memcpy(out.data() + 2 * i, &h, 2);
      }
    }
  });
  return out;
}

std::vector<float> from_dtype_bytes(const void* bytes, size_t n, DType dtype) {
  std::vector<float> out(n);
  const auto* b = static_cast<const unsigned char*>(bytes);
  // Why a table for e4m3: cuda_fp8.h converts on the host in software, and an FP8 case's weights
  // are hundreds of millions of bytes.
  const std::array<float, 256>* e4m3 = dtype == DType::e4m3 ? &e4m3_values() : nullptr;
  parallel_for(static_cast<int64_t>(n), threads_for(n), [&](int64_t i0, int64_t i1) {
    for (auto i = static_cast<size_t>(i0); i < static_cast<size_t>(i1); ++i) {
      if (e4m3 != nullptr) {
        out[i] = (*e4m3)[b[i]];
      } else if (dtype == DType::f32) {
        std::memcpy(&out[i], b + 4 * i, 4);
      } else if (dtype == DType::f16) {
        __half h;
        std::memcpy(&h, b + 2 * i, 2);
        out[i] = __half2float(h);
      } else {
        __nv_bfloat16 h;
        std::memcpy(&h, b + 2 * i, 2);
        out[i] = __bfloat162float(h);
      }
    }
  });
  return out;
}

const std::array<float, 256>& e4m3_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int i = 0; i < 256; ++i) {
      __nv_fp8_e4m3 e;
      e.__x = static_cast<__nv_fp8_storage_t>(i);
      t[static_cast<size_t>(i)] = static_cast<float>(e);
    }
    return t;
  }();
  return table;
}

}  // namespace swiglu::common
