#include "common/json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

namespace swiglu::common {
namespace {

constexpr const char* kind_name(Json::Kind k) {
  switch (k) {
    case Json::Kind::null: return "null";
    case Json::Kind::boolean: return "bool";
    case Json::Kind::integer: return "integer";
    case Json::Kind::number: return "number";
    case Json::Kind::string: return "string";
    case Json::Kind::array: return "array";
    case Json::Kind::object: return "object";
  }
  return "?";
}

[[noreturn]] void wrong_kind(Json::Kind want, Json::Kind have) {
  throw std::logic_error(fmt::format("JSON value is {}, not {}", kind_name(have), kind_name(want)));
}

void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) {
    out += "null";
    return;
  }
  // Why: fmt's default is the shortest text that reads back to the same double, and its forms
  // ("1", "0.1", "1e-05", "1e+20") are all valid JSON numbers.
  fmt::format_to(std::back_inserter(out), "{}", d);
}

void newline(std::string& out, int indent, int depth) {
  if (indent <= 0) return;
  out += '\n';
  out.append(static_cast<size_t>(indent) * static_cast<size_t>(depth), ' ');
}

// `open`, each element written by `put` on a line of its own, `close`; "[]" or "{}" when empty.
template <typename Items, typename Put>
void dump_container(std::string& out, const Items& items, char open, char close, int indent,
                    int depth, const Put& put) {
  out += open;
  if (items.empty()) {
    out += close;
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    newline(out, indent, depth + 1);
    put(items[i]);
  }
  newline(out, indent, depth);
  out += close;
}

}  // namespace

bool Json::as_bool() const {
  if (kind() != Kind::boolean) wrong_kind(Kind::boolean, kind());
  return std::get<bool>(value_);
}

int64_t Json::as_int() const {
  if (kind() != Kind::integer) wrong_kind(Kind::integer, kind());
  return std::get<int64_t>(value_);
}

double Json::as_number() const {
  if (kind() == Kind::integer) return static_cast<double>(std::get<int64_t>(value_));
  if (kind() != Kind::number) wrong_kind(Kind::number, kind());
  return std::get<double>(value_);
}

const std::string& Json::as_string() const {
  if (kind() != Kind::string) wrong_kind(Kind::string, kind());
  return std::get<std::string>(value_);
}

const Json::Array& Json::as_array() const {
  if (kind() != Kind::array) wrong_kind(Kind::array, kind());
  return std::get<Array>(value_);
}

Json::Array& Json::as_array() {
  if (kind() != Kind::array) wrong_kind(Kind::array, kind());
  return std::get<Array>(value_);
}

const Json::Object& Json::as_object() const {
  if (kind() != Kind::object) wrong_kind(Kind::object, kind());
  return std::get<Object>(value_);
}

Json::Object& Json::as_object() {
  if (kind() != Kind::object) wrong_kind(Kind::object, kind());
  return std::get<Object>(value_);
}

Json& Json::push_back(Json v) {
  if (is_null()) value_ = Array{};
  Array& a = as_array();
  a.push_back(std::move(v));
  return a.back();
}

Json& Json::set(std::string_view key, Json v) {
  if (is_null()) value_ = Object{};
  Object& o = as_object();
  for (auto& [k, existing] : o) {
    if (k == key) {
      existing = std::move(v);
      return existing;
    }
  }
  o.emplace_back(std::string(key), std::move(v));
  return o.back().second;
}

const Json* Json::find(std::string_view key) const {
  for (const auto& [k, v] : as_object()) {
    if (k == key) return &v;
  }
  return nullptr;
}

size_t Json::size() const {
  if (kind() == Kind::array) return std::get<Array>(value_).size();
  if (kind() == Kind::object) return std::get<Object>(value_).size();
  return 0;
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (u < 0x20) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
    } else {
      out += c;  // Why: bytes >= 0x80 are UTF-8 sequences, which JSON allows unescaped.
    }
  }
  out += '"';
}

void Json::dump_to(std::string& out, int indent, int depth) const {
  switch (kind()) {
    case Kind::null: out += "null"; return;
    case Kind::boolean: out += std::get<bool>(value_) ? "true" : "false"; return;
    case Kind::integer:
      fmt::format_to(std::back_inserter(out), "{}", std::get<int64_t>(value_));
      return;
    case Kind::number: append_number(out, std::get<double>(value_)); return;
    case Kind::string: append_json_string(out, std::get<std::string>(value_)); return;
    case Kind::array:
      dump_container(out, std::get<Array>(value_), '[', ']', indent, depth,
                     [&](const Json& v) { v.dump_to(out, indent, depth + 1); });
      return;
    case Kind::object:
      dump_container(out, std::get<Object>(value_), '{', '}', indent, depth, [&](const auto& m) {
        append_json_string(out, m.first);
        out += indent > 0 ? ": " : ":";
        m.second.dump_to(out, indent, depth + 1);
      });
      return;
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

Json string_list(const std::vector<std::string>& items) {
  Json a = Json::array();
  for (const auto& s : items) a.push_back(s);
  return a;
}

}  // namespace swiglu::common
