#include "bench/regression.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/json.hpp"
#include "common/stats.hpp"

namespace swiglu::bench {

using common::Json;
using common::geomean;
using common::write_file_atomic;
using common::check_replaceable;
using common::check_result_name;
using common::DeviceInfo;
using common::query_device;
using common::kExitOk;
using common::kExitRegression;
using common::kExitParity;
using common::kExitError;
using common::kExitInterrupted;
namespace {

// --- comparing -----------------------------------------------------------------------------------

// The rows of one file by case key; a key that repeats maps to its last row.
struct Index {
  explicit Index(const ResultFile& f) : file(f) {
    keys.reserve(f.rows.size());
    for (size_t i = 0; i < f.rows.size(); ++i) {
      keys.push_back(case_key(f.rows[i], f.rows[i].policy));
      by_key[keys.back()] = i;
    }
  }
  const Row* find(const std::string& key) const {
    const auto it = by_key.find(key);
    return it == by_key.end() ? nullptr : &file.rows[it->second];
  }

  const ResultFile& file;
  std::vector<std::string> keys;
  std::unordered_map<std::string, size_t> by_key;
};

bool timed(const Row& r) {
  return r.status != "SKIP" && r.status != "ERROR" && std::isfinite(r.median_ms) && r.median_ms > 0;
}

std::string status_text(const Row& r) {
  return r.reason.empty() ? r.status : fmt::format("{}: {}", r.status, r.reason);
}

// The relative standard error of a row's median: σ ≈ IQR/1.349 for a normal spread, and the
// median of n samples varies by about 1.2533·σ/√n. NaN where the noise or the count is unknown.
double median_error(const Row& r) {
  if (!std::isfinite(r.noise) || r.samples == 0) return kNaN;
  return 1.2533 / 1.349 * r.noise / std::sqrt(static_cast<double>(r.samples));
}

// One run's measurement of a case: the fused row, its speedup and the reference row.
struct Measure {
  std::string missing;  // why the case cannot be compared; empty when it can
  double speedup = kNaN;
  double median = kNaN, noise = kNaN;          // fused row; noise = median_error()
  double ref_median = kNaN, ref_noise = kNaN;  // reference row
  // Relative uncertainty of the speedup; NaN where a row's noise is unknown.
  double speedup_noise() const { return std::hypot(noise, ref_noise); }
};

Measure measure(const Index& ix, size_t i, const std::string& reference) {
  Measure m;
  const Row& r = ix.file.rows[i];
  if (!timed(r)) {
    m.missing = fmt::format("not timed ({})", status_text(r));
    return m;
  }
  m.median = r.median_ms;
  m.noise = median_error(r);
  m.speedup = reference == "cublas2" ? r.speedup_vs_cublas2 : r.speedup_vs_cublas1;
  if (!std::isfinite(m.speedup) || m.speedup <= 0) {
    m.missing = fmt::format("no speedup vs {}", reference);
    return m;
  }
  Row ref_row = r;
  ref_row.variant = reference;
  ref_row.tile = "cublasLt";
  ref_row.tile_choice.clear();
  const Row* ref = ix.find(case_key(ref_row, ix.file.rows[i].policy));
  // Why: a policy chooses fused tiles; the cuBLAS rows of the case carry none, or (gradient ops)
  // save, theirs whatever the fused row's policy.
  if (ref == nullptr) ref = ix.find(case_key(ref_row));
  if (ref == nullptr) ref = ix.find(case_key(ref_row, "save"));
  if (ref == nullptr) {
    m.missing = fmt::format("no {} row", reference);
  } else if (!timed(*ref)) {
    m.missing = fmt::format("{} row not timed ({})", reference, status_text(*ref));
  } else {
    m.ref_median = ref->median_ms;
    m.ref_noise = median_error(*ref);
  }
  return m;
}

// The leading decimal number of a version string ("580.159.04" → 580, "13.0" → 13).
std::optional<int64_t> major_of(const std::string& version) {
  int64_t v = 0;
  const auto [p, ec] = std::from_chars(version.data(), version.data() + version.size(), v);
  if (ec != std::errc() || p == version.data()) return std::nullopt;
  return v;
}

void check_same_setup(const ResultFile& base, const ResultFile& cur,
                      std::vector<std::string>& out) {
  if (base.device_name != cur.device_name) {
    out.push_back(
        fmt::format("device: baseline '{}', current '{}'", base.device_name, cur.device_name));
  }
  if (base.sm_count != cur.sm_count) {
    out.push_back(fmt::format("SM count: baseline {}, current {}", base.sm_count, cur.sm_count));
  }
  if (base.cublas_version / 10000 != cur.cublas_version / 10000) {
    out.push_back(fmt::format("cuBLAS major version: baseline {} ({}), current {} ({})",
                              base.cublas_version / 10000, base.cublas_version,
                              cur.cublas_version / 10000, cur.cublas_version));
  }
  const auto drv_base = major_of(base.driver), drv_cur = major_of(cur.driver);
  const auto api_base = major_of(base.cuda_driver_api), api_cur = major_of(cur.cuda_driver_api);
  if (drv_base && drv_cur) {
    if (*drv_base != *drv_cur) {
      out.push_back(fmt::format("driver major version: baseline {} ({}), current {} ({})",
                                *drv_base, base.driver, *drv_cur, cur.driver));
    }
  } else if (api_base && api_cur && *api_base != *api_cur) {
    out.push_back(fmt::format("CUDA driver API major version: baseline {} ({}), current {} ({})",
                              *api_base, base.cuda_driver_api, *api_cur, cur.cuda_driver_api));
  }
  if (base.cuda_graph != cur.cuda_graph) {
    const auto how = [](bool graph) { return graph ? "CUDA-graph replays (--graph)" : "stream launches"; };
    out.push_back(fmt::format("timing: baseline times {}, current times {}", how(base.cuda_graph),
                              how(cur.cuda_graph)));
  }
  // Why the baseline too: an update cut short (or a sweep) leaves rows that compare only a part.
  if (!base.complete) {
    out.push_back(
        fmt::format("baseline file '{}' is not complete (the sweep was cut short)", base.path));
  }
  if (!cur.complete) {
    out.push_back(
        fmt::format("current file '{}' is not complete (the sweep was cut short)", cur.path));
  }
}

void check_options(const CompareOptions& o) {
  if (o.reference != "cublas2" && o.reference != "cublas1") {
    throw std::invalid_argument(
        fmt::format("compare: reference must be cublas2 or cublas1, not '{}'", o.reference));
  }
  for (const auto& [name, v] :
       {std::pair{"floor", o.floor}, std::pair{"k", o.k}, std::pair{"abs_floor", o.abs_floor},
        std::pair{"max_tolerance", o.max_tolerance}}) {
    if (!std::isfinite(v) || v < 0) {
      throw std::invalid_argument(
          fmt::format("compare: {} must be a non-negative number, not {}", name, v));
    }
  }
}

// Labels one case measured in both files.
void judge(const Measure& b, const Measure& c, const CompareOptions& o, CaseVerdict& v) {
  v.cur_speedup = c.speedup;
  v.ratio = c.speedup / b.speedup;
  v.abs_ratio = c.median / b.median;
  v.ref_abs_ratio = c.ref_median / b.ref_median;
  const double combined = std::hypot(b.speedup_noise(), c.speedup_noise());
  const double abs_combined = std::hypot(b.noise, c.noise);
  v.tolerance = std::isfinite(combined) ? std::max(o.floor, o.k * combined) : kNaN;
  v.abs_tolerance = std::isfinite(abs_combined) ? std::max(o.abs_floor, o.k * abs_combined) : kNaN;
  if (!std::isfinite(v.tolerance)) {
    v.label = kLabelAmbiguous;
    v.note = "noise unknown";
    return;
  }
  if (v.tolerance > o.max_tolerance) {
    v.label = kLabelAmbiguous;
    v.note = fmt::format("tolerance ±{:.1f}% > ±{:.1f}%", 100 * v.tolerance, 100 * o.max_tolerance);
    return;
  }
  if (v.ratio < 1 - v.tolerance) {
    v.label = kLabelSlow;
    v.note = fmt::format("speedup ratio {:.3f} < {:.3f}", v.ratio, 1 - v.tolerance);
  } else if (v.ratio > 1 + v.tolerance) {
    v.label = kLabelFast;
  } else {
    v.label = kLabelSame;
  }
  if (std::isfinite(v.abs_tolerance) && v.abs_ratio > 1 + v.abs_tolerance) {
    const std::string why =
        fmt::format("fused time ratio {:.3f} > {:.3f}", v.abs_ratio, 1 + v.abs_tolerance);
    v.note = v.label == kLabelSlow ? v.note + "; " + why : why;
    v.label = kLabelSlow;
  }
}

// --- formatting ----------------------------------------------------------------------------------

const char* verdict_text(int exit_code) {
  switch (exit_code) {
    case kExitOk: return "PASS";
    case kExitRegression: return "REGRESSION";
    case kExitParity: return "PARITY FAILURE";
    default: return "MISMATCH";
  }
}

// --- the gate ------------------------------------------------------------------------------------

// Writes the rows of `cur` to `path` at once, atomically, its provenance kept and its source
// recorded. Why at once: a rewrite per row is quadratic, and a killed update must not leave half.
void write_result_file(const ResultFile& cur, const std::string& path) {
  Json prov = cur.provenance;
  prov.set("written_from", cur.path);
  write_file_atomic(path, result_document(prov, cur.rows, true));
}

// Whether `c` is the problem of row `r`.
bool same_problem(const Case& c, const Row& r) {
  Row x;
  set_problem(x, c.problem);
  return std::tie(x.batch, x.in, x.hidden, x.ldx, x.dtype, x.layout, x.bias, x.math) ==
         std::tie(r.batch, r.in, r.hidden, r.ldx, r.dtype, r.layout, r.bias, r.math);
}

}  // namespace

CompareReport compare_results(const ResultFile& base, const ResultFile& cur,
                              const CompareOptions& o) {
  check_options(o);
  CompareReport rep;
  rep.reference = o.reference;
  for (const std::string_view label :
       {kLabelSame, kLabelFast, kLabelSlow, kLabelAmbiguous, kLabelMissing, kLabelNew}) {
    rep.counts[std::string(label)] = 0;
  }
  const Index bx(base), cx(cur);

  for (size_t i = 0; i < cur.rows.size(); ++i) {
    const Row& r = cur.rows[i];
    if (r.status == "FAIL") {
      rep.parity_failures.push_back(
          fmt::format("{}: {}", cx.keys[i], r.reason.empty() ? "FAIL" : r.reason));
    }
  }
  check_same_setup(base, cur, rep.mismatches);

  // Baseline cases: fused rows (of any fused variant) with a usable speedup, each key once (its
  // last row).
  std::set<std::string> seen, base_cases;
  std::vector<double> geo_base, geo_cur;
  for (size_t i = 0; i < base.rows.size(); ++i) {
    if (!fused_row(base.rows[i]) || !seen.insert(bx.keys[i]).second) continue;
    const size_t bi = bx.by_key.at(bx.keys[i]);
    const Measure mb = measure(bx, bi, o.reference);
    if (!mb.missing.empty()) continue;
    base_cases.insert(bx.keys[i]);

    CaseVerdict v;
    v.key = bx.keys[i];
    v.base_speedup = mb.speedup;
    const auto it = cx.by_key.find(v.key);
    if (it == cx.by_key.end()) {
      v.label = kLabelMissing;
      v.note = "no row in the current file";
    } else {
      const Measure mc = measure(cx, it->second, o.reference);
      if (!mc.missing.empty()) {
        v.label = kLabelMissing;
        v.note = mc.missing;
      } else {
        judge(mb, mc, o, v);
        geo_base.push_back(v.base_speedup);
        geo_cur.push_back(v.cur_speedup);
      }
      // An "auto" case is its problem: the heuristic may pick another tile, which is information.
      const std::string& tile_base = base.rows[bi].tile;
      const std::string& tile_cur = cur.rows[it->second].tile;
      if (tile_base != tile_cur) {
        const std::string moved = fmt::format("tile {} → {}", tile_base, tile_cur);
        v.note = v.note.empty() ? moved : v.note + "; " + moved;
      }
    }
    if (v.label == kLabelMissing) rep.missing.push_back(v.key);
    ++rep.counts[v.label];
    rep.cases.push_back(std::move(v));
  }

  std::set<std::string> listed;
  for (size_t i = 0; i < cur.rows.size(); ++i) {
    const std::string& key = cx.keys[i];
    if (!fused_row(cur.rows[i]) || base_cases.count(key) != 0 || !listed.insert(key).second)
      continue;
    if (measure(cx, cx.by_key.at(key), o.reference).missing.empty()) rep.new_cases.push_back(key);
  }
  rep.counts[std::string(kLabelNew)] = static_cast<int>(rep.new_cases.size());
  // Why: a gate that compared nothing must not pass.
  if (base_cases.empty()) {
    rep.mismatches.push_back(fmt::format(
        "baseline '{}' has no case to compare: no fused row with a speedup vs {} and a "
        "timed {} row",
        base.path, o.reference, o.reference));
  } else if (geo_base.empty()) {
    rep.mismatches.push_back(fmt::format(
        "no case to compare: none of the baseline's {} cases was measured in the current file",
        base_cases.size()));
  }

  rep.geomean_cases = geo_base.size();
  if (!geo_base.empty()) {
    rep.geomean_base = geomean(geo_base);
    rep.geomean_cur = geomean(geo_cur);
  }

  if (!rep.parity_failures.empty()) {
    rep.exit_code = kExitParity;
  } else if (!rep.mismatches.empty()) {
    rep.exit_code = kExitError;
  } else if (!rep.missing.empty() && !o.allow_missing) {
    rep.exit_code = kExitError;
  } else if (rep.counts[std::string(kLabelSlow)] > 0) {
    rep.exit_code = kExitRegression;
  } else {
    rep.exit_code = kExitOk;
  }
  return rep;
}

std::string format_report(const CompareReport& rep) {
  std::string out = fmt::format(
      "| case | base speedup | current speedup | ratio | tolerance | abs ratio | abs tolerance | "
      "{} abs ratio | label | note |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
      rep.reference);
  for (const CaseVerdict& v : rep.cases) {
    fmt::format_to(std::back_inserter(out), "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                   markdown_cell(v.key), fixed_or_dash(v.base_speedup, "{:.2f}x"), fixed_or_dash(v.cur_speedup, "{:.2f}x"),
                   fixed_or_dash(v.ratio, "{:.3f}"), fixed_or_dash(100 * v.tolerance, "±{:.1f}%"),
                   fixed_or_dash(v.abs_ratio, "{:.3f}"), fixed_or_dash(100 * v.abs_tolerance, "±{:.1f}%"),
                   fixed_or_dash(v.ref_abs_ratio, "{:.3f}"), v.label, markdown_cell(v.note));
  }
  out += '\n';
  out += "counts:";
  bool first = true;
  for (const std::string_view label :
       {kLabelSame, kLabelFast, kLabelSlow, kLabelAmbiguous, kLabelMissing, kLabelNew}) {
    const auto it = rep.counts.find(std::string(label));
    fmt::format_to(std::back_inserter(out), "{} {} {}", first ? "" : ",", label,
                   it == rep.counts.end() ? 0 : it->second);
    first = false;
  }
  out += '\n';
  if (rep.geomean_cases > 0) {
    fmt::format_to(
        std::back_inserter(out),
        "geomean speedup vs {} over {} cases in both: baseline {:.3f}x, current {:.3f}x\n",
        rep.reference, rep.geomean_cases, rep.geomean_base, rep.geomean_cur);
  } else {
    fmt::format_to(std::back_inserter(out), "geomean speedup vs {}: no case in both files\n",
                   rep.reference);
  }
  for (const std::string& m : rep.mismatches)
    fmt::format_to(std::back_inserter(out), "mismatch: {}\n", m);
  for (const std::string& p : rep.parity_failures) {
    fmt::format_to(std::back_inserter(out), "parity failure: {}\n", p);
  }
  for (const CaseVerdict& v : rep.cases) {
    if (v.label == kLabelMissing)
      fmt::format_to(std::back_inserter(out), "missing: {} ({})\n", v.key, v.note);
  }
  for (const std::string& k : rep.new_cases)
    fmt::format_to(std::back_inserter(out), "new: {}\n", k);
  fmt::format_to(std::back_inserter(out), "verdict: {}\n", verdict_text(rep.exit_code));
  return out;
}

std::vector<std::string> keys_to_remeasure(const CompareReport& rep) {
  std::vector<std::string> keys;
  for (const CaseVerdict& v : rep.cases) {
    if (v.label == kLabelSlow || v.label == kLabelAmbiguous) keys.push_back(v.key);
  }
  return keys;
}

std::vector<Row> merge_rows(const std::vector<Row>& rows, const std::vector<Row>& newer) {
  std::unordered_map<std::string, size_t> latest;  // key → index of its last row in `newer`
  std::vector<std::string> newer_keys;
  newer_keys.reserve(newer.size());
  for (size_t j = 0; j < newer.size(); ++j) {
    newer_keys.push_back(case_key(newer[j]));
    latest[newer_keys.back()] = j;
  }
  std::set<std::string> used;
  std::vector<Row> merged;
  merged.reserve(rows.size() + newer.size());
  for (const Row& r : rows) {
    std::string key = case_key(r);
    const auto it = latest.find(key);
    if (it == latest.end()) {
      merged.push_back(r);
    } else {
      merged.push_back(newer[it->second]);
      used.insert(std::move(key));
    }
  }
  for (size_t j = 0; j < newer.size(); ++j) {
    if (latest.at(newer_keys[j]) == j && used.count(newer_keys[j]) == 0) merged.push_back(newer[j]);
  }
  return merged;
}

// Why a baseline needs a case: a gate against one with none fails every later run ("no case to
// compare") only then, far from the update that wrote it. "" when `f` has one, else why not.
std::string why_not_a_baseline(const ResultFile& f, const CompareOptions& o) {
  if (!compare_results(f, f, o).cases.empty()) return {};
  return fmt::format("it has no case a gate could compare: no fused row with a speedup vs {} and a timed {} row",
                     o.reference, o.reference);
}

int run_compare(const std::string& baseline, const std::string& current, const CompareOptions& o,
                bool update_baseline) {
  try {
    if (update_baseline) check_replaceable(baseline);
    const ResultFile cur = load_result_file(current);
    if (update_baseline) {
      // A baseline must be a run worth comparing against: finished, and every row correct.
      const bool failed = std::any_of(cur.rows.begin(), cur.rows.end(),
                                      [](const Row& r) { return r.status == "FAIL"; });
      if (failed || !cur.complete) {
        std::fprintf(stderr, "error: not updating %s from %s: %s\n", baseline.c_str(),
                     current.c_str(), failed ? "it has parity failures" : "the run was cut short");
        return failed ? kExitParity : kExitError;
      }
      if (const std::string why = why_not_a_baseline(cur, o); !why.empty()) {
        std::fprintf(stderr, "error: not updating %s from %s: %s\n", baseline.c_str(), current.c_str(),
                     why.c_str());
        return kExitError;
      }
      write_result_file(cur, baseline);
      std::printf("baseline %s rewritten from %s (%zu rows)\n", baseline.c_str(), current.c_str(),
                  cur.rows.size());
      return kExitOk;
    }
    const ResultFile base = load_result_file(baseline);
    const CompareReport report = compare_results(base, cur, o);
    std::fputs(format_report(report).c_str(), stdout);
    return report.exit_code;
  } catch (const std::exception& e) {  // ResultFileError, CudaError, I/O errors
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

namespace {

// The rows of several result files (one run's sweeps, one per op) as one file: the first one's
// provenance, with the files' paths as its "combined_from" when there are several; complete only
// when every one is.
ResultFile combine(std::vector<ResultFile> files) {
  ResultFile out = std::move(files.front());
  if (files.size() > 1) {
    Json from = Json::array();
    from.push_back(out.path);
    for (size_t f = 1; f < files.size(); ++f) {
      from.push_back(files[f].path);
      out.complete = out.complete && files[f].complete;
      for (Row& r : files[f].rows) out.rows.push_back(std::move(r));
    }
    out.provenance.set("combined_from", std::move(from));
  }
  return out;
}

}  // namespace

int run_regression(const std::vector<Case>& cases, const Json& resolved_config, RunOptions run,
                   const RegressionOptions& gate, const std::atomic<bool>& stop) {
  try {
    if (gate.ops.empty()) throw std::invalid_argument("gate: no op to run the cases as");
    // Before the device: every name the sweeps below write under, and the baseline to replace.
    check_result_name(run.name);
    check_result_name(fmt::format("{}-retry{}", run.name, gate.retries));
    if (gate.update_baseline && !gate.baseline.empty()) check_replaceable(gate.baseline);
    const DeviceInfo dev = query_device(run.device);
    const std::string baseline =
        gate.baseline.empty() ? "results/" + dev.slug + "/baseline.json" : gate.baseline;
    if (gate.update_baseline && gate.baseline.empty()) check_replaceable(baseline);
    if (!gate.update_baseline && !std::filesystem::exists(baseline)) {
      std::fprintf(stderr,
                   "error: no baseline %s for %s; record one with `swiglubench gate --shapes ... "
                   "--update-baseline` on this card\n",
                   baseline.c_str(), dev.name.c_str());
      return kExitError;
    }
    if (run.out_dir.empty()) run.out_dir = "results/" + dev.slug + "/gate";
    const std::string base_name = run.name;
    // Runs `which` as each op of `ops` under `name`: the exit code (an interruption or an error
    // first) and the rows of every op as one file.
    struct Swept {
      int rc = kExitOk;                 // the worst sweep's exit code (an error before a parity failure)
      std::optional<ResultFile> rows;   // every op's rows as one file; none when a sweep was
                                        // interrupted or wrote no file
    };
    const auto sweep = [&](const std::vector<Case>& which, const std::vector<Op>& ops,
                           const std::string& name) -> Swept {
      Swept out;
      std::vector<ResultFile> files;
      for (const Op op : ops) {
        RunOptions r = run;
        r.op = op;
        r.name = name;
        const int rc = op == Op::forward ? run_sweep(which, r, resolved_config, stop)
                                         : run_gradient_sweep(which, r, resolved_config, stop);
        const std::string path = fmt::format("{}/{}_{}.json", r.out_dir, to_string(op), name);
        if (rc != kExitOk && (out.rc == kExitOk || rc == kExitError)) out.rc = rc;
        if (rc == kExitInterrupted || (rc == kExitError && !std::filesystem::exists(path))) {
          out.rc = rc;
          return out;
        }
        files.push_back(load_result_file(path));
      }
      out.rows = combine(std::move(files));
      return out;
    };

    std::string op_list;
    for (const Op op : gate.ops) op_list += (op_list.empty() ? "" : ", ") + std::string(to_string(op));
    std::printf("== gate: %zu cases as %s, against %s\n", cases.size(), op_list.c_str(), baseline.c_str());
    Swept first = sweep(cases, gate.ops, base_name);
    if (!first.rows) return first.rc;
    const int rc = first.rc;
    ResultFile cur = std::move(*first.rows);
    // With more than one op, the rows the verdict (or the baseline) stands on are in one file.
    const bool combined = gate.ops.size() > 1;
    if (combined) {
      const std::string path = fmt::format("{}/gate_{}.json", run.out_dir, base_name);
      write_result_file(cur, path);
      cur.path = path;
    }
    if (gate.update_baseline) {
      if (rc != kExitOk) {
        std::fprintf(stderr, "error: not updating the baseline from a run that exited %d\n", rc);
        return rc;
      }
      if (const std::string why = why_not_a_baseline(cur, gate.compare); !why.empty()) {
        std::fprintf(stderr, "error: not updating the baseline %s: %s\n", baseline.c_str(), why.c_str());
        return kExitError;
      }
      write_result_file(cur, baseline);
      std::printf("baseline %s written (%zu rows)\n", baseline.c_str(), cur.rows.size());
      return kExitOk;
    }
    const ResultFile base = load_result_file(baseline);
    CompareReport report = compare_results(base, cur, gate.compare);
    // Parity failures and mismatches are final; noise and slowness get another look.
    int attempt = 0;
    for (; attempt < gate.retries &&
           (report.exit_code == kExitOk || report.exit_code == kExitRegression);
         ++attempt) {
      const std::vector<std::string> keys = keys_to_remeasure(report);
      if (keys.empty()) break;
      // The cases to measure again, and as which ops (a row's op names the sweep that wrote it).
      std::set<size_t> picked;
      std::vector<Op> again_ops;
      for (size_t i = 0; i < cur.rows.size(); ++i) {
        const Row& r = cur.rows[i];
        if (std::find(keys.begin(), keys.end(), case_key(r, r.policy)) == keys.end()) continue;
        for (size_t c = 0; c < cases.size(); ++c)
          if (same_problem(cases[c], r)) picked.insert(c);
        for (const Op op : gate.ops)
          if (row_op(op) == r.op && std::find(again_ops.begin(), again_ops.end(), op) == again_ops.end())
            again_ops.push_back(op);
      }
      if (picked.empty() || again_ops.empty()) break;
      std::vector<Case> again;
      for (size_t i : picked) again.push_back(cases[i]);
      std::printf("\n== gate: re-measuring %zu case(s), attempt %d of %d\n", again.size(),
                  attempt + 1, gate.retries);
      Swept retry = sweep(again, again_ops, fmt::format("{}-retry{}", base_name, attempt + 1));
      if (!retry.rows) return retry.rc;
      cur.rows = merge_rows(cur.rows, retry.rows->rows);
      report = compare_results(base, cur, gate.compare);
    }
    if (attempt > 0) {
      // The rows the verdict stands on: the first run with its re-measured cases replaced.
      cur.path = fmt::format("{}/{}_{}-merged.json", run.out_dir,
                             combined ? std::string("gate") : std::string(to_string(gate.ops.front())), base_name);
      write_result_file(cur, cur.path);
      std::printf("\nmerged results: %s\n", cur.path.c_str());
    }
    std::printf("\n");
    std::fputs(format_report(report).c_str(), stdout);
    return report.exit_code;
  } catch (const std::exception& e) {  // ResultFileError, CudaError, I/O errors
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

std::vector<std::string> fused_case_keys(const Case& c, const std::string& tile, Op op) {
  Row r;
  r.op = row_op(op);
  set_problem(r, c.problem);
  r.tile = tile;
  r.tile_choice = tile == "auto" ? "auto" : "forced";
  if (op == Op::forward || op == Op::check) {
    r.variant = "fused";
    return {case_key(r)};
  }
  // The gradient ops' fused rows with the default options: one a policy, each keyed by it.
  std::vector<std::string> keys;
  for (const auto& [variant, policy] : {std::pair{"fused-save", "save"}, std::pair{"fused-recompute", "recompute"}}) {
    r.variant = variant;
    keys.push_back(case_key(r, policy));
  }
  return keys;
}

}  // namespace swiglu::bench
