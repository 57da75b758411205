#include "train/idx.hpp"

#include <fmt/format.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace swiglu::train {
namespace {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw DataError(path + ": " + what);
}

std::vector<uint8_t> read_file(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  if (!f) fail(path, fmt::format("cannot open: {}", std::strerror(errno)));
  std::vector<uint8_t> bytes;
  std::array<uint8_t, 1 << 16> chunk;
  size_t n = 0;
  while ((n = std::fread(chunk.data(), 1, chunk.size(), f.get())) > 0)
    bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(n));
  if (std::ferror(f.get())) fail(path, fmt::format("read error: {}", std::strerror(errno)));
  return bytes;
}

bool is_gzip(const std::vector<uint8_t>& bytes) {
  return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

// Inflates every gzip member of `in` (gzip allows several, concatenated). Errors: a corrupt stream,
// a stream cut short, bytes after the last member that do not start another one, or more than
// max_bytes of output.
std::vector<uint8_t> gunzip(const std::string& path, const std::vector<uint8_t>& in,
                            uint64_t max_bytes) {
  std::vector<uint8_t> out;
  z_stream zs{};
  // Why 16 + MAX_WBITS: a gzip header and trailer (CRC-32 and length, both checked by zlib),
  // not a raw zlib stream.
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) fail(path, "zlib inflateInit2 failed");
  const std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, inflateEnd);
  size_t pos = 0;
  std::array<uint8_t, 1 << 16> chunk;
  while (true) {
    // zlib counts in uInt: feed the input in pieces it can hold.
    const size_t feed = std::min<size_t>(in.size() - pos, size_t{1} << 30);
    zs.next_in = const_cast<Bytef*>(in.data() + pos);
    zs.avail_in = static_cast<uInt>(feed);
    int rc = Z_OK;
    do {
      zs.next_out = chunk.data();
      zs.avail_out = static_cast<uInt>(chunk.size());
      rc = inflate(&zs, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        fail(path, fmt::format("corrupt gzip data near compressed byte {}: {}",
                               pos + (feed - zs.avail_in),
                               zs.msg != nullptr ? std::string(zs.msg)
                                                 : "zlib error " + std::to_string(rc)));
      }
      const size_t produced = chunk.size() - zs.avail_out;
      if (out.size() + produced > max_bytes)
        fail(path, fmt::format("decompresses to more than {} bytes; not an IDX data file", max_bytes));
      out.insert(out.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(produced));
    } while (rc == Z_OK && (zs.avail_out == 0 || zs.avail_in > 0));
    const size_t consumed = feed - zs.avail_in;
    pos += consumed;
    if (rc == Z_STREAM_END) {
      if (pos == in.size()) return out;
      // Another member may follow; anything else is garbage.
      if (in.size() - pos < 2 || in[pos] != 0x1f || in[pos + 1] != 0x8b) {
        fail(path, fmt::format("{} bytes after the end of the gzip stream that are not another "
                               "gzip member", in.size() - pos));
      }
      if (inflateReset(&zs) != Z_OK) fail(path, "zlib inflateReset failed");
    } else if (pos == in.size()) {
      fail(path, fmt::format("gzip stream is truncated: the compressed data ends after {} bytes "
                             "({} bytes decompressed) before the end of the stream",
                             in.size(), out.size()));
    } else if (consumed == 0) {
      fail(path, fmt::format("gzip stream stops making progress at compressed byte {}", pos));
    }
  }
}

uint32_t big_endian32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

std::string dims_text(const std::vector<uint32_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

}  // namespace

IdxArray read_idx(const std::string& path, uint64_t max_bytes) {
  std::vector<uint8_t> raw = read_file(path);
  const bool gz = is_gzip(raw);
  std::vector<uint8_t> bytes = gz ? gunzip(path, raw, max_bytes) : std::move(raw);
  const char* what = gz ? "decompressed data" : "file";
  if (bytes.size() < 4) {
    fail(path, fmt::format("{} has {} bytes, too short for an IDX header (4 bytes of magic)", what,
                           bytes.size()));
  }
  const uint32_t magic = big_endian32(bytes.data());
  if (bytes[0] != 0 || bytes[1] != 0) {
    fail(path, fmt::format("bad magic number 0x{:08x}: not an IDX file (an IDX file starts with two "
                           "zero bytes, a type byte and the number of dimensions{})",
                           magic, gz ? "" : "; nor is it gzip-compressed"));
  }
  if (bytes[2] != 0x08) {
    fail(path, fmt::format("magic number 0x{:08x}: element type 0x{:02x} is not supported (only "
                           "0x08, unsigned byte)", magic, bytes[2]));
  }
  const size_t ndims = bytes[3];
  if (ndims == 0) fail(path, fmt::format("magic number 0x{:08x}: zero dimensions", magic));
  const size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) {
    fail(path, fmt::format("truncated header: {} dimensions need {} header bytes, the {} has {}",
                           ndims, header, what, bytes.size()));
  }
  IdxArray a;
  uint64_t count = 1;
  for (size_t i = 0; i < ndims; ++i) {
    const uint32_t d = big_endian32(bytes.data() + 4 + 4 * i);
    a.dims.push_back(d);
    if (d != 0 && count > max_bytes / d) {
      fail(path, fmt::format("dimensions {} describe more than {} bytes of data",
                             dims_text(a.dims), max_bytes));
    }
    count *= d;
  }
  const uint64_t have = bytes.size() - header;
  if (have < count) {
    fail(path, fmt::format("truncated: the header says {} = {} bytes of data, the {} has {}",
                           dims_text(a.dims), count, what, have));
  }
  if (have > count) {
    fail(path, fmt::format("{} bytes after the data: the header says {} = {} bytes, the {} has {}",
                           have - count, dims_text(a.dims), count, what, have));
  }
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

