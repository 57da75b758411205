#include "bench/gate.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <tuple>

#include "bench/writers.hpp"
#include "common/device.hpp"
#include "common/exit_codes.hpp"
#include "common/files.hpp"
#include "common/json.hpp"

namespace swiglu::bench {

using common::Json;
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

// Writes the rows of `cur` to `path` at once, atomically, its provenance kept and its source
// recorded. Why at once: rewriting the file after every row is quadratic (10,000 rows took 13
// minutes), and an update killed halfway left a partial baseline.
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
      write_result_file(cur, baseline);
      std::printf("baseline %s rewritten from %s (%zu rows)\n", baseline.c_str(), current.c_str(),
                  cur.rows.size());
      return kExitOk;
    }
    const ResultFile base = load_result_file(baseline);
    const CompareReport report = compare_results(base, cur, o);
    std::fputs(format_report(report).c_str(), stdout);
    return report.exit_code;
  } catch (const std::exception& e) {  // CompareError, CudaError, I/O errors
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

int run_gate(const std::vector<Case>& cases, const Json& resolved_config, RunOptions run,
             const GateOptions& gate, const std::atomic<bool>& stop) {
  try {
    // Before the device: every name the sweeps below write under, and the baseline to replace.
    check_result_name(run.name);
    check_result_name(fmt::format("{}-retry{}", run.name, gate.retries));
    if (gate.update_baseline && !gate.baseline.empty()) check_replaceable(gate.baseline);
    const DeviceInfo dev = query_device(run.device);
    const std::string baseline =
        gate.baseline.empty() ? "results/" + dev.slug + "/baseline.json" : gate.baseline;
    if (gate.update_baseline) check_replaceable(baseline);
    if (!gate.update_baseline && !std::filesystem::exists(baseline)) {
      std::fprintf(stderr,
                   "error: no baseline %s for %s; record one with `swiglubench gate --shapes ... "
                   "--update-baseline` on this card\n",
                   baseline.c_str(), dev.name.c_str());
      return kExitError;
    }
    run.op = "forward";
    if (run.out_dir.empty()) run.out_dir = "results/" + dev.slug + "/gate";
    const std::string base_name = run.name;
    const auto sweep = [&](const std::vector<Case>& which, const std::string& name) {
      RunOptions r = run;
      r.name = name;
      const int rc = run_sweep(which, r, resolved_config, stop);
      return std::pair<int, std::string>{rc, fmt::format("{}/forward_{}.json", r.out_dir, name)};
    };

    std::printf("== gate: %zu cases against %s\n", cases.size(), baseline.c_str());
    auto [rc, path] = sweep(cases, base_name);
    if (rc == kExitInterrupted || (rc == kExitError && !std::filesystem::exists(path))) return rc;
    ResultFile cur = load_result_file(path);
    if (gate.update_baseline) {
      if (rc != kExitOk) {
        std::fprintf(stderr, "error: not updating the baseline from a run that exited %d\n", rc);
        return rc;
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
      std::set<size_t> picked;
      for (const Row& r : cur.rows) {
        if (std::find(keys.begin(), keys.end(), case_key(r)) == keys.end()) continue;
        for (size_t i = 0; i < cases.size(); ++i)
          if (same_problem(cases[i], r)) picked.insert(i);
      }
      if (picked.empty()) break;
      std::vector<Case> again;
      for (size_t i : picked) again.push_back(cases[i]);
      std::printf("\n== gate: re-measuring %zu case(s), attempt %d of %d\n", again.size(),
                  attempt + 1, gate.retries);
      auto [rc2, path2] = sweep(again, fmt::format("{}-retry{}", base_name, attempt + 1));
      if (rc2 == kExitInterrupted) return rc2;
      const ResultFile retry = load_result_file(path2);
      cur.rows = merge_rows(cur.rows, retry.rows);
      report = compare_results(base, cur, gate.compare);
    }
    if (attempt > 0) {
      // The rows the verdict stands on: the first run with its re-measured cases replaced.
      cur.path = fmt::format("{}/forward_{}-merged.json", run.out_dir, base_name);
      write_result_file(cur, cur.path);
      std::printf("\nmerged results: %s\n", cur.path.c_str());
    }
    std::printf("\n");
    std::fputs(format_report(report).c_str(), stdout);
    return report.exit_code;
  } catch (const std::exception& e) {  // CompareError, CudaError, I/O errors
    std::fprintf(stderr, "error: %s\n", e.what());
    return kExitError;
  }
}

std::string fused_case_key(const Case& c, const std::string& tile) {
  Row r;
  r.op = "forward";
  r.variant = "fused";
  set_problem(r, c.problem);
  r.tile = tile;
  r.tile_choice = tile == "auto" ? "auto" : "forced";
  return case_key(r);
}

}  // namespace swiglu::bench
