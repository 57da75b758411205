// Enum words written once, as a table, for an enum's to_string and parse functions.
#pragma once

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace swiglu::common {

template <typename E, size_t N>
using NameTable = std::pair<E, std::string_view>[N];

template <typename E, size_t N>
constexpr std::string_view name_of(const NameTable<E, N>& table, E value) {
  for (const auto& [e, name] : table)
    if (e == value) return name;
  return "?";
}

template <typename E, size_t N>
constexpr std::optional<E> value_of(const NameTable<E, N>& table, std::string_view word) {
  for (const auto& [e, name] : table)
    if (name == word) return e;
  return std::nullopt;
}

}  // namespace swiglu::common
