// RAII owners of device resources (buffers, streams, events, CUDA graphs), CUDA_CHECK, and the
// device facts every result file records and `swiglubench info` prints.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

namespace swiglu::common {

// A CUDA or cuBLAS failure, with the call and its location.
class CudaError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void throw_cuda(cudaError_t e, const char* call, const char* file, int line);

#define CUDA_CHECK(call)                                                                  \
  do {                                                                                    \
    if (cudaError_t err_ = (call); err_ != cudaSuccess)                                   \
      ::swiglu::common::throw_cuda(err_, #call, __FILE__, __LINE__);                       \
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

// A CUDA version number as text: 13000 → "13.0".
std::string cuda_version(int version);

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

// Owns one stream or event: created with the owner (CUDA_CHECK), destroyed with it.
template <typename Handle, cudaError_t (*Create)(Handle*), cudaError_t (*Destroy)(Handle)>
class CudaHandle {
 public:
  CudaHandle() { CUDA_CHECK(Create(&h_)); }
  ~CudaHandle() {
    if (h_) Destroy(h_);
  }
  CudaHandle(const CudaHandle&) = delete;
  CudaHandle& operator=(const CudaHandle&) = delete;
  Handle get() const { return h_; }

 private:
  Handle h_ = nullptr;
};

cudaError_t create_stream(cudaStream_t* s);  // non-blocking
cudaError_t create_event(cudaEvent_t* e);
using Stream = CudaHandle<cudaStream_t, create_stream, cudaStreamDestroy>;
using Event = CudaHandle<cudaEvent_t, create_event, cudaEventDestroy>;

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

}  // namespace swiglu::common
