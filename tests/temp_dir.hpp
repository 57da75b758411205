// File helpers for the host tests: a fresh temporary directory removed afterwards (alone, or one
// per test as a fixture), and whole-file reads and writes.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace swiglu::test {

inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void spit(const std::filesystem::path& path, std::string_view text) {
  std::ofstream(path, std::ios::binary) << text;
}

// A fresh, empty directory under the system's temporary directory, removed with the object.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "swiglu-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string path(const std::string& name) const { return path_ + "/" + name; }
  // Writes the file `name` in it; returns its path.
  std::string write(const std::string& name, std::string_view text) const {
    spit(path(name), text);
    return path(name);
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    return write(name, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  }

 private:
  std::string path_;
};

// A test fixture with a TempDir of its own: dir_, and path(name) for a file in it.
class TempDirTest : public ::testing::Test {
 protected:
  std::string path(const std::string& name) const { return temp_.path(name); }

  const TempDir temp_;
  const std::filesystem::path dir_{temp_.path()};
};

}  // namespace swiglu::test
