// Seeded input data and host-side dtype conversion, for the benchmark, the trainer and the tests.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::common {

// n values uniform in [lo, hi), already rounded to `dtype`, so the float copy the CPU reference
// reads equals what the GPU sees. Element i depends only on (seed, i): reproducible and order-free.
std::vector<float> uniform_values(size_t n, float lo, float hi, uint64_t seed, DType dtype);

// Raw bytes of `values` in `dtype` (values must already be representable).
std::vector<unsigned char> to_dtype_bytes(const std::vector<float>& values, DType dtype);

// Values from raw `dtype` bytes.
std::vector<float> from_dtype_bytes(const void* bytes, size_t n, DType dtype);

// The value of each e4m3 byte (NaN for 0x7F and 0xFF).
const std::array<float, 256>& e4m3_values();

// The nearest `dtype` value (ties to even); e4m3 saturates at ±448 (a NaN stays NaN).
float round_to(float v, DType dtype);

// The value every output is filled with before a checked run: a quiet NaN in every dtype
// (all bits set), so an element the kernel never wrote fails the parity check.
constexpr unsigned char kPoisonByte = 0xFF;

}  // namespace swiglu::common
