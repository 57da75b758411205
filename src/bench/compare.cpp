#include "bench/compare.hpp"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "bench/run.hpp"
#include "bench/stats.hpp"

namespace swiglu::bench {
namespace {

constexpr std::string_view kSchema = "swiglubench/1";

// --- reading a result file -----------------------------------------------------------------------

bool parse_int(const std::string& s, int64_t& out) {
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

bool parse_double(const std::string& s, double& out) {
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, out);
  // Why: from_chars also reads "inf" and "nan", which are not JSON (the writer writes null).
  return ec == std::errc() && p == end && std::isfinite(out);
}

// Why: yaml-cpp tags a quoted scalar "!" and a plain one "?", which is how a JSON string ("64")
// is told apart from a JSON number (64) or literal (true).
bool is_string(const YAML::Node& n) { return n.IsScalar() && n.Tag() == "!"; }
bool is_plain(const YAML::Node& n) { return n.IsScalar() && n.Tag() != "!"; }

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "null";
    case YAML::NodeType::Scalar:
      return is_string(n) ? fmt::format("the string \"{}\"", n.Scalar()) : n.Scalar();
    case YAML::NodeType::Sequence: return "an array";
    case YAML::NodeType::Map: return "an object";
    case YAML::NodeType::Undefined: break;
  }
  return "nothing";
}

Json to_json(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined: return Json();
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (is_string(n)) return Json(s);
      if (s == "true" || s == "false") return Json(s == "true");
      int64_t i = 0;
      if (parse_int(s, i)) return Json(i);
      double d = 0;
      if (parse_double(s, d)) return Json(d);
      return Json(s);
    }
    case YAML::NodeType::Sequence: {
      Json a = Json::array();
      for (const YAML::Node& e : n) a.push_back(to_json(e));
      return a;
    }
    case YAML::NodeType::Map: {
      Json o = Json::object();
      for (const auto& kv : n) o.set(kv.first.Scalar(), to_json(kv.second));
      return o;
    }
  }
  return Json();
}

class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view what) const {
    if (mark.is_null()) throw CompareError(fmt::format("{}: {}", path_, what));
    throw CompareError(fmt::format("{}:{}:{}: {}", path_, mark.line + 1, mark.column + 1, what));
  }

  // The members of a JSON object, in file order; `where` names it in messages ("rows[3]").
  class Object {
   public:
    Object(const Reader& r, const YAML::Node& node, std::string where)
        : r_(r), node_(node), where_(std::move(where)) {
      if (!node.IsMap())
        r.fail(node.Mark(), fmt::format("{} must be an object, found {}", where_, describe(node)));
      for (const auto& kv : node) {
        if (!is_string(kv.first)) {
          r.fail(kv.first.Mark(),
                 fmt::format("{}: a key is {}, not a string", where_, describe(kv.first)));
        }
        if (find(kv.first.Scalar()) != nullptr) {
          r.fail(kv.first.Mark(), fmt::format("{}: duplicate key '{}'", where_, kv.first.Scalar()));
        }
        members_.emplace_back(kv.first.Scalar(), kv.second);
      }
    }

    const YAML::Node* find(std::string_view key) const {
      for (const auto& [k, v] : members_)
        if (k == key) return &v;
      return nullptr;
    }

    // The value of `key`; throws when it is absent.
    const YAML::Node& need(std::string_view key) const {
      const YAML::Node* v = find(key);
      if (v == nullptr) r_.fail(node_.Mark(), fmt::format("{}: missing key '{}'", where_, key));
      return *v;
    }

    // Typed readers. `out` keeps its value when the key is absent and not required.
    void string(std::string_view key, bool required, std::string& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (!is_string(*v)) wrong(*v, key, "a string");
        out = v->Scalar();
      }
    }
    void nullable_string(std::string_view key, bool required, std::string& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (v->IsNull()) {
          out.clear();
        } else {
          if (!is_string(*v)) wrong(*v, key, "a string or null");
          out = v->Scalar();
        }
      }
    }
    void integer(std::string_view key, bool required, int64_t& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (!is_plain(*v) || !parse_int(v->Scalar(), out)) wrong(*v, key, "an integer");
      }
    }
    void boolean(std::string_view key, bool required, bool& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (!is_plain(*v) || (v->Scalar() != "true" && v->Scalar() != "false"))
          wrong(*v, key, "true or false");
        out = v->Scalar() == "true";
      }
    }
    // A number or null (NaN).
    void number(std::string_view key, bool required, double& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (v->IsNull()) {
          out = kNaN;
        } else if (!is_plain(*v) || !parse_double(v->Scalar(), out)) {
          wrong(*v, key, "a number or null");
        }
      }
    }
    // A non-negative integer or null (-1).
    void index(std::string_view key, bool required, int64_t& out) const {
      if (const YAML::Node* v = lookup(key, required)) {
        if (v->IsNull()) {
          out = -1;
        } else if (!is_plain(*v) || !parse_int(v->Scalar(), out) || out < 0) {
          wrong(*v, key, "a non-negative integer or null");
        }
      }
    }
    void count(std::string_view key, bool required, size_t& out) const {
      int64_t i = 0;
      if (const YAML::Node* v = lookup(key, required)) {
        if (!is_plain(*v) || !parse_int(v->Scalar(), i) || i < 0)
          wrong(*v, key, "a non-negative integer");
        out = static_cast<size_t>(i);
      }
    }

   private:
    const YAML::Node* lookup(std::string_view key, bool required) const {
      return required ? &need(key) : find(key);
    }
    [[noreturn]] void wrong(const YAML::Node& v, std::string_view key,
                            std::string_view want) const {
      // Why: yaml-cpp gives a null value no position of its own; point at the object instead.
      const YAML::Mark mark = v.Mark().is_null() ? node_.Mark() : v.Mark();
      r_.fail(mark, fmt::format("{}: '{}' must be {}, found {}", where_, key, want, describe(v)));
    }

    const Reader& r_;
    YAML::Node node_;
    std::string where_;
    std::vector<std::pair<std::string, YAML::Node>> members_;
  };

  std::string read_text() const {
    std::FILE* f = std::fopen(path_.c_str(), "rb");
    if (f == nullptr)
      fail(YAML::Mark::null_mark(), fmt::format("cannot read: {}", std::strerror(errno)));
    std::string text;
    char buf[1 << 16];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) text.append(buf, n);
    const int err = std::ferror(f) ? errno : 0;
    std::fclose(f);
    if (err != 0) fail(YAML::Mark::null_mark(), fmt::format("cannot read: {}", std::strerror(err)));
    return text;
  }

 private:
  const std::string& path_;
};

