// swiglubench: parity-checked benchmarks of the fused SwiGLU forward and backward against cuBLAS
// baselines.
//
//   swiglubench info                        device, clocks and versions
//   swiglubench check    --shapes F.yaml    parity only
//   swiglubench forward  --shapes F.yaml    parity, then timing
//   swiglubench backward --shapes F.yaml    parity of the gradients, then timing of the backward
//   swiglubench step     --shapes F.yaml    the same for forward + backward
//   swiglubench memory   --shapes F.yaml    saved activations and workspace per variant, measured
//   swiglubench train    [--variant fused,cublas2]   Fashion-MNIST training, fused against cuBLAS
//
//   swiglubench compare --baseline A.json --current B.json
//   swiglubench gate    --shapes configs/ci.yaml    run, compare with the card's baseline
//
// Exit codes: 0 ok, 1 performance regression (compare, gate), 2 parity failure, 3 usage/config/
// device error or mismatched results, 130 interrupted (SIGINT).
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
  using namespace swiglu::common;
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
