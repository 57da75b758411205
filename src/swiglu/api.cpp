// forward() and backward(): validate, plan (plan.cpp), launch.
#include <cuda_runtime_api.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <string>

#include "swiglu/elementwise.hpp"
#include "swiglu/plan.hpp"
#include "swiglu/swiglu.hpp"
#include "swiglu/validate.hpp"

namespace swiglu {
namespace {

using detail::fail;

Status launched(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::success();
  return fail(StatusCode::cuda_error, what + cudaGetErrorString(e));
}

Status launch(const detail::ForwardPlan& f, cudaStream_t stream) {
  return launched(f.kernel->forward(f.params, stream), "launch of fused forward " + f.tile.name() + " failed: ");
}

Status launch(const detail::GemmPlan& g, const char* name, cudaStream_t stream) {
  if (g.clear_bytes > 0) {
    if (Status s = launched(cudaMemsetAsync(g.params.partial, 0, g.clear_bytes, stream), "clearing the split-K sums: ");
        !s.ok())
      return s;
  }
  return launched(g.kernel->backward(g.params, stream),
                  std::string("launch of the ") + name + " GEMM " + g.tile.name() + " failed: ");
}

// The backward of one row chunk (the whole batch when unbounded): plan, then launch. chunked: one
// of several (its dW must be able to add onto C); accumulate: dW and dbias add onto what they hold.
Status run_backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o, void* workspace,
                    const DeviceTraits& dev, bool chunked, bool accumulate, cudaStream_t stream,
                    BackwardTiles* used) {
  detail::BackwardPlan plan;
  if (Status s = detail::plan_backward(p, t, o, workspace, dev, &plan); !s.ok()) return s;
  // Why before any launch: the first chunk's plan stands for all (their rows differ by one at most),
  // so a refusal leaves every output untouched.
  if (chunked && plan.dw && plan.dw->tile.family == Family::gemv) {
    return fail(StatusCode::invalid_argument,
                "dw tile " + plan.dw->tile.name() + " cannot run a chunked backward (max_workspace_bytes): a gemv dW "
                "writes its rows once and adds nothing onto them; take an sm90, sm80 or SIMT tile, or no bound");
  }
  const size_t es = dtype_size(p.dtype);
  const int64_t B = p.batch, D = p.hidden;
  if (plan.recompute) {
    if (Status s = launch(*plan.recompute, stream); !s.ok()) return s;
    used->recompute = plan.recompute->tile;
  }
  if (plan.gate_pass) {
    const char* h = static_cast<const char*>(plan.h);
    char* dh = static_cast<char*>(plan.dh_store);
    const size_t half = static_cast<size_t>(D) * es;  // G | U and dG | dU: D columns each
    if (Status s = launched(detail::launch_gate_backward(p.dtype, p.dtype, h, 2 * D, h + half, 2 * D, t.dz, D, dh,
                                                         2 * D, dh + half, 2 * D, B, D, stream),
                            "launch of the gate backward failed: ");
        !s.ok())
      return s;
  }
  if (plan.dx) {
    if (Status s = launch(*plan.dx, "dX", stream); !s.ok()) return s;
    used->dx = plan.dx->tile;
    used->dx_splits = plan.dx->params.splits;
  }
  if (plan.dw) {
    plan.dw->params.accumulate = accumulate ? 1 : 0;
    if (Status s = launch(*plan.dw, "dW", stream); !s.ok()) return s;
    used->dw = plan.dw->tile;
    if (plan.dbias_source != nullptr) {
      if (Status s = launched(detail::launch_column_sum(p.dtype, p.dtype, plan.dbias_source, 2 * D, t.dbias, B,
                                                        2 * D, stream, accumulate),
                              "launch of the dbias column sum failed: ");
          !s.ok())
        return s;
    }
  }
  return Status::success();
}

}  // namespace

