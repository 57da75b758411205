#include "train/run_train.hpp"

#include <cuda_runtime_api.h>
#include <fmt/format.h>
#include <nvtx3/nvtx3.hpp>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "baselines/cublas_baselines.hpp"
#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/json.hpp"
#include "common/provenance.hpp"
#include "common/stats.hpp"
#include "train/agreement.hpp"
#include "train/trainer.hpp"

namespace swiglu::train {
namespace {

using common::Json;

std::string grads_word(Grads g) { return g.dx && g.dw ? "dx,dw" : g.dx ? "dx" : "dw"; }

// fused-save, fused-recompute, cublas2, cublas1: the names the gradient commands use too.
std::string variant_name(LayerVariant v, Policy p) {
  if (v == LayerVariant::fused) return fmt::format("fused-{}", to_string(p));
  return std::string(to_string(v));
}

std::string default_name(const TrainOptions& o) {
  std::string g = grads_word(o.grads);
  g.erase(std::remove(g.begin(), g.end(), ','), g.end());
  return fmt::format("train_{}_b{}_d{}_{}_{}_{}", to_string(o.dtype), o.batch, o.hidden, g,
                     to_string(o.policy), to_string(o.optimizer));
}

// One table row: one variant after one epoch.
struct EpochRow {
  std::string variant;
  int epoch = 0;
  EpochStats train;
  EvalStats test;
  double cum_train_s = 0;  // training time (CUDA events) of this variant's epochs so far
  double cum_wall_s = 0;   // host time of this variant's epochs so far (training, evaluation, copies)

  int64_t steps() const { return static_cast<int64_t>(train.step_loss.size()); }
  double train_images_per_s() const { return train.images / (train.ms / 1e3); }
  double infer_images_per_s() const { return test.images / (test.ms / 1e3); }
};

const char* const kCsvColumns =
    "variant,policy,grads,dtype,batch,hidden,optimizer,lr,seed,epoch,steps,images,train_loss,"
    "train_accuracy,test_loss,test_accuracy,train_ms,train_images_per_s,infer_ms,"
    "infer_images_per_s,cum_train_s,cum_wall_s,tiles";

// One variant in the run.
struct Run {
  std::string name;
  DType dtype = DType::bf16;  // its SwiGLU layer's (layer_dtype)
  std::unique_ptr<Trainer> trainer;
  std::vector<std::vector<double>> losses;  // per epoch, per step
  std::vector<EpochRow> rows;
  double cum_train_s = 0, cum_wall_s = 0;
  std::string tiles;
};

bool is_fused(const std::string& variant) { return variant.rfind("fused", 0) == 0; }

// The file stem of the results: --name, or the default built from the options.
std::string result_name(const TrainOptions& o) {
  return o.name.empty() ? default_name(o) : o.name;
}

// The result files: CSV lines flushed as rows finish, the JSON rewritten atomically after each row
// ("complete": false until the run ends), as the benchmark's other commands do. Both are created
// beside their path and renamed over it (json.hpp): a symlink there is replaced, not followed.
class Output {
 public:
  Output(const TrainOptions& o, const common::DeviceInfo& dev, Json provenance)
      : o_(o), provenance_(std::move(provenance)) {
    const std::string dir = o.out_dir.empty() ? "results/" + dev.slug : o.out_dir;
    const std::string name = result_name(o);
    common::check_result_name(name);  // train_all checked it before the data and the device
    stem_ = fmt::format("{}/{}", dir, name);
    if (o.write_csv) {
      csv_ = common::create_file_replacing(stem_ + ".csv");
      if (std::fprintf(csv_, "%s\n", kCsvColumns) < 0 || std::fflush(csv_) != 0)
        throw std::runtime_error(fmt::format("cannot write {}.csv: {}", stem_, std::strerror(errno)));
    }
    write_json(false);
  }
  ~Output() {
    if (csv_ != nullptr) std::fclose(csv_);
  }
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  // `layer`: the dtype the variant's SwiGLU layer computes in (layer_dtype).
  void add(const EpochRow& r, const std::string& tiles, DType layer) {
    const std::string policy = is_fused(r.variant) ? std::string(to_string(o_.policy)) : "";
    const std::string_view dtype = to_string(layer);
    if (csv_ != nullptr) {
      const std::string line = fmt::format(
          "{},{},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},\"{}\"\n", r.variant,
          policy, grads_word(o_.grads), dtype, o_.batch, o_.hidden,
          to_string(o_.optimizer), o_.effective_lr(), o_.seed, r.epoch, r.steps(), r.train.images,
          r.train.loss, r.train.accuracy, r.test.loss, r.test.accuracy, r.train.ms,
          r.train_images_per_s(), r.test.ms, r.infer_images_per_s(), r.cum_train_s, r.cum_wall_s,
          tiles);
      std::fputs(line.c_str(), csv_);
      std::fflush(csv_);
    }
    Json j = Json::object();
    j.set("variant", r.variant);
    j.set("policy", policy.empty() ? Json() : Json(policy));
    j.set("grads", grads_word(o_.grads));
    j.set("dtype", dtype);
    j.set("batch", o_.batch);
    j.set("hidden", o_.hidden);
    j.set("optimizer", to_string(o_.optimizer));
    j.set("lr", o_.effective_lr());
    j.set("seed", o_.seed);
    j.set("epoch", r.epoch);
    j.set("steps", r.steps());
    j.set("images", r.train.images);
    j.set("train_loss", r.train.loss);
    j.set("train_accuracy", r.train.accuracy);
    j.set("test_loss", r.test.loss);
    j.set("test_accuracy", r.test.accuracy);
    j.set("train_ms", r.train.ms);
    j.set("train_images_per_s", r.train_images_per_s());
    j.set("infer_ms", r.test.ms);
    j.set("infer_images_per_s", r.infer_images_per_s());
    j.set("cum_train_s", r.cum_train_s);
    j.set("cum_wall_s", r.cum_wall_s);
    j.set("tiles", tiles);
    Json steps = Json::array();
    for (double l : r.train.step_loss) steps.push_back(l);
    j.set("step_loss", steps);
    rows_.push_back(std::move(j));
    write_json(false);
  }

