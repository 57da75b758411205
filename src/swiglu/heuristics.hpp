// Internal: the default tile of each kernel launch, chosen among the eligible tiles (registry.hpp).
// The measurements behind the rules are in docs/heuristics.md.
#pragma once

#include "swiglu/registry.hpp"
#include "swiglu/swiglu.hpp"

namespace swiglu::detail {

// The forward's tile for p on dev; allow_sm90 = false leaves the sm90 tiles out (for operands TMA
// cannot address). The public choose_forward_tile(p, dev, out) is this with allow_sm90 = true.
Status choose_forward_tile(const Problem& p, const DeviceTraits& dev, bool allow_sm90, TileConfig* out);

// The tile of the backward's dX (Gemm::dx) or dW (Gemm::dw) GEMM for p on dev; allow_sm90 as above.
Status choose_backward_tile(const Problem& p, const DeviceTraits& dev, Gemm gemm, bool allow_sm90,
                            TileConfig* out);

}  // namespace swiglu::detail
