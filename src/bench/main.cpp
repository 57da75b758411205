// swiglubench's main(): the command line parsed (cli.cpp) and handed to the subcommand's runner.
// `swiglubench --help` lists the subcommands and the exit codes (common/exit_codes.hpp).
#include <atomic>
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>

#include "bench/cli.hpp"
#include "bench/run.hpp"
#include "common/exit_codes.hpp"
#include "train/run_train.hpp"

namespace {

std::atomic<bool> g_stop{false};

extern "C" void on_sigint(int) {
  // The first Ctrl-C asks the sweep to stop after the current step and keep its rows; a second one
  // falls back to the default action.
  g_stop.store(true);
  std::signal(SIGINT, SIG_DFL);
}

int run_command(int argc, char** argv) {
  using namespace swiglu::bench;
  using swiglu::common::kExitError;
  const Command cmd = parse_command_line(argc, argv);
  switch (cmd.kind) {
    case Command::Kind::exit:
      return cmd.exit_code;
    case Command::Kind::info:
      return print_info(cmd.device);
    case Command::Kind::check:
    case Command::Kind::forward:
      std::signal(SIGINT, on_sigint);
      return run_sweep(cmd.cases, cmd.options, cmd.resolved, g_stop);
    case Command::Kind::backward:
    case Command::Kind::step:
    case Command::Kind::memory:
      std::signal(SIGINT, on_sigint);
      return run_gradient_sweep(cmd.cases, cmd.options, cmd.resolved, g_stop);
    case Command::Kind::regression:
      std::signal(SIGINT, on_sigint);
      return run_regression(cmd.cases, cmd.resolved, cmd.options, cmd.regression, g_stop);
    case Command::Kind::compare:
      return run_compare(cmd.baseline, cmd.current, cmd.regression.compare,
                         cmd.regression.update_baseline);
    case Command::Kind::train:
      std::signal(SIGINT, on_sigint);
      return swiglu::train::run_train(cmd.train, g_stop);
  }
  return kExitError;
}

}  // namespace

// Why: an exception that reaches main() would end the process with SIGABRT and no word of what
// happened; every one ends here as an "error: " line and exit code 3 instead.
int main(int argc, char** argv) {
  using swiglu::common::kExitError;
  try {
    return run_command(argc, argv);
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory (std::bad_alloc)\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "error: unknown exception\n");
  }
  return kExitError;
}
