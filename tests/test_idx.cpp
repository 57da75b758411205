// Host tests of `swiglubench train`: the IDX reader on the real Fashion-MNIST files and on corrupt
// ones (made here, plain and gzip), the data set loader's errors, the input normalisation, the
// command line, the batch order, the initial weights and the agreement check.
#include <gtest/gtest.h>
#include <zlib.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "bench/cli.hpp"
#include "temp_dir.hpp"
#include "train/agreement.hpp"
#include "train/idx.hpp"
#include "train/options.hpp"
#include "train/trainer.hpp"

namespace swiglu::train {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// ---- helpers ------------------------------------------------------------------------------------

// An IDX file's bytes: magic (0, 0, type, ndims), big-endian dims, data.
Bytes idx_bytes(const std::vector<uint32_t>& dims, const Bytes& data, uint8_t type = 0x08) {
  Bytes b = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    b.push_back(static_cast<uint8_t>(d >> 24));
    b.push_back(static_cast<uint8_t>(d >> 16));
    b.push_back(static_cast<uint8_t>(d >> 8));
    b.push_back(static_cast<uint8_t>(d));
  }
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

Bytes gzip(const Bytes& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  Bytes out(deflateBound(&zs, static_cast<uLong>(in.size())) + 64);
  zs.next_in = const_cast<Bytef*>(in.data());
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = out.data();
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

Bytes iota_bytes(size_t n, uint8_t mod = 251) {
  Bytes b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i % mod);
  return b;
}

using test::TempDir;

// The message of the DataError `f` throws ("" when it throws nothing).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const DataError& e) {
    return e.what();
  }
  return "";
}

// ---- the real files -----------------------------------------------------------------------------

// Where the real files are: $SWIGLU_FASHION_MNIST_DIR, else where the Debian package puts them.
std::string dataset_dir() {
  const char* env = std::getenv("SWIGLU_FASHION_MNIST_DIR");
  return env != nullptr && *env != '\0' ? env : kFashionMnistDebianDir;
}

bool dataset_required() {
  const char* env = std::getenv("SWIGLU_REQUIRE_DATASET");
  return env != nullptr && *env != '\0' && std::string(env) != "0";
}

TEST(FashionMnistFiles, LoadAndCheckTheRealFiles) {
  const std::string dir = dataset_dir();
  if (!fs::exists(fs::path(dir) / "train-images-idx3-ubyte.gz") &&
      !fs::exists(fs::path(dir) / "train-images-idx3-ubyte")) {
    if (dataset_required()) {
      FAIL() << "SWIGLU_REQUIRE_DATASET is set but Fashion-MNIST is not in " << dir
             << " (install the Debian package " << kFashionMnistPackage
             << " or set SWIGLU_FASHION_MNIST_DIR)";
    }
    GTEST_SKIP() << "Fashion-MNIST not found in " << dir << " (install " << kFashionMnistPackage
                 << " or set SWIGLU_FASHION_MNIST_DIR; set SWIGLU_REQUIRE_DATASET=1 to fail instead)";
  }
  const FashionMnist d = load_fashion_mnist(dir);
  EXPECT_EQ(d.train.count, 60000);
  EXPECT_EQ(d.test.count, 10000);
  EXPECT_EQ(d.train.rows, 28);
  EXPECT_EQ(d.train.cols, 28);
  EXPECT_EQ(d.test.rows, 28);
  EXPECT_EQ(d.test.cols, 28);
  ASSERT_EQ(d.train.pixels.size(), size_t{60000} * 784);
  ASSERT_EQ(d.test.pixels.size(), size_t{10000} * 784);
  // Fashion-MNIST is balanced: 6000 and 1000 of each class; the first items are an ankle boot (9)
  // in both splits.
  for (const Split* s : {&d.train, &d.test}) {
    std::vector<int64_t> per_class(10, 0);
    for (uint8_t l : s->labels) ++per_class[l];
    for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], s->count / 10) << "class " << c;
  }
  EXPECT_EQ(d.train.labels[0], 9);
  EXPECT_EQ(d.train.labels[1], 0);
  EXPECT_EQ(d.test.labels[0], 9);
  EXPECT_EQ(d.test.labels[1], 2);
  const uint64_t first_image = std::accumulate(d.train.pixels.begin(), d.train.pixels.begin() + 784, uint64_t{0});
  EXPECT_EQ(first_image, 76247u);
  const Normalization z = pixel_statistics(d.train);
  EXPECT_NEAR(z.mean, 0.2860406, 1e-6);
  EXPECT_NEAR(z.stddev, 0.3530242, 1e-6);
}