// The inverse of row_to_json. Required: the case key, status, and what the comparison reads.
void read_row(const Reader::Object& o, Row& r, std::string& policy) {
  constexpr bool req = true, opt = false;
  o.string("op", req, r.op);
  o.string("variant", req, r.variant);
  o.integer("batch", req, r.batch);
  o.integer("in", req, r.in);
  o.integer("hidden", req, r.hidden);
  o.integer("ldx", req, r.ldx);
  o.string("dtype", req, r.dtype);
  o.string("layout", req, r.layout);
  o.string("math", req, r.math);
  o.boolean("bias", req, r.bias);
  o.string("tile", req, r.tile);
  o.string("status", req, r.status);
  o.string("reason", opt, r.reason);
  o.string("reference", opt, r.reference);
  o.number("rel_l2", opt, r.rel_l2);
  o.number("max_abs", opt, r.max_abs);
  o.number("max_rel", opt, r.max_rel);
  o.number("tol_rel_l2", opt, r.tol_rel_l2);
  o.index("worst_index", opt, r.worst_index);
  o.number("worst_got", opt, r.worst_got);
  o.number("worst_expected", opt, r.worst_expected);
  o.number("median_ms", req, r.median_ms);
  o.number("p25_ms", opt, r.p25_ms);
  o.number("p75_ms", opt, r.p75_ms);
  o.number("min_ms", opt, r.min_ms);
  o.number("noise", req, r.noise);
  o.count("samples", opt, r.samples);
  o.number("tflops", opt, r.tflops);
  o.number("gbps", opt, r.gbps);
  o.number("speedup_vs_cublas2", req, r.speedup_vs_cublas2);
  o.number("speedup_vs_cublas1", req, r.speedup_vs_cublas1);
  o.number("sm_clock_mhz", opt, r.sm_clock_mhz);
  o.boolean("cold_l2", opt, r.cold_l2);
  o.boolean("cuda_graph", opt, r.cuda_graph);
  o.nullable_string("policy", opt, policy);
}

// --- comparing -----------------------------------------------------------------------------------

