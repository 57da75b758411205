// The runner behind `swiglubench train`: loads Fashion-MNIST, trains one model per variant (the
// variants' epochs interleaved, so clock and thermal drift hit them alike), evaluates on the test
// split after every epoch, prints one table row per variant and epoch, writes the rows to CSV and
// JSON as they finish, and, with two or more variants, checks that their per-step losses agree.
//
// Exit codes: 0 ok; 2 the variants disagree, or a loss is not finite; 3 usage, data or device
// error; 130 interrupted (SIGINT ends the run after the current step; finished epochs are kept).
#pragma once

#include <atomic>

#include "train/options.hpp"

namespace swiglu::train {

int run_train(const TrainOptions& options, const std::atomic<bool>& stop);

}  // namespace swiglu::train
