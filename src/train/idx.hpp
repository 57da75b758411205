// IDX files (the MNIST container format) and the Fashion-MNIST data set they hold.
//
// An IDX file is: two zero bytes, a type byte (0x08: unsigned byte, the only type this reader
// accepts), the number of dimensions n, then n big-endian uint32 sizes, then the elements in
// row-major order and nothing after them. Files may be gzip-compressed (as Debian's
// `dataset-fashion-mnist` ships them, under /usr/share/datasets/fashion-mnist/) or plain; a gzip
// file is recognised by its magic bytes 1f 8b, whatever its name.
//
// Every check names the file and the failing values: bad magic, an unsupported type, dimension
// counts or sizes that are not what the caller expects, an element count that overflows, data cut
// short (or longer than the header says), a corrupt gzip stream, image and label counts that
// differ, labels outside 0..9.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace swiglu::train {

// A malformed, missing or unreadable data file; what() names the file and what is wrong with it.
class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct IdxArray {
  std::vector<uint32_t> dims;  // e.g. {60000, 28, 28}
  std::vector<uint8_t> data;   // the product of dims elements
};

// Reads a whole IDX file of unsigned bytes (gzip or plain). Throws DataError. Decompressed data
// beyond max_bytes is an error (a guard against a corrupt or hostile length, not a real limit:
// Fashion-MNIST's largest file is 47 MB).
IdxArray read_idx(const std::string& path, uint64_t max_bytes = uint64_t{1} << 31);

// Reads an image file (3 dimensions: count × rows × cols) and its label file (1 dimension: count)
// and checks that they belong together: equal counts, labels below `classes`.
struct Split {
  int64_t count = 0;
  int64_t rows = 0, cols = 0;   // 28 × 28 for Fashion-MNIST
  std::vector<uint8_t> pixels;  // count × rows × cols, row-major
  std::vector<uint8_t> labels;  // count

  int64_t features() const { return rows * cols; }
};
Split read_split(const std::string& images_path, const std::string& labels_path, int classes = 10);

inline constexpr const char* kFashionMnistDebianDir = "/usr/share/datasets/fashion-mnist";
inline constexpr const char* kFashionMnistPackage = "dataset-fashion-mnist";

struct FashionMnist {
  Split train, test;  // 60000 and 10000 images of 28 × 28
};

// Loads the four files from `dir`: train-images-idx3-ubyte, train-labels-idx1-ubyte,
// t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each with ".gz" or without. A missing directory
// or file is a DataError naming the files expected and the Debian package that installs them.
// Both splits must have the same image size.
FashionMnist load_fashion_mnist(const std::string& dir);

// Input normalisation: pixels are scaled to [0, 1] (p / 255), then standardised with one mean and
// one standard deviation over every pixel of the training split (about 0.286 and 0.353 for
// Fashion-MNIST), so x = (p / 255 − mean) / std. The same numbers apply to the test split.
struct Normalization {
  double mean = 0.0;
  double stddev = 1.0;
};
Normalization pixel_statistics(const Split& train);

}  // namespace swiglu::train
