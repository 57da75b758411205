// swiglubench's command line, parsed into what to run. Kept apart from main() so the host tests
// can check the options, their defaults, the overrides and the exit codes without a GPU.
#pragma once

#include <vector>

#include "bench/case.hpp"
#include "bench/regression.hpp"
#include "bench/run.hpp"
#include "common/exit_codes.hpp"
#include "common/json.hpp"
#include "train/options.hpp"

namespace swiglu::bench {

struct Command {
  // One per subcommand; `regression` is `swiglubench gate`.
  enum class Kind { exit, info, check, forward, regression, compare, backward, step, memory, train };
  Kind kind = Kind::exit;
  int exit_code = common::kExitOk;  // Kind::exit: --help/--version (0) or a usage/config error (3)
  int device = 0;                   // Kind::info
  RunOptions options;       // the case-running commands (check, forward, gate, backward, step,
                            // memory); options.gradient for the last three
  std::vector<Case> cases;  // those commands: the --shapes files with the options' overrides, or
                            // the inline sweep
  common::Json resolved;          // the cases as recorded in the JSON provenance
  RegressionOptions regression;   // gate; compare (its compare options and update_baseline)
  std::string baseline, current;  // compare
  train::TrainOptions train;      // train
};

// Parses argv. Help, version and error messages go to stdout/stderr as they would from the tool;
// errors come back as Kind::exit with exit_code 3, never as an exception.
Command parse_command_line(int argc, const char* const* argv);

}  // namespace swiglu::bench
