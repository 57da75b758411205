#include "bench/run.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "baselines/cublas_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/parity.hpp"
#include "bench/run_fp8.hpp"
#include "bench/session.hpp"
#include "bench/writers.hpp"
#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/host_data.hpp"
#include "common/json.hpp"
#include "common/provenance.hpp"

namespace swiglu::bench {

using common::Json;
using common::CudaError;
using common::DeviceInfo;
using common::query_device;
using common::current_sm_clock_mhz;
using common::DeviceBuffer;
using common::kPoisonByte;
using common::git_sha;
using common::kExitOk;
using common::kExitError;

std::string_view to_string(Op op) {
  switch (op) {
    case Op::check: return "check";
    case Op::forward: return "forward";
    case Op::backward: return "backward";
    case Op::step: return "step";
    case Op::memory: return "memory";
  }
  return "?";
}

std::string row_op(Op op) { return std::string(to_string(op == Op::check ? Op::forward : op)); }

double forward_flops(const Problem& p) {
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.in_features) * 2.0 *
         static_cast<double>(p.hidden);
}

double forward_min_bytes(const Problem& p) {
  const double B = static_cast<double>(p.batch), I = static_cast<double>(p.in_features),
               D = static_cast<double>(p.hidden);
  if (p.dtype == DType::e4m3) {
    const double kb = std::ceil(I / 128), db = std::ceil(D / 128);
    return B * I + 2 * D * I + 4 * (B * kb + 2 * db * kb) + B * D + 4 * B * db + (p.bias ? 2 * 2 * D : 0);
  }
  return static_cast<double>(dtype_size(p.dtype)) *
         (B * I + 2 * D * I + B * D + (p.bias ? 2 * D : 0));
}

double backward_flops(const Problem& p, Grads grads) {
  const double gemm = 2.0 * static_cast<double>(p.batch) * 2.0 * static_cast<double>(p.hidden) *
                      static_cast<double>(p.in_features);
  return (grads.dx ? gemm : 0.0) + (grads.dw ? gemm : 0.0);
}


