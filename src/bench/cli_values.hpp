// Inline value lists for the command line (--batch, --in, --hidden, --dtype) and the YAML config.
//
// Integer lists are comma-separated items, each one of
//   N            a single integer                       "784"
//   a:b:step     a, a+step, ... up to b inclusive       "64:512:64"  -> 64,128,...,512
//   pow2:a:b     every power of two p with a <= p <= b  "pow2:1:8192" -> 1,2,4,...,8192
// Spaces around items are ignored. Values come back in order, duplicates removed (the first
// occurrence is kept), so overlapping ranges are harmless.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace swiglu::bench {

// Parses an integer list. Every value must be in [min_value, max_value] (sizes: 1 and kMaxDim,
// paddings: 0 and kMaxStridePad, in config.hpp). Throws std::invalid_argument quoting the bad item
// and the accepted forms for: empty text or items, negatives, values out of range, garbage ("12x"),
// step <= 0, a > b, overflow, a pow2 range without a power of two, and lists longer than
// kMaxListValues (a range is counted before it is expanded).
std::vector<int64_t> parse_int_list(std::string_view text, int64_t min_value = 0,
                                    int64_t max_value = INT64_MAX);

// The most values one list may expand to; guards against "1:1000000000000:1".
inline constexpr size_t kMaxListValues = 1'000'000;

// Splits "bf16, fp16" into {"bf16", "fp16"}: trimmed, in order, duplicates removed.
// Throws std::invalid_argument on empty text or an empty item ("bf16,,fp16").
std::vector<std::string> split_words(std::string_view text);
// The same, but a word given twice is an error too ("'fused' is listed twice in ...").
std::vector<std::string> split_distinct_words(std::string_view text);

}  // namespace swiglu::bench
