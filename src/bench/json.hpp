// A small JSON value and writer for the benchmark's result files (no JSON library is available).
//
// Objects keep their keys in insertion order so files diff cleanly between runs. The writer escapes
// '"' and '\\', writes every control character below 0x20 as \u00XX, passes other bytes (UTF-8)
// through unchanged, and writes non-finite numbers as null.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace swiglu::bench {

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

// Writes `content` to a new temporary file beside `path` ("<path>.tmp.<16 random hex digits>",
// created exclusively: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0644 less the umask), writes and fsyncs
// it, then renames it over `path`, so readers see the old file or the new one, never a torn one.
// What may sit at `path`: nothing, a regular file, or a symlink, which the rename replaces (the
// link itself; its target is never written). Anything else (a FIFO, a device such as /dev/null, a
// directory) is refused before anything is written (check_replaceable). Creates missing parent
// directories. Throws std::runtime_error naming the path and strerror on failure (and removes the
// temporary file).
void write_file_atomic(const std::string& path, const std::string& content);

// For files that grow as a run goes (CSV lines): creates `path` as write_file_atomic does, empty
// (a temporary file renamed over it: a symlink there is replaced, not followed), and returns it
// open for writing at its end. The caller fcloses it. Throws as write_file_atomic does.
std::FILE* create_file_replacing(const std::string& path);

// Throws std::runtime_error ("cannot write '<path>': it exists and is not a regular file (a
// FIFO)") when `path` exists and is neither a regular file nor a symlink; what write_file_atomic
// refuses, for a caller that wants to know before a long run. lstat, so a symlink is not followed.
// Why not race-proof: it guards against a wrong path (a device, a FIFO), not against another
// process swapping files in a directory the caller writes to.
void check_replaceable(const std::string& path);

// "a regular file", "a FIFO", "a character device", ...: the type in a stat mode, for messages.
std::string_view file_type_name(unsigned mode);

}  // namespace swiglu::bench
