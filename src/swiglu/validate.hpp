// Internal: the checks every call makes before it plans anything: enums, dimensions and 64-bit
// element counts, pointers (null, alignment, overlap), and the current device.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

inline Status fail(StatusCode code, std::string message) { return Status{code, std::move(message)}; }

inline bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// Elements of X (at least one row) and of W.
int64_t x_elems(const Problem& p);
int64_t w_elems(const Problem& p);

// Every enum of p, then its dimensions and that its element counts fit in int64 with room to spare.
Status check_dims(const Problem& p);

Status check_options(const BackwardOptions& o);

// A named device range of elements, for the null, alignment and overlap checks.
struct Range {
  const char* name;
  const void* ptr;
  int64_t elems;
};

// Every range non-null and aligned to p's element size; no output overlaps an input or another
// output (kernels read the inputs while other blocks write).
Status check_pointers(const Problem& p, const std::vector<Range>& inputs, const std::vector<Range>& outputs);

// The traits of the current device; fails below compute capability 7.0.
Status current_device(DeviceTraits* dev);

// tf32 and 3xtf32 need the tensor cores of compute capability 8.0 and newer.
Status check_math_on_device(const Problem& p, const DeviceTraits& dev);

}  // namespace swiglu::detail
