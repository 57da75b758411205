// The FP8 forward case (`--dtype fp8`, run_fp8.hpp): the case's seeded bf16 inputs quantised by the
// library, the reference on their dequantised values, then the fused FP8 forward and the unfused
// cuBLASLt FP8 baselines checked on poisoned outputs and timed as run.cpp times the others.
#include "bench/run_fp8.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "baselines/fp8_baselines.hpp"
#include "baselines/gpu_reference.hpp"
#include "bench/cpu_reference.hpp"
#include "bench/parity.hpp"
#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/host_data.hpp"
#include "common/parallel.hpp"

namespace swiglu::bench {

using common::CudaError;
using common::DeviceBuffer;
using common::kPoisonByte;

namespace {

constexpr int64_t kBlock = 128;  // the scale blocks' side

int64_t blocks_of(int64_t n) { return (n + kBlock - 1) / kBlock; }

// One variant of an FP8 case.
struct Fp8Variant {
  Variant kind = Variant::fused;
  baselines::Fp8Plan plan;
  Row row;
  bool runnable = false;
};

template <class T>
std::vector<T> read_back(const void* device, size_t n) {
  std::vector<T> out(n);
  if (n > 0) CUDA_CHECK(cudaMemcpy(out.data(), device, n * sizeof(T), cudaMemcpyDeviceToHost));
  return out;
}

}  // namespace

std::vector<float> dequantise_e4m3(const std::vector<unsigned char>& q, const std::vector<float>& scale, int64_t rows,
                                   int64_t cols, int64_t ld, int64_t block_rows) {
  std::vector<float> out(static_cast<size_t>(rows * ld), 0.0f);
  const std::array<float, 256>& value = common::e4m3_values();
  const int64_t kb = blocks_of(cols);
  // Rows over the host's threads: a weight is hundreds of millions of bytes.
  common::parallel_for(rows, common::threads_for(static_cast<size_t>(rows * cols)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = scale.data() + (r / block_rows) * kb;
      for (int64_t c = 0; c < cols; ++c) out[r * ld + c] = value[q[r * ld + c]] * s[c / kBlock];
    }
  });
  return out;
}

// Why a reason rather than a launch: the rows of a problem the FP8 path does not take say why.
std::optional<std::string> fp8_unsupported_reason(const Problem& p, const DeviceTraits& t, bool backward) {
  if (t.cc_major != 9 || t.cc_minor != 0) {
    return fmt::format("the FP8 {} needs compute capability 9.0 (sm_90a); this device is sm_{}{}",
                       backward ? "backward" : "forward", t.cc_major, t.cc_minor);
  }
  if (p.layout != Layout::linear) return std::string("the FP8 forward takes the linear layout (W12 = [Wa; Wb], 2D×I)");
  if (p.in_features % 16 != 0 || p.x_stride() % 16 != 0) {
    return fmt::format("the FP8 forward needs I and X's row stride to be multiples of 16 (16-byte TMA rows); "
                       "I={} stride={}",
                       p.in_features, p.x_stride());
  }
  if (backward && p.hidden % 16 != 0) {
    return fmt::format("the FP8 backward needs D to be a multiple of 16 (the dU half of dH and of W12^T starts "
                       "16-byte aligned); D={}",
                       p.hidden);
  }
  return std::nullopt;
}