// ---- the IDX reader on files made here ----------------------------------------------------------

TEST(Idx, ReadsPlainAndGzipFiles) {
  TempDir t;
  const Bytes data = iota_bytes(3 * 4 * 5);
  for (const bool gz : {false, true}) {
    const Bytes raw = idx_bytes({3, 4, 5}, data);
    const std::string p = t.write(gz ? "a.gz" : "a", gz ? gzip(raw) : raw);
    const IdxArray a = read_idx(p);
    EXPECT_EQ(a.dims, (std::vector<uint32_t>{3, 4, 5})) << p;
    EXPECT_EQ(a.data, data) << p;
  }
  // A gzip file is recognised by its content, not its name; two concatenated gzip members are one
  // stream, as gzip(1) reads them.
  const Bytes raw = idx_bytes({6}, iota_bytes(6));
  EXPECT_EQ(read_idx(t.write("no-suffix", gzip(raw))).data, iota_bytes(6));
  Bytes two = gzip(Bytes(raw.begin(), raw.begin() + 7));
  const Bytes second = gzip(Bytes(raw.begin() + 7, raw.end()));
  two.insert(two.end(), second.begin(), second.end());
  EXPECT_EQ(read_idx(t.write("two-members.gz", two)).data, iota_bytes(6));
  // An empty array is a valid file.
  EXPECT_TRUE(read_idx(t.write("empty", idx_bytes({0, 28, 28}, {}))).data.empty());
}

TEST(Idx, BadMagicIsNamed) {
  TempDir t;
  Bytes b = idx_bytes({4}, iota_bytes(4));
  b[0] = 0x12;
  b[1] = 0x34;
  const std::string p = t.write("bad-magic", b);
  const std::string msg = error_of([&] { read_idx(p); });
  EXPECT_NE(msg.find(p), std::string::npos) << msg;
  EXPECT_NE(msg.find("bad magic number 0x12340801"), std::string::npos) << msg;
  // A text file, a PNG, an empty file.
  EXPECT_NE(error_of([&] { read_idx(t.write("text", Bytes{'h', 'e', 'l', 'l', 'o', '\n'})); }).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of([&] { read_idx(t.write("png", Bytes{0x89, 'P', 'N', 'G', 0x0d, 0x0a})); }).find("bad magic"), std::string::npos);
  EXPECT_NE(error_of([&] { read_idx(t.write("zero", Bytes{})); }).find("too short"), std::string::npos);
  EXPECT_NE(error_of([&] { read_idx(t.write("gz-bad-magic.gz", gzip(b))); }).find("bad magic"), std::string::npos);
}

TEST(Idx, UnsupportedTypeAndDimensions) {
  TempDir t;
  const std::string f32 = t.write("float", idx_bytes({1}, {0, 0, 0, 0}, 0x0D));
  EXPECT_NE(error_of([&] { read_idx(f32); }).find("element type 0x0d is not supported"), std::string::npos);
  const std::string zero_dims = t.write("zero-dims", idx_bytes({}, {}));
  EXPECT_NE(error_of([&] { read_idx(zero_dims); }).find("zero dimensions"), std::string::npos);
  // Dimensions whose product no file could hold.
  const std::string huge = t.write("huge", idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 2}, {}));
  EXPECT_NE(error_of([&] { read_idx(huge); }).find("more than"), std::string::npos);
}

TEST(Idx, TruncatedAndOverlongFiles) {
  TempDir t;
  const Bytes full = idx_bytes({10, 3, 3}, iota_bytes(90));
  for (const bool gz : {false, true}) {
    const Bytes cut(full.begin(), full.end() - 5);
    const std::string p = t.write(gz ? "cut.gz" : "cut", gz ? gzip(cut) : cut);
    const std::string msg = error_of([&] { read_idx(p); });
    EXPECT_NE(msg.find("truncated: the header says 10 x 3 x 3 = 90 bytes of data"), std::string::npos) << msg;
    EXPECT_NE(msg.find("has 85"), std::string::npos) << msg;

    Bytes longer = full;
    longer.push_back(7);
    const std::string q = t.write(gz ? "long.gz" : "long", gz ? gzip(longer) : longer);
    EXPECT_NE(error_of([&] { read_idx(q); }).find("1 bytes after the data"), std::string::npos);
  }
  // The header itself cut short: 3 dimensions need 16 bytes.
  const std::string h = t.write("short-header", Bytes(full.begin(), full.begin() + 10));
  EXPECT_NE(error_of([&] { read_idx(h); }).find("truncated header"), std::string::npos);
}

