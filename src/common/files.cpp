#include "common/files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>
#include <system_error>

#include "common/json.hpp"

namespace swiglu::common {

FileReadError::FileReadError(const std::string& path, Why why_, int error_, unsigned mode_,
                             uint64_t bytes_, uint64_t limit_, bool at_least_)
    : std::runtime_error(fmt::format("cannot read '{}'", path)),
      why(why_), error(error_), mode(mode_), bytes(bytes_), limit(limit_), at_least(at_least_) {}

std::string FileReadError::reason(const Wording& w) const {
  const std::string_view text = why == Why::not_regular ? w.not_regular
                                : why == Why::too_large ? w.too_large
                                : why == Why::read      ? w.read
                                                        : std::string_view("{4}");
  return fmt::format(fmt::runtime(text), file_type_name(mode), bytes, limit, limit >> 20,
                     std::strerror(error), at_least ? "at least " : "");
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  using Why = FileReadError::Why;
  const auto fail = [&](Why why, int error, unsigned mode = 0, uint64_t bytes = 0, bool at_least = false) {
    return FileReadError(path, why, error, mode, bytes, max_bytes, at_least);
  };
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw fail(Why::open, errno);
  if (!S_ISREG(st.st_mode)) throw fail(Why::not_regular, 0, st.st_mode);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) throw fail(Why::open, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  if (::fstat(fd, &st) != 0) throw fail(Why::open, errno);
  if (!S_ISREG(st.st_mode)) throw fail(Why::not_regular, 0, st.st_mode);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) throw fail(Why::too_large, 0, 0, st.st_size);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const uint64_t room = max_bytes + 1 - text.size();
    const ssize_t n = ::read(fd, buf, static_cast<size_t>(std::min<uint64_t>(sizeof(buf), room)));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw fail(Why::read, errno);
    }
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > max_bytes) throw fail(Why::too_large, 0, 0, text.size(), /*at_least=*/true);
  }
  return text;
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

// The temporary file that will replace `path`, after the checks: created exclusively under a random
// name beside it, so nothing planted at a name can be opened through. Returns the fd, sets *tmp.
int open_replacement(const std::string& path, std::string* tmp) {
  check_replaceable(path);
  create_parent_directories(path);
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
  std::string tmp;
  const int fd = open_replacement(path, &tmp);
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
  std::string tmp;
  const int fd = open_replacement(path, &tmp);
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

void check_result_name(std::string_view name) {
  constexpr size_t kMaxLength = 200;
  const bool safe_chars = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == '+';
  });
  if (!name.empty() && name.size() <= kMaxLength && safe_chars && name.front() != '.' &&
      name.find("..") == std::string_view::npos) {
    return;
  }
  // Why escaped: the name may hold control characters or be very long.
  std::string quoted;
  append_json_string(quoted, name.substr(0, 80));
  const std::string_view inner = std::string_view(quoted).substr(1, quoted.size() - 2);
  const std::string shown = fmt::format("'{}{}'", inner, name.size() > 80 ? "..." : "");
  throw std::invalid_argument(fmt::format(
      "{} is not a safe result name: use 1 to {} letters, digits, '_', '-', '.' and '+' (no '/', "
      "no leading '.', no '..'); it names the result files",
      shown, kMaxLength));
}

}  // namespace swiglu::common
