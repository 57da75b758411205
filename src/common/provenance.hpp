// What every result file records about its making: the build and the time.
#pragma once

#include <string>

namespace swiglu::common {

// "<40-hex sha>", with "-dirty" when the tree had uncommitted changes, or the value of the
// SWIGLU_GIT_SHA environment variable at build time where the tree is not a git checkout, or
// "unknown". Written at build time by cmake/git_sha.cmake.
std::string git_sha();

// The current time in UTC, ISO 8601 to the second: "2025-01-31T12:34:56Z".
std::string iso_time_utc();

}  // namespace swiglu::common