TEST(Idx, BadGzipStreams) {
  TempDir t;
  const Bytes gz = gzip(idx_bytes({200}, iota_bytes(200, 7)));
  // Cut inside the compressed data, and inside the trailer.
  for (const size_t keep : {gz.size() / 2, gz.size() - 3}) {
    const std::string p = t.write("cut" + std::to_string(keep) + ".gz", Bytes(gz.begin(), gz.begin() + static_cast<std::ptrdiff_t>(keep)));
    const std::string msg = error_of([&] { read_idx(p); });
    EXPECT_NE(msg.find("gzip stream is truncated"), std::string::npos) << msg;
  }
  // A corrupt byte in the deflate data, and in the CRC-32 trailer.
  for (const size_t at : {size_t{12}, gz.size() - 6}) {
    Bytes bad = gz;
    bad[at] ^= 0x5A;
    const std::string p = t.write("corrupt" + std::to_string(at) + ".gz", bad);
    const std::string msg = error_of([&] { read_idx(p); });
    EXPECT_NE(msg.find("corrupt gzip data"), std::string::npos) << msg;
  }
  // Only the two magic bytes; garbage after a whole stream.
  EXPECT_NE(error_of([&] { read_idx(t.write("magic-only.gz", Bytes{0x1f, 0x8b})); }).find("gzip"), std::string::npos);
  Bytes trailing = gz;
  trailing.insert(trailing.end(), {'x', 'y', 'z'});
  EXPECT_NE(error_of([&] { read_idx(t.write("trailing.gz", trailing)); }).find("3 bytes after the end of the gzip stream"), std::string::npos);
  // A missing file.
  EXPECT_NE(error_of([&] { read_idx(t.path() + "/absent.gz"); }).find("cannot open"), std::string::npos);
}

TEST(Idx, SplitChecks) {
  TempDir t;
  const std::string images = t.write("img", idx_bytes({5, 2, 3}, iota_bytes(30)));
  const std::string labels = t.write("lab", idx_bytes({5}, {0, 1, 9, 3, 4}));
  const Split s = read_split(images, labels);
  EXPECT_EQ(s.count, 5);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.cols, 3);
  EXPECT_EQ(s.features(), 6);
  EXPECT_EQ(s.labels, (Bytes{0, 1, 9, 3, 4}));

  // Image and label counts differ.
  const std::string four = t.write("lab4", idx_bytes({4}, {0, 1, 2, 3}));
  std::string msg = error_of([&] { read_split(images, four); });
  EXPECT_NE(msg.find("holds 5 images but"), std::string::npos) << msg;
  EXPECT_NE(msg.find("holds 4 labels"), std::string::npos) << msg;
  // The files swapped: wrong numbers of dimensions.
  EXPECT_NE(error_of([&] { read_split(labels, images); }).find("expected 3 dimensions"), std::string::npos);
  EXPECT_NE(error_of([&] { read_split(images, images); }).find("expected 1 dimension"), std::string::npos);
  // A label outside 0..9.
  const std::string ten = t.write("lab10", idx_bytes({5}, {0, 1, 10, 3, 4}));
  msg = error_of([&] { read_split(images, ten); });
  EXPECT_NE(msg.find("label 10 of item 2 is outside 0..9"), std::string::npos) << msg;
  // Empty images.
  const std::string flat = t.write("flat", idx_bytes({5, 0, 3}, {}));
  EXPECT_NE(error_of([&] { read_split(flat, labels); }).find("empty images"), std::string::npos);
}

