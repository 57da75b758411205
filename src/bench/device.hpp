// Device facts for the benchmark (what `swiglubench info` prints and every JSON records), and the
// RAII owners of device resources (buffers, streams, events, CUDA graphs).
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace swiglu::bench {

// A CUDA or cuBLAS failure in the benchmark, with the call and its location.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* file, int line);

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    if (cudaError_t err_ = (call); err_ != cudaSuccess)                                   \
      ::swiglu::bench::throw_cuda(err_, #call, __FILE__, __LINE__);                       \
  } while (0)

struct DeviceInfo {
  int index = 0;
  std::string name;
  std::string slug;  // "h100-80gb-hbm3": lower case, no vendor, for results/<slug>/
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int64_t l2_bytes = 0;
  int64_t memory_bytes = 0;
  int max_sm_clock_mhz = 0;
  int max_mem_clock_mhz = 0;
  int memory_bus_bits = 0;
  int driver_version = 0;   // CUDA driver API version, e.g. 13000
  int runtime_version = 0;  // e.g. 13000
  int cublas_version = 0;   // e.g. 130100
  std::string driver_release;  // the display driver, e.g. "580.95.05" (from NVML when present)
  std::string pci_bus_id;
};

// Throws CudaError when the device cannot be queried.
DeviceInfo query_device(int index);

// Current SM clock in MHz through NVML, or -1 when NVML is not available.
int current_sm_clock_mhz(const DeviceInfo& dev);

std::string slugify_gpu_name(const std::string& name);

// Owns one cudaMalloc allocation.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;

  void* get() const { return ptr_; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class Stream {
 public:
  Stream();
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_ = nullptr;
};

class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

struct GraphDestroy {
  void operator()(cudaGraph_t g) const { cudaGraphDestroy(g); }
};
struct GraphExecDestroy {
  void operator()(cudaGraphExec_t e) const { cudaGraphExecDestroy(e); }
};
// Owners of a captured CUDA graph (cudaStreamEndCapture's result) and of an instantiated one
// (cudaGraphInstantiate's, what cudaGraphLaunch replays); null when empty.
using Graph = std::unique_ptr<std::remove_pointer_t<cudaGraph_t>, GraphDestroy>;
using GraphExec = std::unique_ptr<std::remove_pointer_t<cudaGraphExec_t>, GraphExecDestroy>;

}  // namespace swiglu::bench
