// Files that result and config paths may name: bounded reading, atomic replacement, safe names.
// Any path may hold a FIFO, a device or a directory; each function says what it does with one.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <string_view>

namespace swiglu::common {

// Why read_regular_file failed; callers word their own messages from the fields.
class FileReadError : public std::runtime_error {
 public:
  enum class Why {
    open,         // stat, open or fstat failed (error)
    not_regular,  // a FIFO, device, directory, ... (mode)
    too_large,    // more than the limit (bytes: the size, or, with at_least, what was read before stopping)
    read,         // read failed (error)
  };
  FileReadError(const std::string& path, Why why, int error, unsigned mode, uint64_t bytes,
                uint64_t limit, bool at_least = false);

  // The reason in a caller's words: fmt formats, each given {0} = the file type, {1} = the bytes
  // read or stated, {2} = the limit, {3} = the limit in MiB, {4} = strerror, {5} = "at least "
  // when {1} is what was read before stopping (a file larger than its stated size), else "".
  struct Wording {
    std::string_view not_regular, too_large, read;
  };
  std::string reason(const Wording& w) const;

  Why why;
  int error = 0;  // errno
  unsigned mode = 0;
  uint64_t bytes = 0;
  uint64_t limit = 0;
  bool at_least = false;  // bytes is a lower bound: the read stopped past the limit
};

// The whole of `path`, a regular file of at most `max_bytes`. Why stat before open: a device is
// never opened, and a FIFO never blocks the reader (O_NONBLOCK and fstat cover a swap in between);
// at most max_bytes + 1 bytes are read, so a file that grows, or reports size 0 as /proc files do,
// stays bounded. Throws FileReadError.
std::string read_regular_file(const std::string& path, uint64_t max_bytes);

// Writes `content` to a new temporary file beside `path` ("<path>.tmp.<16 random hex digits>",
// created with O_CREAT | O_EXCL | O_NOFOLLOW, mode 0644 less the umask), fsyncs it and renames it
// over `path`: readers see the old file or the new one, never a torn one. A symlink at `path` is
// replaced, never followed; anything else but a regular file is refused before anything is written
// (check_replaceable). Creates missing parent directories. Throws std::runtime_error naming the
// path and strerror (and removes the temporary file).
void write_file_atomic(const std::string& path, const std::string& content);

// For files that grow as a run goes (CSV lines): creates `path` empty as write_file_atomic does
// and returns it open for writing; the caller fcloses it. Throws as write_file_atomic does.
std::FILE* create_file_replacing(const std::string& path);

// Throws std::runtime_error ("cannot write '<path>': it exists and is not a regular file (a
// FIFO)...") when `path` exists and is neither a regular file nor a symlink (lstat). Why not
// race-proof: it guards against a wrong path, not against another process swapping files.
void check_replaceable(const std::string& path);

// "a regular file", "a FIFO", "a character device", ...: the type in a stat mode, for messages.
std::string_view file_type_name(unsigned mode);

// Throws std::invalid_argument unless `name` is safe as (part of) a result file name: 1 to 200
// characters from letters, digits, '_', '-', '.' and '+' (merged configs join their names with
// '+'), not starting with '.', no "..". Every command checks its result name before it opens the
// device, so no result file is written outside --out.
void check_result_name(std::string_view name);

}  // namespace swiglu::common