namespace {

// One variant of a forward case: what runs, and what came of it.
struct ForwardVariant {
  Variant kind = Variant::fused;
  std::optional<TileConfig> tile;
  baselines::Plan plan;
  Row row;
  bool runnable = false;  // checked and passed
};

std::vector<ForwardVariant> make_variants(const Session& s, const Case& c) {
  const DeviceTraits traits = s.traits();
  const Problem& p = c.problem;
  std::vector<ForwardVariant> out;
  for (const Variant v : c.variants) {
    if (v != Variant::fused) {
      ForwardVariant var;
      var.kind = v;
      var.row = s.base_row(c, std::string(to_string(v)));
      out.push_back(std::move(var));
      continue;
    }
    std::vector<TileChoice> choices;
    for (const TileChoice& t : c.tiles) {
      if (t.kind != TileChoice::Kind::all) {
        choices.push_back(t);
        continue;
      }
      for (const TileConfig& tc : forward_tiles(p, traits))
        choices.push_back(TileChoice::named(tc));
    }
    for (const TileChoice& t : choices) {
      ForwardVariant var;
      var.row = s.base_row(c, "fused");
      var.row.tile_choice = t.kind == TileChoice::Kind::automatic ? "auto" : "forced";
      if (t.kind == TileChoice::Kind::automatic) {
        TileConfig tc;
        if (Status st = choose_forward_tile(p, traits, &tc); !st.ok()) {
          var.row.status = "SKIP";
          var.row.reason = st.message;
          var.row.tile = "auto";
        } else {
          var.tile = tc;
          var.row.tile = tc.name();
        }
      } else {
        const auto avail = forward_tiles(p, traits);
        var.row.tile = t.word;
        if (std::find(avail.begin(), avail.end(), t.tile) == avail.end()) {
          var.row.status = "SKIP";
          var.row.reason = fmt::format("tile {} is not compiled for {}/{} on sm_{}{}", t.word,
                                       to_string(p.dtype), to_string(p.layout), traits.cc_major,
                                       traits.cc_minor);
        } else {
          var.tile = t.tile;
        }
      }
      // The same tile twice (auto picked a listed one) runs once.
      const bool dup = std::any_of(out.begin(), out.end(), [&](const ForwardVariant& o) {
        return o.kind == Variant::fused && o.tile && var.tile && *o.tile == *var.tile;
      });
      if (!dup) out.push_back(std::move(var));
    }
  }
  return out;
}

void run_forward_case(Session& s, const Case& c) {
  if (c.problem.dtype == DType::e4m3) return run_fp8_forward_case(s, c);
  const RunOptions& o = s.options();
  const Problem& p = c.problem;
  const std::string label = case_label(c);
  nvtx3::scoped_range case_range{fmt::format("{}/case {}", to_string(o.op), label).c_str()};
  std::vector<ForwardVariant> variants = make_variants(s, c);
  std::vector<Row*> rows;
  for (ForwardVariant& v : variants) rows.push_back(&v.row);
  const size_t es = dtype_size(p.dtype);

  // Device memory this case needs, against what is free now.
  const bool any_baseline =
      std::any_of(variants.begin(), variants.end(),
                  [](const ForwardVariant& v) { return v.kind != Variant::fused; });
  const bool use_cpu_ref = use_cpu_reference(o, forward_flops(p) / 2);
  const double x_bytes = static_cast<double>(p.batch) * p.x_stride() * es;
  const double w_bytes = 2.0 * p.hidden * p.in_features * es;
  const double z_bytes = static_cast<double>(p.batch) * p.hidden * es;
  const double scratch = any_baseline ? 2.0 * p.batch * p.hidden * es : 0.0;
  const double ref_bytes =
      use_cpu_ref ? 0.0 : static_cast<double>(p.batch) * p.hidden * (2 * 4 + 4);
  if (s.skip_if_too_large(x_bytes + w_bytes + 2.0 * p.hidden * es + z_bytes + scratch + ref_bytes, rows))
    return;

  DeviceBuffer x, w, bias, z, scratch_buf;
  HostInputs in;
  {
    nvtx3::scoped_range r{"inputs"};
    in = make_inputs(p, o.seed, false);
    x = upload(in.x, p.dtype);
    w = upload(in.w, p.dtype);
    if (p.bias) bias = upload(in.bias, p.dtype);
    z = DeviceBuffer(static_cast<size_t>(z_bytes));
    if (any_baseline) scratch_buf = DeviceBuffer(static_cast<size_t>(scratch));
  }

  // The reference: fp64 on the CPU, or the fp32-accumulating cuBLAS path for large shapes.
  std::vector<double> ref64;
  std::vector<float> ref32;
  std::string ref_name;
  {
    nvtx3::scoped_range r{"reference"};
    if (use_cpu_ref) {
      ref64 = cpu_reference(p, in.x, in.w, in.bias);
      ref_name = "cpu-fp64";
    } else {
      DeviceBuffer h(baselines::reference_scratch_bytes(p));
      DeviceBuffer zr(static_cast<size_t>(p.batch * p.hidden) * sizeof(float));
      if (Status st = baselines::gpu_reference(s.cublas(), p, x.get(), w.get(), bias.get(),
                                               h.as<float>(), zr.as<float>(), s.stream());
          !st.ok()) {
        s.emit_all(rows, "ERROR", "GPU reference failed: " + st.message);
        return;
      }
      ref32.resize(static_cast<size_t>(p.batch * p.hidden));
      CUDA_CHECK(cudaMemcpy(ref32.data(), zr.get(), ref32.size() * sizeof(float), cudaMemcpyDeviceToHost));
      ref_name = "gpu-fp32";
    }
  }
  in = {};

  // Prepare, then check each variant on a poisoned output.
  // The baselines store G and U in the dtype between their launches, and may reduce split-K
  // slices in it; the fused kernel does neither.
  const auto tol_of = [&p](const ForwardVariant& v) {
    return tolerance(p, v.kind == Variant::fused ? kFusedRounding
                                                 : Rounding{1, v.plan.output_type_slices()});
  };
  const auto launch = [&](ForwardVariant& v, cudaStream_t st) {
    if (v.kind == Variant::fused) {
      ForwardOptions fo;
      fo.tile = v.tile;
      if (Status r = forward(p, x.get(), w.get(), bias.get(), z.get(), st, fo); !r.ok())
        throw CudaError(r.message);
    } else if (Status r = v.plan.run(st); !r.ok()) {
      throw CudaError(r.message);
    }
  };
  const auto poison = [&z](cudaStream_t st) {
    CUDA_CHECK(cudaMemsetAsync(z.get(), kPoisonByte, z.bytes(), st));
  };
  // Z (after a synchronisation) against the reference.
  const auto check_z = [&](const ForwardVariant& v) {
    const std::vector<float> got = download(z.get(), static_cast<size_t>(p.batch * p.hidden), p.dtype);
    return use_cpu_ref ? compare(got, ref64, tol_of(v)) : compare(got, ref32, tol_of(v));
  };
  const auto mismatch = [&](const ParityResult& pr) {
    const int64_t m = pr.worst_index >= 0 ? pr.worst_index / p.hidden : -1;
    const int64_t n = pr.worst_index >= 0 ? pr.worst_index % p.hidden : -1;
    return fmt::format("parity: {} at (row {}, col {}); {}", pr.summary(), m, n, pr.tolerance());
  };
  for (ForwardVariant& v : variants) {
    if (!v.row.status.empty() || s.stopped()) continue;
    const std::string range = fmt::format("check/{} {} tile={}", v.row.variant, label, v.row.tile);
    nvtx3::scoped_range r{range.c_str()};
    v.row.reference = ref_name;
    if (v.kind != Variant::fused) {
      if (Status st = baselines::Plan::create(s.cublas(), baseline_of(v.kind), p, x.get(), w.get(),
                                              bias.get(), z.get(), scratch_buf.get(), &v.plan);
          !st.ok()) {
        v.row.status = st.code == StatusCode::unsupported ? "SKIP" : "ERROR";
        v.row.reason = st.message;
        continue;
      }
    }
    v.runnable = check_forward_variant(
        s, v.row, label, poison, [&](cudaStream_t st) { launch(v, st); }, [&] { return check_z(v); }, mismatch);
    if (s.fatal()) break;
  }

  // Profile or time what passed.
  if (o.op == Op::forward) {
    std::vector<TimedRow> timed;
    for (ForwardVariant& v : variants) {
      const auto verify = [&check_z, &mismatch, &v] {
        const ParityResult pr = check_z(v);
        return pr.pass ? std::string() : mismatch(pr);
      };
      if (v.runnable)
        timed.push_back({&v.row, [&launch, &v](cudaStream_t st) { launch(v, st); }, poison, verify});
    }
    s.profile_or_time(label, timed, forward_flops(p), forward_min_bytes(p));
  }
  // Why: an interrupt may have cut the checks or the sampling of this case short; its rows would
  // carry fewer samples than asked for, so the case is dropped whole and only finished ones stay.
  if (s.stopped()) return;
  s.emit_all(rows, "ERROR", "not run: an earlier CUDA error left the device unusable");
}

}  // namespace

