// swiglubench's exit codes, shared by every subcommand (and swiglu_microbench).
#pragma once

namespace swiglu::common {

inline constexpr int kExitOk = 0;
inline constexpr int kExitRegression = 1;     // compare, gate: a case got slower
inline constexpr int kExitParity = 2;         // a result does not match its reference (train: the
                                              // variants disagree or a loss is not finite)
inline constexpr int kExitError = 3;          // usage, config, data or device error; mismatched
                                              // result files
inline constexpr int kExitInterrupted = 130;  // SIGINT

}  // namespace swiglu::common
