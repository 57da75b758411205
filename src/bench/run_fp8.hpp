// The FP8 forward's case runner (`--dtype fp8`, run_fp8.cpp), behind run_sweep for the cases whose
// dtype is e4m3.
//
// The recipe: X quantised in 1×128 blocks along I, W12 in 128×128 blocks (Wa and Wb on their own),
// all by the library's quantize_e4m3 from the case's seeded bf16 inputs (the bf16 case's own, so the
// two compare); Z in e4m3 with 1×128 scales along D, the bias and H in bf16. Every variant produces
// that Z: the fused FP8 forward, and the cuBLASLt FP8 GEMMs + the gate + the same quantiser
// (baselines/fp8_baselines.hpp). Parity is against a reference on the dequantised operands
// (fp8_tolerance); rows of a device or problem the FP8 forward does not take are SKIP with the reason.
#pragma once

#include "bench/session.hpp"

namespace swiglu::bench {

// The Fp8Problem of a case (dtype e4m3, the linear layout) under the recipe above.
Fp8Problem fp8_problem(const Problem& p);

void run_fp8_forward_case(Session& s, const Case& c);

}  // namespace swiglu::bench
