#include "bench/sweeps.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <stdexcept>
#include <unordered_set>

namespace swiglu::bench {
namespace {

// The list, or just `value` when the option was not given.
template <typename T>
std::vector<T> or_one(const std::vector<T>& list, T value) {
  return list.empty() ? std::vector<T>{value} : list;
}

// The files' cases, or the one default case of an inline sweep.
std::vector<Case> base_cases(const CaseOverrides& o, std::string* name) {
  if (!o.shapes.empty()) {
    std::vector<SweepConfig> configs;
    for (const auto& f : o.shapes) configs.push_back(load_config(f, o.max_cases));
    SweepConfig merged = merge_configs(std::move(configs), o.max_cases);
    *name = merged.name;
    return std::move(merged.cases);
  }
  if (o.batch.empty() || o.in.empty() || o.hidden.empty())
    throw std::invalid_argument("give --shapes FILE.yaml, or all of --batch, --in and --hidden");
  Case t;
  t.variants = all_variants();
  t.tiles = {TileChoice()};
  t.origin = "command line";
  *name = "inline";
  return {t};
}

// Counted before anything is expanded, so a product of long lists fails at once rather than when
// memory runs out; the count is before repeated cases are dropped.
void check_count(const CaseOverrides& o, size_t base) {
  uint64_t total = base;
  std::string factors = o.shapes.empty() ? "" : fmt::format("{} from --shapes", base);
  const auto factor = [&](size_t n, const char* option) {
    if (n == 0) return;
    total = saturating_mul(total, n);
    factors += fmt::format("{}{} {}", factors.empty() ? "" : " × ", option, n);
  };
  factor(o.batch.size(), "--batch");
  factor(o.in.size(), "--in");
  factor(o.hidden.size(), "--hidden");
  factor(o.dtype.size(), "--dtype");
  factor(o.layout.size(), "--layout");
  factor(o.bias.size(), "--bias");
  factor(o.math.size(), "--math");
  if (total > o.max_cases) {
    throw std::invalid_argument(fmt::format(
        "{}{} cases ({}), more than the limit of {}; raise it with --max-cases",
        total == std::numeric_limits<uint64_t>::max() ? "more than " : "", total, factors,
        o.max_cases));
  }
}

common::Json record_of(const CaseOverrides& o, const std::vector<Case>& cases) {
  common::Json list = common::Json::array();
  for (const Case& x : cases) {
    common::Json j = common::Json::object();
    j.set("case", describe(x));
    common::Json v = common::Json::array();
    for (const Variant s : x.variants) v.push_back(to_string(s));
    j.set("variants", v);
    j.set("tiles", common::string_list(words(x.tiles)));
    j.set("origin", x.origin);
    list.push_back(j);
  }
  common::Json r = common::Json::object();
  r.set("shapes_files", common::string_list(o.shapes));
  r.set("cases", list);
  return r;
}

}  // namespace

ResolvedCases resolve_cases(const CaseOverrides& o) {
  ResolvedCases out;
  std::vector<Case> base = base_cases(o, &out.name);
  check_count(o, base.size());

  std::unordered_set<Problem, ProblemHash, SameProblem> seen;
  uint64_t per_base = 1;
  for (const size_t n : {o.batch.size(), o.in.size(), o.hidden.size(), o.dtype.size(),
                         o.layout.size(), o.bias.size(), o.math.size()})
    per_base *= std::max<size_t>(n, 1);  // no overflow: at most the count checked above
  for (Case& b : base) {
    const Problem& p = b.problem;
    const int64_t pad = o.x_stride_pad ? *o.x_stride_pad : b.x_stride_pad();
    uint64_t made = 0;
    for (int64_t B : or_one(o.batch, p.batch))
      for (int64_t I : or_one(o.in, p.in_features))
        for (int64_t D : or_one(o.hidden, p.hidden))
          for (DType t : or_one(o.dtype, p.dtype))
            for (Layout l : or_one(o.layout, p.layout))
              for (bool bias : or_one(o.bias, p.bias))
                for (Math m : or_one(o.math, p.math)) {
                  // Why: the last case made from b takes its storage, so that a large config
                  // is not held twice.
                  Case x = ++made == per_base ? std::move(b) : b;
                  x.problem.batch = B;
                  x.problem.in_features = I;
                  x.problem.ldx = I + pad;
                  x.problem.hidden = D;
                  x.problem.dtype = t;
                  x.problem.layout = l;
                  x.problem.bias = bias;
                  x.problem.math = t == DType::f32 ? m : Math::exact;
                  if (!o.variants.empty()) x.variants = o.variants;
                  if (!o.tiles.empty()) x.tiles = o.tiles;
                  if (seen.insert(x.problem).second) out.cases.push_back(std::move(x));
                }
  }
  out.record = record_of(o, out.cases);
  return out;
}

}  // namespace swiglu::bench
