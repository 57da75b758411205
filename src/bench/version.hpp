// What build this is, for provenance: the git commit the binary was built from.
#pragma once

#include <string>

namespace swiglu::bench {

// "<40-hex sha>", with "-dirty" when the tree had uncommitted changes, or the value of the
// SWIGLU_GIT_SHA environment variable at build time where the tree is not a git checkout, or
// "unknown". Written at build time by cmake/git_sha.cmake.
std::string git_sha();

}  // namespace swiglu::bench