TEST(Idx, LoaderNamesTheFilesAndThePackage) {
  TempDir t;
  std::string msg = error_of([&] { load_fashion_mnist(t.path() + "/nowhere"); });
  for (const char* part : {"is not a directory", "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                           "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                           "dataset-fashion-mnist", kFashionMnistDebianDir, "--data"})
    EXPECT_NE(msg.find(part), std::string::npos) << part << " in: " << msg;

  // Two of four files present (one plain, one gzip): the message lists the other two only.
  t.write("train-images-idx3-ubyte", idx_bytes({2, 2, 2}, iota_bytes(8)));
  t.write("train-labels-idx1-ubyte.gz", gzip(idx_bytes({2}, {1, 2})));
  msg = error_of([&] { load_fashion_mnist(t.path()); });
  EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("train-images"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t10k-images-idx3-ubyte.gz"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t10k-labels-idx1-ubyte.gz"), std::string::npos) << msg;

  // All four, but the test images are 3 × 2.
  t.write("t10k-images-idx3-ubyte.gz", gzip(idx_bytes({1, 3, 2}, iota_bytes(6))));
  t.write("t10k-labels-idx1-ubyte.gz", gzip(idx_bytes({1}, {7})));
  msg = error_of([&] { load_fashion_mnist(t.path()); });
  EXPECT_NE(msg.find("2x2 images but"), std::string::npos) << msg;

  // Fixed: loads.
  t.write("t10k-images-idx3-ubyte.gz", gzip(idx_bytes({1, 2, 2}, iota_bytes(4))));
  const FashionMnist d = load_fashion_mnist(t.path());
  EXPECT_EQ(d.train.count, 2);
  EXPECT_EQ(d.test.count, 1);
  EXPECT_EQ(d.test.labels, (Bytes{7}));
}

TEST(Idx, PixelStatisticsAreExact) {
  Split s;
  s.count = 1;
  s.rows = 1;
  s.cols = 4;
  s.pixels = {0, 255, 255, 0};
  Normalization z = pixel_statistics(s);
  EXPECT_DOUBLE_EQ(z.mean, 0.5);
  EXPECT_DOUBLE_EQ(z.stddev, 0.5);
  s.pixels = {51, 51, 51, 51};  // constant: no spread, std falls back to 1
  z = pixel_statistics(s);
  EXPECT_DOUBLE_EQ(z.mean, 0.2);
  EXPECT_DOUBLE_EQ(z.stddev, 1.0);
}

// ---- the command line ---------------------------------------------------------------------------

bench::Command parse(std::vector<const char*> args) {
  args.insert(args.begin(), "swiglubench");
  return bench::parse_command_line(static_cast<int>(args.size()), args.data());
}

TEST(TrainCli, Defaults) {
  const bench::Command c = parse({"train"});
  ASSERT_EQ(c.kind, bench::Command::Kind::train);
  const TrainOptions& o = c.train;
  EXPECT_EQ(o.data_dir, kFashionMnistDebianDir);
  EXPECT_EQ(o.epochs, 5);
  EXPECT_EQ(o.batch, 128);
  EXPECT_EQ(o.hidden, 1024);
  EXPECT_FALSE(o.lr.has_value());
  EXPECT_DOUBLE_EQ(o.effective_lr(), 0.01);
  EXPECT_DOUBLE_EQ(o.effective_weight_decay(), 0.0);
  EXPECT_EQ(o.seed, 1234u);
  EXPECT_EQ(o.variants, (std::vector<LayerVariant>{LayerVariant::fused, LayerVariant::cublas2}));
  EXPECT_EQ(o.policy, Policy::save);
  EXPECT_TRUE(o.grads.dx);
  EXPECT_TRUE(o.grads.dw);
  EXPECT_EQ(o.dtype, DType::bf16);
  EXPECT_EQ(o.optimizer, Optimizer::sgd);
  EXPECT_DOUBLE_EQ(o.momentum, 0.9);
  EXPECT_EQ(o.max_steps, 0);
  EXPECT_TRUE(o.write_csv);
  EXPECT_TRUE(o.write_json);
}