// The rows of one file by case key; a key that repeats maps to its last row.
struct Index {
  explicit Index(const ResultFile& f) : file(f) {
    keys.reserve(f.rows.size());
    for (size_t i = 0; i < f.rows.size(); ++i) {
      keys.push_back(case_key(f.rows[i], policy(i)));
      by_key[keys.back()] = i;
    }
  }
  std::string_view policy(size_t i) const {
    return i < file.policies.size() ? std::string_view(file.policies[i]) : std::string_view();
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
  const Row* ref = ix.find(case_key(ref_row, ix.policy(i)));
  // Why: a policy chooses fused tiles; the cuBLAS rows of the case may carry none.
  if (ref == nullptr) ref = ix.find(case_key(ref_row));
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

std::string md_cell(std::string_view s) {
  std::string out;
  for (const char ch : s) {
    if (ch == '|') {
      out += "\\|";
    } else if (ch == '\n' || ch == '\r') {
      out += ' ';
    } else {
      out += ch;
    }
  }
  return out;
}

std::string num(double x, const char* spec) {
  return std::isfinite(x) ? fmt::format(fmt::runtime(spec), x) : "-";
}

const char* verdict_text(int exit_code) {
  switch (exit_code) {
    case kExitOk: return "PASS";
    case kExitRegression: return "REGRESSION";
    case kExitParity: return "PARITY FAILURE";
    default: return "MISMATCH";
  }
}

}  // namespace

ResultFile load_result_file(const std::string& path) {
  const Reader reader(path);
  const std::string text = reader.read_text();
  ResultFile file;
  file.path = path;
  try {
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAll(text);
    } catch (const YAML::ParserException& e) {
      reader.fail(e.mark, fmt::format("syntax error: {}", e.msg));
    }
    if (docs.empty())
      reader.fail(YAML::Mark::null_mark(), "empty file; expected a swiglubench result object");
    if (docs.size() > 1) reader.fail(docs[1].Mark(), "text after the end of the JSON object");

    const Reader::Object root(reader, docs[0], "the file");
    std::string schema;
    root.string("schema", true, schema);
    if (schema != kSchema) {
      reader.fail(root.need("schema").Mark(),
                  fmt::format("schema is '{}', expected '{}'", schema, kSchema));
    }

    const YAML::Node& prov_node = root.need("provenance");
    const Reader::Object prov(reader, prov_node, "provenance");
    prov.string("git_sha", true, file.git_sha);
    const Reader::Object device(reader, prov.need("device"), "provenance.device");
    device.string("name", true, file.device_name);
    device.integer("sm_count", true, file.sm_count);
    device.integer("cublas", true, file.cublas_version);
    device.nullable_string("driver", true, file.driver);
    device.nullable_string("cuda_driver_api", true, file.cuda_driver_api);
    if (const YAML::Node* timing = prov.find("timing")) {
      const Reader::Object t(reader, *timing, "provenance.timing");
      t.boolean("cuda_graph", false, file.cuda_graph);
    }
    file.provenance = to_json(prov_node);

    root.boolean("complete", true, file.complete);

    const YAML::Node& rows = root.need("rows");
    if (!rows.IsSequence())
      reader.fail(rows.Mark(), fmt::format("'rows' must be an array, found {}", describe(rows)));
    file.rows.reserve(rows.size());
    file.policies.reserve(rows.size());
    size_t i = 0;
    for (const YAML::Node& node : rows) {
      const Reader::Object row(reader, node, fmt::format("rows[{}]", i++));
      Row r;
      std::string policy;
      read_row(row, r, policy);
      file.rows.push_back(std::move(r));
      file.policies.push_back(std::move(policy));
    }
  } catch (const YAML::Exception& e) {
    // Why: a malformed node that slipped past the checks above still names the file.
    reader.fail(e.mark, e.msg);
  }
  return file;
}

std::string case_key(const Row& r, std::string_view policy) {
  std::string key = fmt::format("{} {} B={} I={} D={} ldx={} {} {} {} bias={}", r.op, r.variant,
                                r.batch, r.in, r.hidden, r.ldx, r.dtype, r.layout, r.math, r.bias);
  if (!policy.empty()) fmt::format_to(std::back_inserter(key), " policy={}", policy);
  fmt::format_to(std::back_inserter(key), " tile={}", r.tile);
  return key;
}

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

  // Baseline cases: fused rows with a usable speedup, each key once (its last row).
  std::set<std::string> seen, base_cases;
  std::vector<double> geo_base, geo_cur;
  for (size_t i = 0; i < base.rows.size(); ++i) {
    if (base.rows[i].variant != "fused" || !seen.insert(bx.keys[i]).second) continue;
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
    }
    if (v.label == kLabelMissing) rep.missing.push_back(v.key);
    ++rep.counts[v.label];
    rep.cases.push_back(std::move(v));
  }

  std::set<std::string> listed;
  for (size_t i = 0; i < cur.rows.size(); ++i) {
    const std::string& key = cx.keys[i];
    if (cur.rows[i].variant != "fused" || base_cases.count(key) != 0 || !listed.insert(key).second)
      continue;
    if (measure(cx, cx.by_key.at(key), o.reference).missing.empty()) rep.new_cases.push_back(key);
  }
  rep.counts[std::string(kLabelNew)] = static_cast<int>(rep.new_cases.size());

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
                   md_cell(v.key), num(v.base_speedup, "{:.2f}x"), num(v.cur_speedup, "{:.2f}x"),
                   num(v.ratio, "{:.3f}"), num(100 * v.tolerance, "±{:.1f}%"),
                   num(v.abs_ratio, "{:.3f}"), num(100 * v.abs_tolerance, "±{:.1f}%"),
                   num(v.ref_abs_ratio, "{:.3f}"), v.label, md_cell(v.note));
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

}  // namespace swiglu::bench
