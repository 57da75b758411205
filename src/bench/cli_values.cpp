#include "bench/cli_values.hpp"

#include <fmt/format.h>

#include <charconv>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace swiglu::bench {
namespace {

constexpr std::string_view kForms =
    "expected an integer N, a range a:b:step (a <= b, step > 0) or pow2:a:b";

std::string_view trim(std::string_view s) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t pos = text.find(sep, start);
    parts.push_back(text.substr(start, pos == std::string_view::npos ? pos : pos - start));
    if (pos == std::string_view::npos) return parts;
    start = pos + 1;
  }
}

[[noreturn]] void fail(std::string_view item, std::string_view text, std::string_view why) {
  throw std::invalid_argument(
      fmt::format("invalid item '{}' in \"{}\": {}; {}", item, text, why, kForms));
}

// One non-negative decimal integer, digits only (no sign, no spaces, no suffix).
int64_t parse_number(std::string_view field, std::string_view item, std::string_view text) {
  if (field.empty()) fail(item, text, "missing number");
  if (field.front() == '-') fail(item, text, "negative values are not allowed");
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec == std::errc::result_out_of_range) {
    fail(item, text, fmt::format("'{}' does not fit in 64 bits", field));
  }
  if (ec != std::errc() || end != field.data() + field.size()) {
    fail(item, text, fmt::format("'{}' is not an integer", field));
  }
  return value;
}

}  // namespace

std::vector<int64_t> parse_int_list(std::string_view text, int64_t min_value, int64_t max_value) {
  if (trim(text).empty()) {
    throw std::invalid_argument(fmt::format("empty value list \"{}\"; {}", text, kForms));
  }
  std::vector<int64_t> values;
  std::unordered_set<int64_t> seen;
  const auto add = [&](int64_t v, std::string_view item) {
    if (v < min_value) fail(item, text, fmt::format("{} is below the minimum {}", v, min_value));
    if (v > max_value) fail(item, text, fmt::format("{} is above the maximum {}", v, max_value));
    if (seen.insert(v).second) {
      values.push_back(v);
      if (values.size() > kMaxListValues) {
        fail(item, text, fmt::format("the list expands to more than {} values", kMaxListValues));
      }
    }
  };

  for (const std::string_view raw : split(text, ',')) {
    const std::string_view item = trim(raw);
    if (item.empty()) fail(raw, text, "empty item");
    const std::vector<std::string_view> fields = split(item, ':');
    if (fields.size() == 1) {
      add(parse_number(fields[0], item, text), item);
    } else if (fields.size() == 3 && fields[0] == "pow2") {
      const int64_t a = parse_number(fields[1], item, text);
      const int64_t b = parse_number(fields[2], item, text);
      if (a > b) fail(item, text, fmt::format("range start {} is greater than its end {}", a, b));
      int64_t p = 1;
      while (p < a && p <= std::numeric_limits<int64_t>::max() / 2) p *= 2;
      if (p < a || p > b) fail(item, text, "the range contains no power of two");
      while (true) {
        add(p, item);
        if (p > b / 2) break;  // Why: p * 2 > b, and this also stops before 2^63 overflows.
        p *= 2;
      }
    } else if (fields.size() == 3) {
      const int64_t a = parse_number(fields[0], item, text);
      const int64_t b = parse_number(fields[1], item, text);
      const int64_t step = parse_number(fields[2], item, text);
      if (step == 0) fail(item, text, "step must be > 0");
      if (a > b) fail(item, text, fmt::format("range start {} is greater than its end {}", a, b));
      // Why: counted first, so "1:1000000000000:1" fails at once instead of after 10^6 values.
      const uint64_t count = static_cast<uint64_t>(b - a) / static_cast<uint64_t>(step) + 1;
      if (count > kMaxListValues) {
        fail(item, text, fmt::format("the range has {} values, more than the limit of {}", count,
                                     kMaxListValues));
      }
      for (int64_t v = a;; v += step) {
        add(v, item);
        if (v > b - step) break;  // Why: v + step > b, tested without overflowing v + step.
      }
    } else {
      fail(item, text, "wrong number of ':' fields");
    }
  }
  return values;
}

std::vector<std::string> split_words(std::string_view text) {
  if (trim(text).empty()) throw std::invalid_argument(fmt::format("empty list \"{}\"", text));
  std::vector<std::string> words;
  std::unordered_set<std::string_view> seen;  // views into `text`, which outlives the loop
  for (const std::string_view raw : split(text, ',')) {
    const std::string_view word = trim(raw);
    if (word.empty()) {
      throw std::invalid_argument(fmt::format("empty item in list \"{}\"", text));
    }
    if (seen.insert(word).second) words.emplace_back(word);
  }
  return words;
}

std::vector<std::string> split_distinct_words(std::string_view text) {
  std::vector<std::string> words = split_words(text);
  size_t items = 1;
  for (const char ch : text) items += ch == ',' ? 1 : 0;
  if (words.size() == items) return words;
  std::unordered_set<std::string_view> seen;
  for (const std::string_view raw : split(text, ',')) {
    if (!seen.insert(trim(raw)).second) {
      throw std::invalid_argument(
          fmt::format("'{}' is listed twice in \"{}\"", trim(raw), text));
    }
  }
  return words;
}

}  // namespace swiglu::bench