TEST(TrainCli, Options) {
  const bench::Command c =
      parse({"train", "--data", "d", "--epochs", "7", "--batch", "100", "--hidden", "777", "--lr",
             "0.5", "--seed", "9", "--variant", "cublas2", "--policy", "recompute", "--grads", "dx",
             "--dtype", "fp16", "--optimizer", "adamw", "--weight-decay", "0.1", "--agree-tol",
             "0.2", "--max-steps", "3", "--device", "1", "--out", "o", "--name", "n", "--json"});
  ASSERT_EQ(c.kind, bench::Command::Kind::train);
  const TrainOptions& o = c.train;
  EXPECT_EQ(o.data_dir, "d");
  EXPECT_EQ(o.epochs, 7);
  EXPECT_EQ(o.batch, 100);
  EXPECT_EQ(o.hidden, 777);
  EXPECT_DOUBLE_EQ(o.effective_lr(), 0.5);
  EXPECT_EQ(o.seed, 9u);
  EXPECT_EQ(o.variants, (std::vector<LayerVariant>{LayerVariant::cublas2}));
  EXPECT_EQ(o.policy, Policy::recompute);
  EXPECT_TRUE(o.grads.dx);
  EXPECT_FALSE(o.grads.dw);
  EXPECT_EQ(o.dtype, DType::f16);
  EXPECT_EQ(o.optimizer, Optimizer::adamw);
  EXPECT_DOUBLE_EQ(o.effective_weight_decay(), 0.1);
  ASSERT_TRUE(o.agree_tol.has_value());
  EXPECT_DOUBLE_EQ(*o.agree_tol, 0.2);
  EXPECT_EQ(o.max_steps, 3);
  EXPECT_EQ(o.device, 1);
  EXPECT_EQ(o.out_dir, "o");
  EXPECT_EQ(o.name, "n");
  EXPECT_FALSE(o.write_csv);
  EXPECT_TRUE(o.write_json);
  // AdamW's own defaults.
  const bench::Command a = parse({"train", "--optimizer", "adamw", "--grads", "dw,dx"});
  EXPECT_DOUBLE_EQ(a.train.effective_lr(), 0.001);
  EXPECT_DOUBLE_EQ(a.train.effective_weight_decay(), 0.01);
  EXPECT_TRUE(a.train.grads.dx && a.train.grads.dw);
  // Three variants, in the order given (the first is the agreement's reference).
  const bench::Command v = parse({"train", "--variant", "cublas1,fused,cublas2"});
  EXPECT_EQ(v.train.variants, (std::vector<LayerVariant>{LayerVariant::cublas1, LayerVariant::fused,
                                                         LayerVariant::cublas2}));
}

TEST(TrainCli, BadValuesExitThree) {
  for (const std::vector<const char*>& bad : std::vector<std::vector<const char*>>{
           {"--epochs", "0"}, {"--epochs", "-3"}, {"--batch", "0"}, {"--hidden", "0"},
           {"--hidden", "100000"}, {"--lr", "0"}, {"--lr", "-0.1"}, {"--lr", "nan"}, {"--lr", "inf"},
           {"--lr", "0.1x"}, {"--momentum", "1"}, {"--momentum", "-0.5"}, {"--weight-decay", "-1"},
           {"--agree-tol", "0"}, {"--max-steps", "-1"}, {"--grads", "dz"}, {"--grads", ""},
           {"--variant", "fused,cublas3"}, {"--variant", ""}, {"--dtype", "fp4"},
           {"--policy", "keep"}, {"--optimizer", "adam"}, {"--no-such-option", "1"},
           // FP8 is the fused layer's (listed), with the save policy, hidden a multiple of 16.
           {"--dtype", "fp8", "--variant", "cublas2"}, {"--dtype", "fp8", "--variant", "cublas1,cublas2"},
           {"--dtype", "fp8", "--policy", "recompute"}, {"--dtype", "fp8", "--hidden", "100"}}) {
    std::vector<const char*> args = {"train"};
    args.insert(args.end(), bad.begin(), bad.end());
    const bench::Command c = parse(args);
    EXPECT_EQ(c.kind, bench::Command::Kind::exit) << bad[0] << " " << bad[1];
    EXPECT_EQ(c.exit_code, 3) << bad[0] << " " << bad[1];
  }
  const bench::Command help = parse({"train", "--help"});
  EXPECT_EQ(help.kind, bench::Command::Kind::exit);
  EXPECT_EQ(help.exit_code, 0);
}

