#include "common/device.hpp"

#include <cublasLt.h>
#include <dlfcn.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cctype>
#include <mutex>

namespace swiglu::common {

std::string cuda_version(int v) { return fmt::format("{}.{}", v / 1000, v % 1000 / 10); }

void throw_cuda(cudaError_t e, const char* call, const char* file, int line) {
  throw CudaError(fmt::format("{} failed at {}:{}: {} ({})", call, file, line,
                              cudaGetErrorName(e), cudaGetErrorString(e)));
}

std::string slugify_gpu_name(const std::string& name) {
  std::string s;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) {
      s += static_cast<char>(std::tolower(u));
    } else if (!s.empty() && s.back() != '-') {
      s += '-';
    }
  }
  while (!s.empty() && s.back() == '-') s.pop_back();
  for (const char* vendor : {"nvidia-", "tesla-"}) {
    if (s.rfind(vendor, 0) == 0) s.erase(0, std::char_traits<char>::length(vendor));
  }
  return s.empty() ? "unknown-gpu" : s;
}

namespace {

// NVML comes with the driver, not the toolkit, and is absent on machines without a GPU: it is
// opened at run time and only the few entry points used here are declared.
struct Nvml {
  using Device = void*;
  int (*init)() = nullptr;
  int (*by_pci)(const char*, Device*) = nullptr;
  int (*clock)(Device, int, unsigned*) = nullptr;
  int (*driver)(char*, unsigned) = nullptr;
  bool ok = false;
};

const Nvml& nvml() {
  static Nvml n;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return;
    n.init = reinterpret_cast<int (*)()>(dlsym(lib, "nvmlInit_v2"));
    n.by_pci = reinterpret_cast<int (*)(const char*, Nvml::Device*)>(
        dlsym(lib, "nvmlDeviceGetHandleByPciBusId_v2"));
    n.clock = reinterpret_cast<int (*)(Nvml::Device, int, unsigned*)>(
        dlsym(lib, "nvmlDeviceGetClockInfo"));
    n.driver = reinterpret_cast<int (*)(char*, unsigned)>(dlsym(lib, "nvmlSystemGetDriverVersion"));
    n.ok = n.init && n.by_pci && n.clock && n.driver && n.init() == 0;
  });
  return n;
}

constexpr int kNvmlClockSm = 1;

// Why cudaGetDeviceCount failed, in words a newcomer can act on. The runtime says
// cudaErrorInsufficientDriver ("CUDA driver version is insufficient") also where there is no
// driver at all, and "update your driver" is the wrong advice there.
std::string no_device_message(cudaError_t e) {
  const std::string code = cudaGetErrorName(e);
  if (e != cudaErrorInsufficientDriver && e != cudaErrorNoDevice && e != cudaErrorStubLibrary) {
    return fmt::format("no usable CUDA device: {} ({})", code, cudaGetErrorString(e));
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  cudaRuntimeGetVersion(&runtime);
  const bool kernel_module = access("/proc/driver/nvidia/version", F_OK) == 0;
  if (driver == 0 || !kernel_module) {
    return fmt::format(
        "no NVIDIA driver or GPU found ({}: {}); this command needs an NVIDIA GPU and its driver",
        code,
        driver == 0
            ? "no CUDA driver library, libcuda.so.1, is installed"
            : "the NVIDIA kernel driver is not loaded, /proc/driver/nvidia/version is absent");
  }
  if (e == cudaErrorInsufficientDriver) {
    return fmt::format("the NVIDIA driver is too old ({}): it supports CUDA {}, this build needs "
                       "CUDA {} ({}.0 at least, through minor-version compatibility); install a "
                       "newer driver",
                       code, cuda_version(driver), cuda_version(runtime), runtime / 1000);
  }
  return fmt::format("no NVIDIA GPU found ({}): the driver (CUDA {}) is loaded but reports no "
                     "device; is CUDA_VISIBLE_DEVICES set?",
                     code, cuda_version(driver));
}

}  // namespace

DeviceInfo query_device(int index) {
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess) {
    throw CudaError(no_device_message(e));
  }
  if (index < 0 || index >= count) {
    throw CudaError(fmt::format("device {} does not exist: this machine has {} CUDA device(s)",
                                index, count));
  }
  DeviceInfo d;
  d.index = index;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  d.name = prop.name;
  d.slug = slugify_gpu_name(d.name);
  d.cc_major = prop.major;
  d.cc_minor = prop.minor;
  d.sm_count = prop.multiProcessorCount;
  d.l2_bytes = prop.l2CacheSize;
  d.memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
  int khz = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, index));
  d.max_sm_clock_mhz = khz / 1000;
  CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, index));
  d.max_mem_clock_mhz = khz / 1000;
  CUDA_CHECK(cudaDeviceGetAttribute(&d.memory_bus_bits, cudaDevAttrGlobalMemoryBusWidth, index));
  CUDA_CHECK(cudaDriverGetVersion(&d.driver_version));
  CUDA_CHECK(cudaRuntimeGetVersion(&d.runtime_version));
  d.cublas_version = static_cast<int>(cublasLtGetVersion());
  char bus[32] = {};
  CUDA_CHECK(cudaDeviceGetPCIBusId(bus, sizeof(bus), index));
  d.pci_bus_id = bus;
  if (const Nvml& n = nvml(); n.ok) {
    char buf[96] = {};
    if (n.driver(buf, sizeof(buf)) == 0) d.driver_release = buf;
  }
  return d;
}

int current_sm_clock_mhz(const DeviceInfo& dev) {
  const Nvml& n = nvml();
  if (!n.ok) return -1;
  Nvml::Device h = nullptr;
  unsigned mhz = 0;
  if (n.by_pci(dev.pci_bus_id.c_str(), &h) != 0 || n.clock(h, kNvmlClockSm, &mhz) != 0) return -1;
  return static_cast<int>(mhz);
}

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes > 0) CUDA_CHECK(cudaMalloc(&ptr_, bytes));
}
DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}
DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) {
  o.ptr_ = nullptr;
  o.bytes_ = 0;
}
DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = o.ptr_;
    bytes_ = o.bytes_;
    o.ptr_ = nullptr;
    o.bytes_ = 0;
  }
  return *this;
}

cudaError_t create_stream(cudaStream_t* s) {
  return cudaStreamCreateWithFlags(s, cudaStreamNonBlocking);
}
cudaError_t create_event(cudaEvent_t* e) { return cudaEventCreate(e); }

}  // namespace swiglu::common
