// main() of every GPU test executable: exits 77 (CTest's skip code for these tests) when this
// machine has no usable CUDA device, so a CPU-only run reports the GPU tests as skipped, with why.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdio>

int main(int argc, char** argv) {
  int driver = 0;
  // Why first: with no driver installed, cudaGetDeviceCount says "driver version is insufficient",
  // which is the wrong advice on a machine without a GPU.
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    std::printf("SKIPPED: no CUDA device (no NVIDIA driver found)\n");
    return 77;
  }
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("SKIPPED: no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