Split read_split(const std::string& images_path, const std::string& labels_path, int classes) {
  IdxArray images = read_idx(images_path);
  IdxArray labels = read_idx(labels_path);
  if (images.dims.size() != 3) {
    fail(images_path, fmt::format("expected 3 dimensions (images x rows x cols), got {} ({})",
                                  images.dims.size(), dims_text(images.dims)));
  }
  if (labels.dims.size() != 1) {
    fail(labels_path, fmt::format("expected 1 dimension (labels), got {} ({})", labels.dims.size(),
                                  dims_text(labels.dims)));
  }
  if (images.dims[1] == 0 || images.dims[2] == 0) {
    fail(images_path, fmt::format("empty images ({})", dims_text(images.dims)));
  }
  if (images.dims[0] != labels.dims[0]) {
    throw DataError(fmt::format("{} holds {} images but {} holds {} labels", images_path,
                                images.dims[0], labels_path, labels.dims[0]));
  }
  for (size_t i = 0; i < labels.data.size(); ++i) {
    if (labels.data[i] >= classes) {
      fail(labels_path, fmt::format("label {} of item {} is outside 0..{}", labels.data[i], i,
                                    classes - 1));
    }
  }
  Split s;
  s.count = images.dims[0];
  s.rows = images.dims[1];
  s.cols = images.dims[2];
  s.pixels = std::move(images.data);
  s.labels = std::move(labels.data);
  return s;
}

FashionMnist load_fashion_mnist(const std::string& dir) {
  namespace fs = std::filesystem;
  static constexpr const char* kNames[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                            "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  const auto expected = [&] {
    std::string s;
    for (const char* n : kNames) s += fmt::format("\n  {}.gz (or {})", n, n);
    return s;
  };
  const std::string hint = fmt::format(
      "\nInstall the Debian/Ubuntu package {} (apt-get install {}), which puts them in {}, or "
      "pass --data DIR with a directory that holds them.",
      kFashionMnistPackage, kFashionMnistPackage, kFashionMnistDebianDir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw DataError(fmt::format("Fashion-MNIST not found: {} is not a directory. Expected these "
                                "files there:{}{}", dir, expected(), hint));
  }
  std::string paths[4];
  std::string missing;
  for (int i = 0; i < 4; ++i) {
    const fs::path base = fs::path(dir) / kNames[i];
    const fs::path gz = fs::path(base.string() + ".gz");
    if (fs::is_regular_file(gz, ec)) {
      paths[i] = gz.string();
    } else if (fs::is_regular_file(base, ec)) {
      paths[i] = base.string();
    } else {
      missing += fmt::format("\n  {}.gz (or {})", kNames[i], kNames[i]);
    }
  }
  if (!missing.empty()) {
    throw DataError(fmt::format("Fashion-MNIST not found in {}: missing{}{}", dir, missing, hint));
  }
  FashionMnist d;
  d.train = read_split(paths[0], paths[1]);
  d.test = read_split(paths[2], paths[3]);
  if (d.train.rows != d.test.rows || d.train.cols != d.test.cols) {
    throw DataError(fmt::format("{} has {}x{} images but {} has {}x{}", paths[0], d.train.rows,
                                d.train.cols, paths[2], d.test.rows, d.test.cols));
  }
  return d;
}

Normalization pixel_statistics(const Split& train) {
  // Why a histogram: the pixels take 256 values, so the moments are exact sums of 256 terms,
  // independent of the order of the images.
  std::array<uint64_t, 256> hist{};
  for (uint8_t p : train.pixels) ++hist[p];
  const double n = static_cast<double>(train.pixels.size());
  Normalization z;
  if (n == 0) return z;
  double sum = 0;
  for (int v = 0; v < 256; ++v) sum += static_cast<double>(hist[v]) * (v / 255.0);
  z.mean = sum / n;
  double sq = 0;
  for (int v = 0; v < 256; ++v) {
    const double d = v / 255.0 - z.mean;
    sq += static_cast<double>(hist[v]) * d * d;
  }
  const double var = sq / n;
  z.stddev = var > 0 ? std::sqrt(var) : 1.0;
  return z;
}

}  // namespace swiglu::train