Status quantise_fp8_operands(const Problem& p, const HostInputs& in, bool transposed, cudaStream_t stream,
                             Fp8Operands* out) {
  nvtx3::scoped_range r{"quantise"};
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  const int64_t kb = blocks_of(I), db = blocks_of(D), rb = blocks_of(B);
  Fp8Operands& o = *out;
  o.xq = DeviceBuffer(static_cast<size_t>(B * ldx));
  o.x_scale = DeviceBuffer(static_cast<size_t>(B * kb) * 4);
  o.wq = DeviceBuffer(static_cast<size_t>(2 * D * I));
  o.w_scale = DeviceBuffer(static_cast<size_t>(2 * db * kb) * 4);
  if (transposed) {
    o.ldxt = (B + 15) / 16 * 16;
    o.xt = DeviceBuffer(static_cast<size_t>(I * o.ldxt));
    o.xt_scale = DeviceBuffer(static_cast<size_t>(I * rb) * 4);
    o.wt = DeviceBuffer(static_cast<size_t>(I * 2 * D));
    o.wt_scale = DeviceBuffer(static_cast<size_t>(2 * kb * db) * 4);
    // Why zeros: Xᵀ's padding columns are K for the baselines' dW GEMM (fp8_baselines.hpp).
    CUDA_CHECK(cudaMemsetAsync(o.xt.get(), 0, o.xt.bytes(), stream));
  }
  const DeviceBuffer x = upload(in.x, DType::bf16), w = upload(in.w, DType::bf16);
  const auto* wb = static_cast<const unsigned char*>(w.get());
  auto* wq = o.wq.as<unsigned char>();
  Status st = transposed ? quantize_e4m3_transposed(DType::bf16, x.get(), ldx, B, I, Fp8Blocks::row_1x128, o.xq.get(), ldx,
                                                    o.x_scale.as<float>(), o.xt.get(), o.ldxt, o.xt_scale.as<float>(),
                                                    stream)
                         : quantize_e4m3(DType::bf16, x.get(), ldx, B, I, Fp8Blocks::row_1x128, o.xq.get(), ldx,
                                         o.x_scale.as<float>(), stream);
  // W12's 128×128 blocks must not straddle Wa and Wb: each half is quantised on its own, its scales
  // one after the other (Fp8Scaling::blocks), and its transposed copy into W12ᵀ's columns of that half.
  for (int64_t h = 0; h < 2 && st.ok(); ++h) {
    const unsigned char* half = wb + h * D * I * 2;
    st = transposed ? quantize_e4m3_transposed(DType::bf16, half, I, D, I, Fp8Blocks::tile_128x128, wq + h * D * I, I,
                                               o.w_scale.as<float>() + h * db * kb, o.wt.as<unsigned char>() + h * D,
                                               2 * D, o.wt_scale.as<float>() + h * kb * db, stream)
                    : quantize_e4m3(DType::bf16, half, I, D, I, Fp8Blocks::tile_128x128, wq + h * D * I, I,
                                    o.w_scale.as<float>() + h * db * kb, stream);
  }
  Fp8Tensors scales;
  scales.x_scale = o.x_scale.as<float>();
  scales.w_scale = o.w_scale.as<float>();
  if (st.ok()) st = check_fp8_scales(fp8_problem(p), scales, stream);
  if (!st.ok()) return st;
  // Why ldx: the padding between X's rows is quantised as nothing and read as nothing.
  o.x = dequantise_e4m3(read_back<unsigned char>(o.xq.get(), static_cast<size_t>(B * ldx)),
                        read_back<float>(o.x_scale.get(), static_cast<size_t>(B * kb)), B, I, ldx, 1);
  o.w = dequantise_e4m3(read_back<unsigned char>(o.wq.get(), static_cast<size_t>(2 * D * I)),
                        read_back<float>(o.w_scale.get(), static_cast<size_t>(2 * db * kb)), 2 * D, I, I, kBlock);
  if (transposed) {
    // Xᵀ (I × B in 1×128 blocks along B) back into X's layout.
    const std::vector<float> xt = dequantise_e4m3(read_back<unsigned char>(o.xt.get(), o.xt.bytes()),
                                                  read_back<float>(o.xt_scale.get(), static_cast<size_t>(I * rb)), I,
                                                  B, o.ldxt, 1);
    o.x_dw.assign(static_cast<size_t>(B * ldx), 0.0f);
    common::parallel_for(B, common::threads_for(static_cast<size_t>(B * I)), [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        for (int64_t i = 0; i < I; ++i) o.x_dw[b * ldx + i] = xt[i * o.ldxt + b];
    });
  }
  return Status::success();
}

Fp8Problem fp8_problem(const Problem& p) {
  Fp8Problem f;
  f.batch = p.batch;
  f.in_features = p.in_features;
  f.hidden = p.hidden;
  f.ldx = p.x_stride();
  f.x_scaling = Fp8Scaling::blocks;
  f.w_scaling = Fp8Scaling::blocks;
  f.out = DType::bf16;
  f.bias = p.bias;
  f.z_e4m3 = true;
  return f;
}