TEST(TrainCli, Fp8TrainsTheFusedVariantAgainstBf16) {
  // The default variants stay: the fused layer in FP8, cublas2's in bf16 as its reference; the fused
  // one alone, or after a cuBLASLt one, is as valid. The rest of the model is bf16.
  using V = LayerVariant;
  const std::vector<std::pair<std::vector<const char*>, std::vector<V>>> cases = {
      {{"train", "--dtype", "fp8"}, {V::fused, V::cublas2}},
      {{"train", "--dtype", "fp8", "--variant", "fused", "--hidden", "512"}, {V::fused}},
      {{"train", "--dtype", "fp8", "--variant", "cublas1,fused"}, {V::cublas1, V::fused}}};
  for (const auto& [args, variants] : cases) {
    const bench::Command c = parse(args);
    ASSERT_EQ(c.kind, bench::Command::Kind::train) << args.size();
    EXPECT_EQ(c.train.dtype, DType::e4m3);
    EXPECT_EQ(c.train.variants, variants);
    EXPECT_EQ(compute_dtype(c.train.dtype), DType::bf16);
  }
  EXPECT_EQ(layer_dtype(DType::e4m3, V::fused), DType::e4m3);
  EXPECT_EQ(layer_dtype(DType::e4m3, V::cublas2), DType::bf16);
  EXPECT_EQ(layer_dtype(DType::e4m3, V::cublas1), DType::bf16);
  EXPECT_EQ(layer_dtype(DType::f16, V::cublas2), DType::f16);
  EXPECT_EQ(layer_dtype(DType::f32, V::fused), DType::f32);
  EXPECT_EQ(compute_dtype(DType::f16), DType::f16);
  // FP8 against bf16 is held 16x looser than bf16 against bf16 (e4m3's unit roundoff over bf16's,
  // TESTING.md), and AdamW's bound stays the one for every dtype.
  EXPECT_DOUBLE_EQ(agreement_tolerance(DType::e4m3, Optimizer::sgd), 0.2);
  EXPECT_DOUBLE_EQ(agreement_tolerance(DType::e4m3, Optimizer::adamw), 0.5);
}

// ---- batch order, initial weights, steps --------------------------------------------------------

TEST(TrainSetup, EpochOrderIsASeededPermutation) {
  const std::vector<int32_t> a = epoch_order(1234, 1, 1000);
  std::vector<int32_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (int32_t i = 0; i < 1000; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i);
  EXPECT_EQ(epoch_order(1234, 1, 1000), a);  // reproducible
  EXPECT_NE(epoch_order(1234, 2, 1000), a);  // a new order each epoch
  EXPECT_NE(epoch_order(1235, 1, 1000), a);  // and per seed
  // Pinned: the order must not change between builds, compilers or platforms (it is splitmix64
  // and integer arithmetic only), or recorded runs stop being reproducible.
  const std::vector<int32_t> small = epoch_order(1234, 1, 10);
  EXPECT_EQ(small, (std::vector<int32_t>{0, 5, 3, 8, 6, 7, 1, 4, 9, 2}));
  EXPECT_TRUE(epoch_order(1, 1, 0).empty());
  EXPECT_EQ(epoch_order(1, 1, 1), (std::vector<int32_t>{0}));
}

TEST(TrainSetup, InitialParamsLikeNnLinear) {
  const InitialParams p = initial_params(784, 64, 10, 99);
  ASSERT_EQ(p.w12.size(), size_t{2 * 64 * 784});
  ASSERT_EQ(p.b12.size(), size_t{128});
  ASSERT_EQ(p.w2.size(), size_t{640});
  ASSERT_EQ(p.b2.size(), size_t{10});
  const float a1 = 1.0f / std::sqrt(784.0f), a2 = 1.0f / std::sqrt(64.0f);
  const auto within = [](const std::vector<float>& v, float a) {
    return std::all_of(v.begin(), v.end(), [a](float x) { return x >= -a && x <= a; });
  };
  EXPECT_TRUE(within(p.w12, a1));
  EXPECT_TRUE(within(p.b12, a1));
  EXPECT_TRUE(within(p.w2, a2));
  EXPECT_TRUE(within(p.b2, a2));
  // Spread over the range (mean near 0, variance near a²/3), and the four tensors independent.
  double mean = 0, var = 0;
  for (float x : p.w12) mean += x;
  mean /= static_cast<double>(p.w12.size());
  for (float x : p.w12) var += (x - mean) * (x - mean);
  var /= static_cast<double>(p.w12.size());
  EXPECT_NEAR(mean, 0.0, 0.01 * a1);
  EXPECT_NEAR(var, a1 * a1 / 3.0, 0.02 * a1 * a1);
  EXPECT_NE(p.w12[0] / a1, p.b12[0] / a1);
  const InitialParams q = initial_params(784, 64, 10, 99);
  EXPECT_EQ(q.w12, p.w12);
  EXPECT_EQ(q.w2, p.w2);
  EXPECT_NE(initial_params(784, 64, 10, 100).w12, p.w12);
}