  void set_summary(Json s) { summary_ = std::move(s); }
  void set_agreement(Json a) { agreement_ = std::move(a); }
  void finish(bool complete) { write_json(complete); }
  const std::string& stem() const { return stem_; }

 private:
  void write_json(bool complete) {
    if (!o_.write_json) return;
    Json doc = Json::object();
    doc.set("schema", "swiglubench-train/1");
    doc.set("provenance", provenance_);
    doc.set("rows", rows_);
    doc.set("summary", summary_);
    doc.set("agreement", agreement_);
    doc.set("complete", complete);
    common::write_file_atomic(stem_ + ".json", doc.dump(1) + "\n");
  }

  const TrainOptions& o_;
  Json provenance_;
  std::string stem_;
  Json rows_ = Json::array(), summary_ = Json::array(), agreement_ = Json::array();
  std::FILE* csv_ = nullptr;
};

Json provenance(const TrainOptions& o, const common::DeviceInfo& dev, const FashionMnist& data,
                const Normalization& norm) {
  Json p = Json::object();
  p.set("tool", "swiglubench train");
  p.set("version", SWIGLU_VERSION);
  p.set("git_sha", common::git_sha());
  p.set("started_utc", common::iso_time_utc());
  p.set("argv", common::string_list(o.argv));
  Json d = Json::object();
  d.set("name", dev.name);
  d.set("compute_capability", fmt::format("{}.{}", dev.cc_major, dev.cc_minor));
  d.set("sm_count", dev.sm_count);
  d.set("driver", dev.driver_release.empty() ? Json() : Json(dev.driver_release));
  d.set("cuda_runtime", dev.runtime_version);
  d.set("cublas", dev.cublas_version);
  p.set("device", d);
  Json ds = Json::object();
  ds.set("dir", o.data_dir);
  ds.set("train", data.train.count);
  ds.set("test", data.test.count);
  ds.set("features", data.train.features());
  ds.set("normalization", "x = (pixel / 255 - mean) / std over the training split");
  ds.set("mean", norm.mean);
  ds.set("std", norm.stddev);
  p.set("data", ds);
  Json m = Json::object();
  m.set("model", fmt::format("{} -> SwiGLU({}) -> Linear({}), softmax cross-entropy",
                             data.train.features(), o.hidden, 10));
  m.set("dtype", to_string(o.dtype));
  m.set("master_weights", "fp32");
  m.set("batch", o.batch);
  m.set("epochs", o.epochs);
  m.set("max_steps", o.max_steps);
  m.set("grads", grads_word(o.grads));
  m.set("policy", to_string(o.policy));
  m.set("optimizer", to_string(o.optimizer));
  m.set("lr", o.effective_lr());
  m.set("momentum", o.optimizer == Optimizer::sgd ? Json(o.momentum) : Json());
  m.set("weight_decay", o.effective_weight_decay());
  if (o.optimizer == Optimizer::adamw) {
    m.set("betas", Json(Json::Array{Json(0.9), Json(0.999)}));
    m.set("eps", 1e-8);
  }
  m.set("seed", o.seed);
  Json vs = Json::array();
  for (LayerVariant v : o.variants) vs.push_back(variant_name(v, o.policy));
  m.set("variants", vs);
  p.set("training", m);
  return p;
}

// The run's dtype as the header names it.
std::string dtype_words(DType d) {
  if (d != DType::e4m3) return std::string(to_string(d));
  return "fp8 SwiGLU layer in the fused variant, bf16 elsewhere and in a cuBLASLt variant's layer";
}

void print_header(const TrainOptions& o, const common::DeviceInfo& dev, const FashionMnist& data) {
  std::printf("swiglubench train on %s (sm_%d%d, %d SMs): Fashion-MNIST %lld train / %lld test images\n",
              dev.name.c_str(), dev.cc_major, dev.cc_minor, dev.sm_count,
              static_cast<long long>(data.train.count), static_cast<long long>(data.test.count));
  std::string opt = fmt::format("{} lr {:g}", to_string(o.optimizer), o.effective_lr());
  if (o.optimizer == Optimizer::sgd) opt += fmt::format(" momentum {:g}", o.momentum);
  opt += fmt::format(" weight decay {:g}", o.effective_weight_decay());
  std::printf("model %lld -> SwiGLU(%lld) -> Linear(10), %s (fp32 master weights), batch %lld, %s, "
              "grads %s%s, seed %llu\n\n",
              static_cast<long long>(data.train.features()), static_cast<long long>(o.hidden),
              dtype_words(o.dtype).c_str(), static_cast<long long>(o.batch), opt.c_str(),
              grads_word(o.grads).c_str(), o.grads.dw ? "" : " (frozen SwiGLU weights)",
              static_cast<unsigned long long>(o.seed));
}

constexpr const char* kTableHeader =
    "| variant         | epoch | train loss | train acc | test loss | test acc |  epoch ms |  images/s | infer ms | infer images/s |\n"
    "| --------------- | ----: | ---------: | --------: | --------: | -------: | --------: | --------: | -------: | -------------: |\n";

std::string table_row(const EpochRow& r) {
  return fmt::format("| {:<15} | {:>5} | {:>10.4f} | {:>9.4f} | {:>9.4f} | {:>8.4f} | {:>9.1f} | {:>9.0f} | {:>8.2f} | {:>14.0f} |\n",
                     r.variant, r.epoch, r.train.loss, r.train.accuracy, r.test.loss,
                     r.test.accuracy, r.train.ms, r.train_images_per_s(), r.test.ms,
                     r.infer_images_per_s());
}

// The trainer's configuration for one variant of the run.
TrainConfig train_config(const TrainOptions& o, LayerVariant v) {
  TrainConfig c;
  c.variant = v;
  c.policy = o.policy;
  c.grads = o.grads;
  c.dtype = layer_dtype(o.dtype, v);
  c.batch = o.batch;
  c.hidden = o.hidden;
  c.optimizer = o.optimizer;
  c.lr = static_cast<float>(o.effective_lr());
  c.momentum = static_cast<float>(o.momentum);
  c.weight_decay = static_cast<float>(o.effective_weight_decay());
  c.seed = o.seed;
  return c;
}

int train_all(const TrainOptions& o, const std::atomic<bool>& stop) {
  // A name that would put the results outside --out ends the run before anything is read.
  common::check_result_name(result_name(o));
  // The data first: a missing or bad file is reported on any machine, GPU or not.
  FashionMnist data;
  {
    nvtx3::scoped_range range{"train/load data"};
    data = load_fashion_mnist(o.data_dir);
  }
  const common::DeviceInfo dev = common::query_device(o.device);
  if (cudaError_t e = cudaSetDevice(dev.index); e != cudaSuccess)
    throw common::CudaError(fmt::format("cudaSetDevice({}): {}", dev.index, cudaGetErrorString(e)));
  const Normalization norm = pixel_statistics(data.train);
  print_header(o, dev, data);

  common::Stream stream;
  baselines::Cublas cublas;
  if (Status s = cublas.init(); !s.ok()) throw std::runtime_error(s.message);
  const DeviceSplit train(data.train, compute_dtype(o.dtype), norm, stream.get());
  const DeviceSplit test(data.test, compute_dtype(o.dtype), norm, stream.get());

  std::vector<Run> runs;
  for (LayerVariant v : o.variants) {
    Run r;
    r.name = variant_name(v, o.policy);
    r.dtype = layer_dtype(o.dtype, v);
    r.trainer = std::make_unique<Trainer>(train_config(o, v), train, test, cublas, stream.get(),
                                          o.max_steps);
    r.trainer->warm_up();
    r.tiles = r.trainer->layer_tiles();
    std::printf("%s: SwiGLU layer %s\n", r.name.c_str(), r.tiles.c_str());
    runs.push_back(std::move(r));
  }
  std::printf("\n");

  Output out(o, dev, provenance(o, dev, data, norm));
  std::fputs(kTableHeader, stdout);
  std::fflush(stdout);

  bool interrupted = false, diverged = false;
  for (int epoch = 1; epoch <= o.epochs && !interrupted && !diverged; ++epoch) {
    const std::vector<int32_t> order = epoch_order(o.seed, epoch, train.count());
    for (Run& run : runs) {
      const nvtx3::scoped_range range{fmt::format("train/{} epoch {}", run.name, epoch).c_str()};
      const auto t0 = std::chrono::steady_clock::now();
      const EpochStats st = run.trainer->train_epoch(order, &stop);
      if (!st.complete) {
        interrupted = true;
        break;
      }
      const EvalStats ev = run.trainer->evaluate();
      const double wall =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      run.cum_train_s += st.ms / 1e3;
      run.cum_wall_s += wall;
      const EpochRow row{run.name, epoch, st, ev, run.cum_train_s, run.cum_wall_s};
      run.losses.push_back(st.step_loss);
      run.rows.push_back(row);
      std::fputs(table_row(row).c_str(), stdout);
      std::fflush(stdout);
      out.add(row, run.tiles, run.dtype);
      const auto bad = std::find_if(st.step_loss.begin(), st.step_loss.end(),
                                    [](double l) { return !std::isfinite(l); });
      if (bad != st.step_loss.end() || !std::isfinite(ev.loss)) {
        std::fprintf(stderr, "error: %s: the loss is not finite (epoch %d, step %lld): training "
                     "diverged; try a smaller --lr\n", run.name.c_str(), epoch,
                     static_cast<long long>(bad - st.step_loss.begin() + 1));
        diverged = true;
      }
    }
  }

  // Summary: median time per epoch and throughput per variant, and each against cublas2.
  std::printf("\n");
  Json summary = Json::array();
  const Run* base = nullptr;
  for (const Run& r : runs)
    if (r.name == "cublas2") base = &r;
  // The median over a variant's epochs of their training (test: evaluation) time.
  const auto med = [](const Run& r, bool test) {
    std::vector<double> v;
    for (const EpochRow& row : r.rows) v.push_back(test ? row.test.ms : row.train.ms);
    return common::median(v);
  };
  for (const Run& r : runs) {
    if (r.rows.empty()) continue;
    const double t = med(r, false), inf = med(r, true);
    const EpochRow& last = r.rows.back();
    std::string vs;
    Json j = Json::object();
    j.set("variant", r.name);
    j.set("epochs", static_cast<int64_t>(r.rows.size()));
    j.set("median_train_ms", t);
    j.set("median_infer_ms", inf);
    j.set("final_test_accuracy", last.test.accuracy);
    j.set("final_train_loss", last.train.loss);
    j.set("tiles", r.tiles);
    if (base != nullptr && base != &r && !base->rows.empty()) {
      const double ratio = t / med(*base, false);
      const double iratio = inf / med(*base, true);
      vs = fmt::format("; vs cublas2: epoch time {:.2f}x, inference time {:.2f}x", ratio, iratio);
      j.set("train_time_vs_cublas2", ratio);
      j.set("infer_time_vs_cublas2", iratio);
    }
    std::printf("%-15s median epoch %.1f ms (%.0f images/s), inference %.2f ms, final test accuracy "
                "%.4f%s\n", r.name.c_str(), t, last.train.images / (t / 1e3), inf, last.test.accuracy,
                vs.c_str());
    summary.push_back(j);
  }
  out.set_summary(summary);

  // Agreement: every variant against the first.
  bool disagree = false;
  Json agreement = Json::array();
  const double tol = o.agree_tol ? *o.agree_tol : agreement_tolerance(o.dtype, o.optimizer);
  for (size_t i = 1; i < runs.size(); ++i) {
    const Agreement a = compare_step_losses(runs[0].losses, runs[i].losses, tol);
    Json j = Json::object();
    j.set("reference", runs[0].name);
    j.set("variant", runs[i].name);
    j.set("steps", a.steps);
    j.set("max_abs_diff", a.max_diff);
    j.set("mean_abs_diff", a.mean_diff);
    j.set("at_epoch", a.epoch);
    j.set("at_step", a.step);
    j.set("tolerance", a.tolerance);
    j.set("agree", a.agree);
    j.set("reason", a.reason);
    agreement.push_back(j);
    std::printf("agreement %s vs %s over %lld steps: max |loss difference| %.3g (epoch %d, step "
                "%lld), mean %.3g; tolerance %.3g (%s, %s): %s\n",
                runs[i].name.c_str(), runs[0].name.c_str(), static_cast<long long>(a.steps),
                a.max_diff, a.epoch, static_cast<long long>(a.step), a.mean_diff, a.tolerance,
                std::string(to_string(o.dtype)).c_str(), std::string(to_string(o.optimizer)).c_str(),
                a.agree ? "AGREE" : ("DISAGREE: " + a.reason).c_str());
    if (!a.agree) disagree = true;
  }
  out.set_agreement(agreement);
  out.finish(!interrupted && !diverged);
  std::printf("\nresults: %s.csv, %s.json\n", out.stem().c_str(), out.stem().c_str());
  if (interrupted) return common::kExitInterrupted;
  if (diverged || disagree) return common::kExitParity;
  return common::kExitOk;
}

}  // namespace

int run_train(const TrainOptions& options, const std::atomic<bool>& stop) {
  try {
    return train_all(options, stop);
  } catch (const std::exception& e) {  // DataError (a missing or bad data file) included
    std::fprintf(stderr, "error: %s\n", e.what());
    return common::kExitError;
  }
}

}  // namespace swiglu::train
