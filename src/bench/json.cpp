#include "bench/json.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>

namespace swiglu::bench {
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
    case Kind::array: {
      const Array& a = std::get<Array>(value_);
      if (a.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i > 0) out += ',';
        newline(out, indent, depth + 1);
        a[i].dump_to(out, indent, depth + 1);
      }
      newline(out, indent, depth);
      out += ']';
      return;
    }
    case Kind::object: {
      const Object& o = std::get<Object>(value_);
      if (o.empty()) {
        out += "{}";
        return;
      }
      out += '{';
      for (size_t i = 0; i < o.size(); ++i) {
        if (i > 0) out += ',';
        newline(out, indent, depth + 1);
        append_json_string(out, o[i].first);
        out += indent > 0 ? ": " : ":";
        o[i].second.dump_to(out, indent, depth + 1);
      }
      newline(out, indent, depth);
      out += '}';
      return;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  dump_to(out, indent, 0);
  return out;
}

std::string_view file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "a regular file";
    case S_IFDIR: return "a directory";
    case S_IFLNK: return "a symbolic link";
    case S_IFIFO: return "a FIFO";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
  }
  return "an unknown kind of file";
}

void check_replaceable(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(errno)));
  }
  if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) return;
  throw std::runtime_error(fmt::format(
      "cannot write '{}': it exists and is not a regular file ({}); refusing to replace it", path,
      file_type_name(st.st_mode)));
}

namespace {

void create_parent_directories(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path parent = fs::path(path).parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw std::runtime_error(fmt::format("cannot create directory '{}' for '{}': {}",
                                         parent.string(), path, ec.message()));
  }
}

// A new file beside `path`, created exclusively under a random name: a file or a symlink planted
// at a name cannot be opened through, and the kernel applies the umask to 0644. Returns the fd and
// sets *tmp, or throws.
int create_temporary(const std::string& path, std::string* tmp) {
  static std::atomic<uint64_t> serial{0};
  std::random_device entropy;
  for (int attempt = 0; attempt < 64; ++attempt) {
    const uint64_t r = ((static_cast<uint64_t>(entropy()) << 32) ^ entropy()) +
                       serial.fetch_add(1) * 0x9E3779B97F4A7C15ull;
    *tmp = fmt::format("{}.tmp.{:016x}", path, r);
    const int fd = ::open(tmp->c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    if (errno != EEXIST) break;
  }
  const int err = errno;
  throw std::runtime_error(
      fmt::format("cannot write '{}': cannot create a temporary file beside it: {}", path,
                  std::strerror(err)));
}

// Renames `tmp` over `path` after checking what is there; removes `tmp` and throws on failure.
void replace_with(const std::string& tmp, const std::string& path) {
  try {
    check_replaceable(path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
  }
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& content) {
  check_replaceable(path);
  create_parent_directories(path);
  std::string tmp;
  const int fd = create_temporary(path, &tmp);
  int err = 0;
  for (size_t done = 0; done < content.size() && err == 0;) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n > 0) {
      done += static_cast<size_t>(n);
    } else if (n < 0 && errno != EINTR) {
      err = errno;
    }
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
  }
  replace_with(tmp, path);
}

std::FILE* create_file_replacing(const std::string& path) {
  check_replaceable(path);
  create_parent_directories(path);
  std::string tmp;
  const int fd = create_temporary(path, &tmp);
  std::FILE* f = ::fdopen(fd, "w");
  if (f == nullptr) {
    const int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    throw std::runtime_error(fmt::format("cannot write '{}': {}", path, std::strerror(err)));
  }
  try {
    replace_with(tmp, path);
  } catch (...) {
    std::fclose(f);
    throw;
  }
  // Why: the open stream follows the file through the rename; later writes land at `path`.
  return f;
}

}  // namespace swiglu::bench