Status forward(const Problem& p, const void* x, const void* w, const void* bias, void* z,
               cudaStream_t stream, const ForwardOptions& options, TileConfig* used_tile) {
  nvtx3::scoped_range range{"swiglu::forward"};
  if (Status s = validate_forward(p, x, w, bias, z); !s.ok()) return s;
  if (p.batch == 0) return Status::success();
  if (options.saved != nullptr) {
    using detail::Range;
    const Range in_x{"x", x, detail::x_elems(p)}, in_w{"w", w, detail::w_elems(p)};
    const Range out_z{"z", z, p.batch * p.hidden}, out_h{"saved", options.saved, p.batch * 2 * p.hidden};
    if (Status s = detail::check_pointers(p, {in_x, in_w}, {out_z, out_h}); !s.ok()) return s;
    if (p.bias) {
      if (Status s = detail::check_pointers(p, {{"bias", bias, 2 * p.hidden}}, {out_h}); !s.ok()) return s;
    }
  }
  DeviceTraits dev;
  if (Status s = detail::current_device(&dev); !s.ok()) return s;
  if (Status s = detail::check_math_on_device(p, dev); !s.ok()) return s;

  detail::ForwardPlan plan;
  if (Status s = detail::plan_forward(p, dev, options.tile, x, w, bias, z, options.saved, nullptr, nullptr, &plan);
      !s.ok())
    return s;
  if (Status s = launch(plan, stream); !s.ok()) return s;
  if (used_tile != nullptr) *used_tile = plan.tile;
  return Status::success();
}

Status backward(const Problem& p, const BackwardTensors& t, const BackwardOptions& o,
                void* workspace, size_t workspace_bytes, cudaStream_t stream,
                BackwardTiles* used_tiles) {
  nvtx3::scoped_range range{"swiglu::backward"};
  if (Status s = validate_backward(p, t, o, workspace, workspace_bytes); !s.ok()) return s;
  BackwardTiles used;
  const size_t es = dtype_size(p.dtype);
  if (p.batch == 0) {
    // An empty batch contributes nothing: the weight gradients are zero (all-zero bits are +0 in
    // every dtype).
    if (o.grads.dw) {
      if (Status s = launched(cudaMemsetAsync(t.dw, 0, static_cast<size_t>(detail::w_elems(p)) * es, stream),
                              "zeroing dw: ");
          !s.ok())
        return s;
      if (p.bias) {
        if (Status s = launched(cudaMemsetAsync(t.dbias, 0, static_cast<size_t>(2 * p.hidden) * es, stream),
                                "zeroing dbias: ");
            !s.ok())
          return s;
      }
    }
    if (used_tiles != nullptr) *used_tiles = used;
    return Status::success();
  }
  DeviceTraits dev;
  if (Status s = detail::current_device(&dev); !s.ok()) return s;
  const detail::Chunking chunking = detail::backward_chunking(p, o, dev);
  const int64_t chunks = std::max<int64_t>(chunking.chunks, 1);  // (validate refused 0)
  used.chunks = chunks;
  const int64_t B = p.batch, D = p.hidden, I = p.in_features;
  for (int64_t i = 0; i < chunks; ++i) {
    // Rows [r0, r1) of every row-indexed tensor; the weight gradients add onto the first chunk's.
    const int64_t r0 = B * i / chunks, r1 = B * (i + 1) / chunks;
    Problem q = p;
    q.batch = r1 - r0;
    BackwardTensors tc = t;
    tc.x = static_cast<const char*>(t.x) + static_cast<size_t>(r0 * p.x_stride()) * es;
    tc.dz = static_cast<const char*>(t.dz) + static_cast<size_t>(r0 * D) * es;
    if (t.saved != nullptr) tc.saved = static_cast<const char*>(t.saved) + static_cast<size_t>(r0 * 2 * D) * es;
    if (t.dx != nullptr) tc.dx = static_cast<char*>(t.dx) + static_cast<size_t>(r0 * I) * es;
    if (t.dh != nullptr) tc.dh = static_cast<char*>(t.dh) + static_cast<size_t>(r0 * 2 * D) * es;
    // The first chunk's tiles stand for all (their rows differ by one at most).
    BackwardTiles later;
    if (Status s = run_backward(q, tc, o, workspace, dev, chunks > 1, /*accumulate=*/i > 0, stream,
                                i == 0 ? &used : &later);
        !s.ok())
      return s;
  }
  if (used_tiles != nullptr) *used_tiles = used;
  return Status::success();
}

}  // namespace swiglu