int run_sweep(const std::vector<Case>& cases, const RunOptions& options, const Json& resolved_config,
              const std::atomic<bool>& stop) {
  return with_session(options, stop, [&](Session& s) {
    return s.run(cases, resolved_config, [&s](const Case& c) { run_forward_case(s, c); });
  });
}

int print_info(int device) {
  try {
    const DeviceInfo d = query_device(device);
    std::printf("device %d: %s\n", d.index, d.name.c_str());
    std::printf("  compute capability  %d.%d\n", d.cc_major, d.cc_minor);
    std::printf("  SMs                 %d\n", d.sm_count);
    std::printf("  L2 cache            %.1f MiB\n", d.l2_bytes / 1048576.0);
    std::printf("  memory              %.1f GiB, %d-bit bus, %d MHz\n", d.memory_bytes / kGiB,
                d.memory_bus_bits, d.max_mem_clock_mhz);
    const int cur = current_sm_clock_mhz(d);
    std::printf("  SM clock            max %d MHz, now %s\n", d.max_sm_clock_mhz,
                cur > 0 ? fmt::format("{} MHz", cur).c_str() : "unknown (no NVML)");
    std::printf("  driver              %s (CUDA %s)\n",
                d.driver_release.empty() ? "unknown" : d.driver_release.c_str(),
                common::cuda_version(d.driver_version).c_str());
    std::printf("  CUDA runtime        %s\n", common::cuda_version(d.runtime_version).c_str());
    std::printf("  cuBLAS              %d\n", d.cublas_version);
    std::printf("  swiglu              %s (git %s)\n", SWIGLU_VERSION, git_sha().c_str());
    const DeviceTraits t{d.cc_major, d.cc_minor, d.sm_count};
    for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
      for (Math m : {Math::exact, Math::tf32, Math::tf32x3}) {
        if (dt != DType::f32 && m != Math::exact) continue;
        Problem p;
        p.dtype = dt;
        p.math = m;
        std::vector<std::string> names;
        for (const auto& tc : forward_tiles(p, t)) names.push_back(tc.name());
        const std::string list = fmt::format("{}", fmt::join(names, " "));
        std::printf("  fused tiles %-4s %-6s %s\n", std::string(to_string(dt)).c_str(),
                    std::string(to_string(m)).c_str(), list.empty() ? "(none)" : list.c_str());
      }
    }
    // The backward GEMMs' tiles (the same list for dX and dW, and for both layouts).
    for (DType dt : {DType::bf16, DType::f16, DType::f32}) {
      Problem p;
      p.dtype = dt;
      std::vector<std::string> names;
      for (const auto& tc : backward_dx_tiles(p, t)) names.push_back(tc.name());
      const std::string list = fmt::format("{}", fmt::join(names, " "));
      std::printf("  dX/dW tiles %-4s        %s\n", std::string(to_string(dt)).c_str(),
                  list.empty() ? "(none)" : list.c_str());
    }
    return kExitOk;
  } catch (const CudaError& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

}  // namespace swiglu::bench