void run_fp8_forward_case(Session& s, const Case& c) {
  const RunOptions& o = s.options();
  const Problem& p = c.problem;
  const std::string label = case_label(c);
  nvtx3::scoped_range case_range{fmt::format("{}/case {}", to_string(o.op), label).c_str()};
  const int64_t B = p.batch, I = p.in_features, D = p.hidden, ldx = p.x_stride();
  const int64_t kb = blocks_of(I), db = blocks_of(D);

  std::vector<Fp8Variant> variants;
  for (const Variant v : c.variants) {
    Fp8Variant var;
    var.kind = v;
    var.row = s.base_row(c, std::string(to_string(v)));
    if (v == Variant::fused) {
      var.row.tile = std::string(forward_fp8_kernel(fp8_problem(p)));
      var.row.tile_choice = "auto";
      const bool named = std::any_of(c.tiles.begin(), c.tiles.end(),
                                     [](const TileChoice& t) { return t.kind == TileChoice::Kind::named; });
      if (named) {
        var.row.status = "SKIP";
        var.row.reason = fmt::format("the FP8 forward picks its kernel ({}) by B: --tiles auto or all", var.row.tile);
      }
    }
    variants.push_back(std::move(var));
  }
  std::vector<Row*> rows;
  for (Fp8Variant& v : variants) rows.push_back(&v.row);
  if (const auto why = fp8_unsupported_reason(p, s.traits(), false)) {
    s.emit_all(rows, "SKIP", *why);
    return;
  }

  const Fp8Problem fp = fp8_problem(p);
  const bool any_baseline = std::any_of(variants.begin(), variants.end(),
                                        [](const Fp8Variant& v) { return v.kind != Variant::fused; });
  const bool use_cpu_ref = use_cpu_reference(o, forward_flops(p) / 2);
  // Device memory: the bf16 originals (freed once quantised), the e4m3 operands and their scales,
  // Z and its scales, the baselines' scratch, and the fp32 reference's operands and outputs.
  const double bf16_in = 2.0 * (static_cast<double>(B) * ldx + 2.0 * D * I);
  const double fp8_in = static_cast<double>(B) * ldx + 2.0 * D * I + 4.0 * (B * kb + 2 * db * kb);
  const double z_bytes = static_cast<double>(B) * D + 4.0 * B * db + 2.0 * 2 * D;
  double scratch = 0;
  for (const Variant v : {Variant::cublas2, Variant::cublas1})
    if (any_baseline) scratch = std::max(scratch, static_cast<double>(baselines::fp8_scratch_bytes(baseline_of(v), fp)));
  const double ref = use_cpu_ref ? 0.0 : 4.0 * (static_cast<double>(B) * ldx + 2.0 * D * I + 3.0 * B * D);
  if (s.skip_if_too_large(std::max(bf16_in, ref) + fp8_in + z_bytes + scratch, rows)) return;

  // The original inputs are the bf16 case's (the same seed and shape), so that the two compare.
  Problem original = p;
  original.dtype = DType::bf16;
  HostInputs in = make_inputs(original, o.seed, false);
  DeviceBuffer bias = p.bias ? upload(in.bias, DType::bf16) : DeviceBuffer();
  Fp8Operands ops;
  if (Status st = quantise_fp8_operands(p, in, false, s.stream(), &ops); !st.ok()) {
    s.emit_all(rows, "ERROR", "quantising the inputs: " + st.message);
    return;
  }
  std::vector<float>& x_deq = ops.x;
  std::vector<float>& w_deq = ops.w;

  // The reference on the dequantised operands, the bias as rounded to bf16: fp64 on the CPU, or the
  // fp32-accumulating cuBLAS path. (q·scale rounds to fp32 here, 2^-24 relative: far below e4m3's.)
  // And the same on the unquantised inputs, for the error the quantisation adds (rel_l2_unquantised).
  Problem exact = p;
  exact.dtype = DType::f32;
  exact.math = Math::exact;
  std::vector<double> ref64, orig64;
  std::vector<float> ref32, orig32;
  std::string ref_name = use_cpu_ref ? "cpu-fp64" : "gpu-fp32";
  {
    nvtx3::scoped_range r{"reference"};
    const auto reference = [&](const std::vector<float>& x, const std::vector<float>& w, std::vector<double>* r64,
                               std::vector<float>* r32) {
      if (use_cpu_ref) {
        *r64 = cpu_reference(exact, x, w, in.bias);
        return Status::success();
      }
      const DeviceBuffer x32 = upload(x, DType::f32), w32 = upload(w, DType::f32);
      const DeviceBuffer b32 = p.bias ? upload(in.bias, DType::f32) : DeviceBuffer();
      DeviceBuffer h(baselines::reference_scratch_bytes(exact));
      DeviceBuffer zr(static_cast<size_t>(B * D) * sizeof(float));
      const Status st = baselines::gpu_reference(s.cublas(), exact, x32.get(), w32.get(), b32.get(), h.as<float>(),
                                                 zr.as<float>(), s.stream());
      if (st.ok()) *r32 = read_back<float>(zr.get(), static_cast<size_t>(B * D));
      return st;
    };
    Status st = reference(x_deq, w_deq, &ref64, &ref32);
    if (st.ok()) st = reference(in.x, in.w, &orig64, &orig32);
    if (!st.ok()) {
      s.emit_all(rows, "ERROR", "GPU reference failed: " + st.message);
      return;
    }
  }
  in = {};
  x_deq = {};
  w_deq = {};

  DeviceBuffer z(static_cast<size_t>(B * D)), zs(static_cast<size_t>(B * db) * 4);
  DeviceBuffer scratch_buf(static_cast<size_t>(scratch));
  Fp8Tensors t;
  t.x = ops.xq.get();
  t.x_scale = ops.x_scale.as<float>();
  t.w = ops.wq.get();
  t.w_scale = ops.w_scale.as<float>();
  t.bias = bias.get();
  t.z = z.get();
  t.z_scale = zs.as<float>();

  const auto tol_of = [&](const Fp8Variant& v) {
    return fp8_tolerance(I + (p.bias ? 1 : 0), DType::e4m3, DType::bf16,
                         v.kind == Variant::fused ? kFusedRounding : Rounding{1, v.plan.output_type_slices()});
  };
  const auto launch = [&](const Fp8Variant& v, cudaStream_t st) {
    const Status r = v.kind == Variant::fused ? forward_fp8(fp, t, st) : v.plan.run(st);
    if (!r.ok()) throw CudaError(r.message);
  };
  const auto poison = [&](cudaStream_t st) {
    CUDA_CHECK(cudaMemsetAsync(z.get(), kPoisonByte, z.bytes(), st));  // 0xFF: e4m3's NaN
    CUDA_CHECK(cudaMemsetAsync(zs.get(), kPoisonByte, zs.bytes(), st));
  };
  // Z dequantised with the scales the variant wrote (after a synchronisation), against the reference;
  // the row also gets its error against the unquantised inputs' (no bound: information).
  const auto check_z = [&](Fp8Variant& v) {
    const std::vector<float> got =
        dequantise_e4m3(read_back<unsigned char>(z.get(), static_cast<size_t>(B * D)),
                   read_back<float>(zs.get(), static_cast<size_t>(B * db)), B, D, D, 1);
    v.row.rel_l2_unquantised = (use_cpu_ref ? compare(got, orig64, Tolerance{}) : compare(got, orig32, Tolerance{})).rel_l2;
    return use_cpu_ref ? compare(got, ref64, tol_of(v)) : compare(got, ref32, tol_of(v));
  };
  const auto mismatch = [&](const ParityResult& pr) {
    const int64_t m = pr.worst_index >= 0 ? pr.worst_index / D : -1;
    const int64_t n = pr.worst_index >= 0 ? pr.worst_index % D : -1;
    return fmt::format("parity: {} at (row {}, col {}); {}", pr.summary(), m, n, pr.tolerance());
  };
  for (Fp8Variant& v : variants) {
    if (!v.row.status.empty() || s.stopped()) continue;
    const std::string range = fmt::format("check/{} {}", v.row.variant, label);
    nvtx3::scoped_range r{range.c_str()};
    v.row.reference = ref_name;
    if (v.kind != Variant::fused) {
      if (Status st = baselines::Fp8Plan::create(s.cublas(), baseline_of(v.kind), fp, t, scratch_buf.get(), &v.plan);
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

  if (o.op == Op::forward) {
    std::vector<TimedRow> timed;
    for (Fp8Variant& v : variants) {
      const auto verify = [&check_z, &mismatch, &v] {
        const ParityResult pr = check_z(v);
        return pr.pass ? std::string() : mismatch(pr);
      };
      if (v.runnable) timed.push_back({&v.row, [&launch, &v](cudaStream_t st) { launch(v, st); }, poison, verify});
    }
    s.profile_or_time(label, timed, forward_flops(p), forward_min_bytes(p));
  }
  if (s.stopped()) return;  // as run.cpp: a case cut short is dropped whole
  s.emit_all(rows, "ERROR", "not run: an earlier CUDA error left the device unusable");
}

}  // namespace swiglu::bench