TEST(TrainSetup, StepRowsKeepThePartialBatch) {
  EXPECT_EQ(step_rows(1000, 128, 0), (std::vector<int64_t>{128, 128, 128, 128, 128, 128, 128, 104}));
  EXPECT_EQ(step_rows(256, 128, 0), (std::vector<int64_t>{128, 128}));
  EXPECT_EQ(step_rows(100, 1000, 0), (std::vector<int64_t>{100}));
  EXPECT_EQ(step_rows(1000, 128, 3), (std::vector<int64_t>{128, 128, 128}));
  EXPECT_EQ(step_rows(5, 1, 0), (std::vector<int64_t>{1, 1, 1, 1, 1}));
  EXPECT_TRUE(step_rows(0, 10, 0).empty());
  EXPECT_EQ(step_rows(60000, 128, 0).size(), size_t{469});
}

// ---- the agreement check ------------------------------------------------------------------------

TEST(TrainAgreement, WithinAndBeyondTheTolerance) {
  const std::vector<std::vector<double>> ref = {{2.3, 1.0, 0.5}, {0.4, 0.3}};
  std::vector<std::vector<double>> v = {{2.3001, 1.0, 0.5}, {0.4, 0.3004}};
  Agreement a = compare_step_losses(ref, v, 1e-3);
  EXPECT_TRUE(a.agree) << a.reason;
  EXPECT_EQ(a.steps, 5);
  EXPECT_NEAR(a.max_diff, 4e-4, 1e-12);
  EXPECT_EQ(a.epoch, 2);
  EXPECT_EQ(a.step, 2);
  EXPECT_NEAR(a.mean_diff, 5e-4 / 5, 1e-12);
  a = compare_step_losses(ref, v, 3e-4);
  EXPECT_FALSE(a.agree);
  EXPECT_NE(a.reason.find("epoch 2 step 2"), std::string::npos) << a.reason;
  // Identical runs agree at any tolerance, and the check is symmetric.
  EXPECT_TRUE(compare_step_losses(ref, ref, 1e-300).agree);
  EXPECT_DOUBLE_EQ(compare_step_losses(v, ref, 1).max_diff, compare_step_losses(ref, v, 1).max_diff);
}

TEST(TrainAgreement, NonFiniteMismatchedOrEmptyDisagree) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<std::vector<double>> ref = {{1.0, 0.5}};
  for (const double bad : {nan, inf}) {
    const Agreement a = compare_step_losses(ref, {{1.0, bad}}, 1e9);
    EXPECT_FALSE(a.agree);
    EXPECT_NE(a.reason.find("not finite"), std::string::npos) << a.reason;
    EXPECT_FALSE(compare_step_losses({{bad, 0.5}}, ref, 1e9).agree);
  }
  const Agreement m = compare_step_losses(ref, {{1.0}}, 1e9);
  EXPECT_FALSE(m.agree);
  EXPECT_NE(m.reason.find("steps"), std::string::npos) << m.reason;
  EXPECT_FALSE(compare_step_losses({}, {}, 1).agree);
  // An interrupted run: only the epochs both finished are compared.
  EXPECT_TRUE(compare_step_losses({{1.0}, {0.5}}, {{1.0}}, 1e-9).agree);
}

TEST(TrainAgreement, TolerancesOrderedByPrecision) {
  // SGD: tighter for more precise dtypes. AdamW: one loose bound (its runs decorrelate in any
  // dtype), never tighter than SGD's.
  EXPECT_LT(agreement_tolerance(DType::f32, Optimizer::sgd), agreement_tolerance(DType::f16, Optimizer::sgd));
  EXPECT_LT(agreement_tolerance(DType::f16, Optimizer::sgd), agreement_tolerance(DType::bf16, Optimizer::sgd));
  for (const DType d : {DType::f32, DType::f16, DType::bf16})
    EXPECT_LE(agreement_tolerance(d, Optimizer::sgd), agreement_tolerance(d, Optimizer::adamw));
}

}  // namespace
}  // namespace swiglu::train
