// A small JSON value and writer for result files. Objects keep their keys in insertion order, so
// files diff cleanly; the writer escapes '"', '\\' and control characters (\u00XX), passes UTF-8
// through and writes non-finite numbers as null.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace swiglu::common {

class Json {
 public:
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;
  enum class Kind { null, boolean, integer, number, string, array, object };

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : value_(b) {}
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  Json(T i) {
    if constexpr (std::unsigned_integral<T> && sizeof(T) >= sizeof(int64_t)) {
      if (i > static_cast<T>(INT64_MAX)) {
        value_ = static_cast<double>(i);
        return;
      }
    }
    value_ = static_cast<int64_t>(i);
  }
  template <std::floating_point T>
  Json(T d) : value_(static_cast<double>(d)) {}
  Json(const char* s) : value_(std::string(s)) {}
  Json(std::string_view s) : value_(std::string(s)) {}
  Json(std::string s) : value_(std::move(s)) {}
  Json(Array a) : value_(std::move(a)) {}
  Json(Object o) : value_(std::move(o)) {}

  static Json array() { return Json(Array{}); }
  static Json object() { return Json(Object{}); }

  Kind kind() const { return static_cast<Kind>(value_.index()); }
  bool is_null() const { return kind() == Kind::null; }

  // Typed access; throws std::logic_error on the wrong kind. as_number() also reads integers.
  bool as_bool() const;
  int64_t as_int() const;
  double as_number() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Arrays: appends and returns the new element. A null value becomes an empty array first.
  Json& push_back(Json v);
  // Objects: replaces the value of an existing key in place, else appends; returns the value.
  // A null value becomes an empty object first.
  Json& set(std::string_view key, Json v);
  // Objects: the value of `key`, or nullptr.
  const Json* find(std::string_view key) const;
  // Number of array elements or object members; 0 for scalars.
  size_t size() const;

  // indent > 0: pretty-printed with that many spaces per level; indent <= 0: one line.
  std::string dump(int indent = 2) const;
  // Appends the value as dump() writes it when it sits `depth` levels deep in a larger document.
  void dump_to(std::string& out, int indent, int depth) const;

  bool operator==(const Json&) const = default;

 private:
  // Order matches Kind.
  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> value_;
};

// Appends the JSON string literal for `s` (quotes included) to out.
void append_json_string(std::string& out, std::string_view s);

// The strings as a JSON array, in order.
Json string_list(const std::vector<std::string>& items);

}  // namespace swiglu::common
