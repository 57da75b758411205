#include "bench/config.hpp"

#include <fmt/format.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "bench/cli_values.hpp"
#include "common/files.hpp"

namespace swiglu::bench {
namespace {

const std::vector<std::string> kTopKeys = {"name", "description", "defaults", "sweeps"};
const std::vector<std::string> kSweepKeys = {"batch", "in",   "hidden",   "dtype", "layout",
                                             "bias",  "math", "variants", "tiles", "x_stride_pad"};

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (const std::string& item : items) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// Everything a message needs to point into the file.
class Source {
 public:
  explicit Source(const std::string& name) : name_(name) {}
  const std::string& name() const { return name_; }

  std::string where(const YAML::Mark& mark) const {
    const int line = mark.is_null() ? 1 : mark.line + 1;
    const int column = mark.is_null() ? 1 : mark.column + 1;
    return fmt::format("{}:{}:{}", name_, line, column);
  }

  [[noreturn]] void fail(const YAML::Mark& mark, std::string_view message) const {
    throw ConfigError(fmt::format("{}: {}", where(mark), message));
  }

 private:
  std::string name_;
};

const char* type_name(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    case YAML::NodeType::Undefined: break;
  }
  return "an undefined value";
}

// One `key: value` of a mapping, with the key's position for messages about the key itself.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
  std::string context;  // "sweep 2", "defaults" or "top level", for messages

  // Messages about the value point at the value, or at the key when the value is missing (a null
  // value's mark is wherever the next token starts, often the next line).
  YAML::Mark value_mark() const {
    const YAML::Mark m = value.Mark();
    return m.is_null() || value.IsNull() ? key_mark : m;
  }
  std::string label() const { return fmt::format("{}: '{}'", context, key); }
};

// The entries of a mapping, in file order. Rejects non-scalar keys, keys not in `allowed` and
// keys given twice (yaml-cpp keeps both pairs, so iterating the map finds them).
std::vector<Entry> map_entries(const Source& src, const YAML::Node& map, const std::string& context,
                               const std::vector<std::string>& allowed) {
  std::vector<Entry> entries;
  for (const auto& kv : map) {
    const YAML::Node& key = kv.first;
    if (!key.IsScalar()) {
      src.fail(key.Mark(),
               fmt::format("{}: keys must be plain words, got {}", context, type_name(key)));
    }
    const std::string name = key.Scalar();
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      std::string hint;
      for (const std::string& a : allowed) {
        if (edit_distance(name, a) <= 2) {
          hint = fmt::format(" (did you mean '{}'?)", a);
          break;
        }
      }
      src.fail(key.Mark(), fmt::format("{}: unknown key '{}'{}; allowed keys: {}", context, name,
                                       hint, join(allowed, ", ")));
    }
    for (const Entry& e : entries) {
      if (e.key == name) {
        src.fail(key.Mark(), fmt::format("{}: duplicate key '{}' (first given at line {})", context,
                                         name, e.key_mark.line + 1));
      }
    }
    entries.push_back(Entry{name, key.Mark(), kv.second, context});
  }
  return entries;
}

const Entry* find_entry(const std::vector<Entry>& entries, std::string_view key) {
  for (const Entry& e : entries) {
    if (e.key == key) return &e;
  }
  return nullptr;
}

std::string scalar_string(const Source& src, const Entry& e) {
  if (!e.value.IsScalar()) {
    src.fail(e.value_mark(),
             fmt::format("{} must be a string, got {}", e.label(), type_name(e.value)));
  }
  return e.value.Scalar();
}

// Calls `add` on each item of a list value, or on the value itself; an empty list is an error.
template <typename Add>
void for_each_item(const Source& src, const Entry& e, const Add& add) {
  if (!e.value.IsSequence()) return add(e.value);
  if (e.value.size() == 0) src.fail(e.value_mark(), fmt::format("{}: empty list", e.label()));
  for (const auto& item : e.value) add(item);
}

// Integer keys: an integer, a range string, or a list of either. Values must be in
// [min_value, max_value], and there may be at most kMaxListValues of them in all.
std::vector<int64_t> int_values(const Source& src, const Entry& e, int64_t min_value,
                                int64_t max_value) {
  std::vector<int64_t> values;
  std::unordered_set<int64_t> seen;
  const auto add_scalar = [&](const YAML::Node& node) {
    if (!node.IsScalar()) {
      src.fail(node.Mark().is_null() ? e.value_mark() : node.Mark(),
               fmt::format("{} must be an integer, a range string or a list of them, got {}",
                           e.label(), type_name(node)));
    }
    try {
      for (const int64_t v : parse_int_list(node.Scalar(), min_value, max_value)) {
        if (seen.insert(v).second) values.push_back(v);
      }
    } catch (const std::invalid_argument& ex) {
      src.fail(node.Mark(), fmt::format("{}: {}", e.label(), ex.what()));
    }
    if (values.size() > kMaxListValues) {
      src.fail(node.Mark(), fmt::format("{}: the list has more than {} values", e.label(),
                                        kMaxListValues));
    }
  };
  for_each_item(src, e, add_scalar);
  return values;
}

struct Word {
  std::string text;
  YAML::Mark mark;
};

// Word keys: one word, a comma-separated string, or a list of words; repeats are an error.
std::vector<Word> word_values(const Source& src, const Entry& e) {
  std::vector<Word> words;
  std::unordered_set<std::string> seen;
  const auto add = [&](const std::string& text, const YAML::Mark& mark) {
    if (!seen.insert(text).second) {
      src.fail(mark, fmt::format("{}: '{}' is listed twice", e.label(), text));
    }
    words.push_back(Word{text, mark});
  };
  const auto add_scalar = [&](const YAML::Node& node) {
    const YAML::Mark mark = node.Mark().is_null() ? e.value_mark() : node.Mark();
    if (!node.IsScalar()) {
      src.fail(mark, fmt::format("{} must be a word or a list of words, got {}", e.label(),
                                 type_name(node)));
    }
    // Why: split_words drops repeats, but a repeat in a config is more likely a typo than intent.
    std::string_view rest = node.Scalar();
    if (rest.find_first_not_of(" \t") == std::string_view::npos) {
      src.fail(mark, fmt::format("{}: empty value", e.label()));
    }
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view part = rest.substr(0, comma);
      try {
        add(split_words(part).front(), mark);
      } catch (const std::invalid_argument&) {
        src.fail(mark, fmt::format("{}: empty item in \"{}\"", e.label(), node.Scalar()));
      }
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  };
  for_each_item(src, e, add_scalar);
  return words;
}

template <typename T, typename Parse>
std::vector<T> enum_values(const Source& src, const Entry& e, Parse parse,
                           std::string_view allowed) {
  std::vector<T> values;
  for (const Word& w : word_values(src, e)) {
    const std::optional<T> v = parse(w.text);
    if (!v) {
      src.fail(w.mark, fmt::format("{}: unknown value '{}'; expected one of {}", e.label(), w.text,
                                   allowed));
    }
    values.push_back(*v);
  }
  return values;
}

std::vector<bool> bool_values(const Source& src, const Entry& e) {
  std::vector<bool> values;
  const auto add = [&](const YAML::Node& node) {
    const YAML::Mark mark = node.Mark().is_null() ? e.value_mark() : node.Mark();
    bool b = false;
    if (!node.IsScalar() || !YAML::convert<bool>::decode(node, b)) {
      src.fail(mark, fmt::format("{} must be true, false or a list of them, got {}", e.label(),
                                 node.IsScalar() ? "'" + node.Scalar() + "'" : type_name(node)));
    }
    if (std::find(values.begin(), values.end(), b) != values.end()) {
      src.fail(mark, fmt::format("{}: '{}' is listed twice", e.label(), b ? "true" : "false"));
    }
    values.push_back(b);
  };
  for_each_item(src, e, add);
  return values;
}

// The sweep keys present in one mapping (a sweep or the defaults), parsed and checked.
struct PartialSweep {
  std::optional<std::vector<int64_t>> batch, in, hidden, x_stride_pad;
  std::optional<std::vector<DType>> dtype;
  std::optional<std::vector<Layout>> layout;
  std::optional<std::vector<bool>> bias;
  std::optional<std::vector<Math>> math;
  std::optional<std::vector<Variant>> variants;
  std::optional<std::vector<TileChoice>> tiles;
};

PartialSweep parse_sweep_keys(const Source& src, const YAML::Node& map,
                              const std::string& context) {
  PartialSweep out;
  for (const Entry& e : map_entries(src, map, context, kSweepKeys)) {
    if (e.value.IsNull()) src.fail(e.value_mark(), fmt::format("{} has no value", e.label()));
    if (e.key == "batch") {
      out.batch = int_values(src, e, 1, kMaxDim);
    } else if (e.key == "in") {
      out.in = int_values(src, e, 1, kMaxDim);
    } else if (e.key == "hidden") {
      out.hidden = int_values(src, e, 1, kMaxDim);
    } else if (e.key == "x_stride_pad") {
      out.x_stride_pad = int_values(src, e, 0, kMaxStridePad);
    } else if (e.key == "dtype") {
      out.dtype = enum_values<DType>(src, e, parse_dtype, "fp32, fp16, bf16, fp8");
    } else if (e.key == "layout") {
      out.layout = enum_values<Layout>(src, e, parse_layout, "linear, packed");
    } else if (e.key == "math") {
      out.math = enum_values<Math>(src, e, parse_math, "exact, tf32, 3xtf32");
    } else if (e.key == "bias") {
      out.bias = bool_values(src, e);
    } else if (e.key == "variants") {
      std::vector<Variant> variants;
      for (const Word& w : word_values(src, e)) {
        const std::optional<Variant> v = parse_variant(w.text);
        if (!v) {
          src.fail(w.mark, fmt::format("{}: unknown variant '{}'; expected one of {}", e.label(),
                                       w.text, "fused, cublas2, cublas1"));
        }
        variants.push_back(*v);
      }
      out.variants = std::move(variants);
    } else if (e.key == "tiles") {
      std::vector<TileChoice> tiles;
      const std::vector<Word> words = word_values(src, e);
      // Why: every case carries its own copy of the list, so its length multiplies the memory.
      if (words.size() > kMaxTileNames) {
        src.fail(words[kMaxTileNames].mark,
                 fmt::format("{}: more than {} tile names ('all' runs every compiled tile)",
                             e.label(), kMaxTileNames));
      }
      for (const Word& w : words) {
        const std::optional<TileChoice> t = TileChoice::parse(w.text);
        if (!t) {
          src.fail(w.mark, fmt::format("{}: '{}' is not 'auto', 'all' or a tile name like "
                                       "sm80:128x64x32s4w4 or simt:64x64x16s2w8",
                                       e.label(), w.text));
        }
        tiles.push_back(*t);
      }
      out.tiles = std::move(tiles);
    }
  }
  return out;
}

// Fills `field` from the sweep, else from the defaults; leaves the spec's default otherwise.
template <typename T>
void take(std::vector<T>& field, const std::optional<std::vector<T>>& sweep,
          const std::optional<std::vector<T>>& defaults) {
  if (sweep) {
    field = *sweep;
  } else if (defaults) {
    field = *defaults;
  }
}

// The whole of a config file, a regular file of at most kMaxConfigBytes.
std::string read_config_file(const std::string& path) {
  try {
    return common::read_regular_file(path, kMaxConfigBytes);
  } catch (const common::FileReadError& e) {
    const std::string why = e.reason({"it is {0}, not a regular file",
                                      "it is {5}{1} bytes, more than the limit of {2} bytes (1 MiB)",
                                      "read error: {4}"});
    throw ConfigError(fmt::format("{}:1:1: cannot read config file: {}", path, why));
  }
}

// Thrown by the scan below, caught by parse_config.
struct ScanError {
  YAML::Mark mark;
  std::string message;
};

// Checks one document's events before yaml-cpp builds its nodes: at most kMaxYamlNodes nodes,
// kMaxYamlDepth levels, and no anchors or aliases.
// Why: an alias is a shared node that every walk visits once per reference ("billion laughs"),
// yaml-cpp's parser recurses once per level of nesting, and its nodes cost about 0.5 KiB each.
class ScanLimits : public YAML::EventHandler {
 public:
  bool saw_document() const { return document_; }
  bool root_is_null() const { return root_null_; }

  void OnDocumentStart(const YAML::Mark&) override { document_ = true; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (nodes_ == 0) root_null_ = true;
    node(mark, anchor);
  }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    throw ScanError{mark, "an alias (*name): anchors and aliases are not supported in configs; "
                          "put shared values in 'defaults'"};
  }
  void OnAnchor(const YAML::Mark& mark, const std::string& name) override {
    throw ScanError{mark, fmt::format("an anchor (&{}): anchors and aliases are not supported in "
                                      "configs; put shared values in 'defaults'", name)};
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string&) override {
    node(mark, anchor);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnSequenceEnd() override { --depth_; }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(mark, anchor);
  }
  void OnMapEnd() override { --depth_; }

 private:
  void node(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) {
      throw ScanError{mark, "an anchor (&name): anchors and aliases are not supported in "
                            "configs; put shared values in 'defaults'"};
    }
    if (++nodes_ > kMaxYamlNodes) {
      throw ScanError{mark, fmt::format("more than {} YAML nodes; a config needs far fewer "
                                        "(use ranges like 1:4096:1 for long lists)",
                                        kMaxYamlNodes)};
    }
  }
  void open(const YAML::Mark& mark, YAML::anchor_t anchor) {
    node(mark, anchor);
    if (++depth_ > kMaxYamlDepth) {
      throw ScanError{mark, fmt::format("lists and mappings nested more than {} deep; a config "
                                        "needs 4 (top level, sweeps, a sweep, a list)",
                                        kMaxYamlDepth)};
    }
  }

  bool document_ = false;
  bool root_null_ = false;
  size_t nodes_ = 0;
  int depth_ = 0;
};

// Stops at the start of a second document.
class NoSecondDocument : public ScanLimits {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    throw ScanError{mark, "more than one YAML document; expected one"};
  }
};

std::string count_text(uint64_t n) {
  return n == std::numeric_limits<uint64_t>::max() ? fmt::format("more than {}", n)
                                                   : fmt::format("{}", n);
}

}  // namespace

uint64_t saturating_mul(uint64_t a, uint64_t b) {
  if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) {
    return std::numeric_limits<uint64_t>::max();
  }
  return a * b;
}

uint64_t count_cases(const SweepSpec& spec) {
  const uint64_t f32 = static_cast<uint64_t>(
      std::count(spec.dtype.begin(), spec.dtype.end(), DType::f32));
  // Why: as in expand_sweep, fp16 and bf16 take one math value, fp32 every one.
  uint64_t n = saturating_mul(f32, spec.math.size());
  n = n == std::numeric_limits<uint64_t>::max() ? n : n + (spec.dtype.size() - f32);
  for (const size_t size : {spec.layout.size(), spec.bias.size(), spec.x_stride_pad.size(),
                            spec.hidden.size(), spec.in.size(), spec.batch.size()}) {
    n = saturating_mul(n, size);
  }
  return n;
}

std::vector<Case> expand_sweep(const SweepSpec& spec, const std::string& origin) {
  std::vector<Case> cases;
  for (const DType dtype : spec.dtype) {
    for (const Layout layout : spec.layout) {
      std::vector<Math> maths = spec.math;
      // Why: math only changes fp32 arithmetic; fp16/bf16 would give the same problem twice.
      if (dtype != DType::f32) maths = {Math::exact};
      for (const Math math : maths) {
        for (const bool bias : spec.bias) {
          for (const int64_t pad : spec.x_stride_pad) {
            for (const int64_t hidden : spec.hidden) {
              for (const int64_t in : spec.in) {
                for (const int64_t batch : spec.batch) {
                  Case c;
                  c.problem.batch = batch;
                  c.problem.in_features = in;
                  c.problem.hidden = hidden;
                  c.problem.dtype = dtype;
                  c.problem.layout = layout;
                  c.problem.bias = bias;
                  c.problem.math = math;
                  c.problem.ldx = in + pad;
                  c.variants = spec.variants;
                  c.tiles = spec.tiles;
                  c.origin = origin;
                  cases.push_back(std::move(c));
                }
              }
            }
          }
        }
      }
    }
  }
  return cases;
}

void check_unique(const std::vector<Case>& cases) {
  std::unordered_map<Problem, size_t, ProblemHash, SameProblem> first;
  first.reserve(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto [it, inserted] = first.emplace(cases[i].problem, i);
    if (inserted) continue;
    const Case& again = cases[i];
    const std::string where = again.file.empty()
                                  ? again.origin
                                  : fmt::format("{}:{}:{}", again.file, again.line, again.column);
    throw ConfigError(fmt::format("{}: duplicate case {}: produced by {} and again by {}", where,
                                  describe(again), cases[it->second].origin, again.origin));
  }
}

SweepConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                         size_t max_cases) {
  const Source src(source_name);
  YAML::Node root;
  try {
    // Why: one document at most, and never YAML::LoadAll: yaml-cpp 0.7 reads a file holding just
    // "," as an endless stream of empty documents, and LoadAll collects them until memory runs out.
    std::istringstream in(yaml_text);
    YAML::Parser parser(in);
    ScanLimits first;
    parser.HandleNextDocument(first);
    if (!first.saw_document()) {
      src.fail(YAML::Mark::null_mark(),
               "empty config; expected a mapping with 'name' and 'sweeps'");
    }
    if (first.root_is_null()) {
      src.fail(YAML::Mark::null_mark(),
               "top level must be a mapping with 'name' and 'sweeps', got nothing (null)");
    }
    NoSecondDocument second;
    parser.HandleNextDocument(second);
    root = YAML::Load(yaml_text);
  } catch (const ScanError& e) {
    src.fail(e.mark, e.message);
  } catch (const YAML::Exception& e) {
    src.fail(e.mark, fmt::format("YAML syntax error: {}", e.msg));
  }
  if (!root.IsMap()) {
    src.fail(root.Mark(),
             fmt::format("top level must be a mapping with 'name' and 'sweeps', got {}",
                         type_name(root)));
  }

  SweepConfig config;
  config.source = source_name;
  const std::vector<Entry> top = map_entries(src, root, "top level", kTopKeys);

  const Entry* name = find_entry(top, "name");
  if (name == nullptr) src.fail(root.Mark(), "top level: missing required key 'name'");
  config.name = scalar_string(src, *name);
  if (config.name.empty()) src.fail(name->value_mark(), "top level: 'name' is empty");

  if (const Entry* description = find_entry(top, "description")) {
    if (!description->value.IsNull()) config.description = scalar_string(src, *description);
  }

  PartialSweep defaults;
  if (const Entry* d = find_entry(top, "defaults")) {
    if (!d->value.IsMap()) {
      src.fail(d->value_mark(),
               fmt::format("top level: 'defaults' must be a mapping of sweep keys, got {}",
                           type_name(d->value)));
    }
    defaults = parse_sweep_keys(src, d->value, "defaults");
  }

  const Entry* sweeps = find_entry(top, "sweeps");
  if (sweeps == nullptr) src.fail(root.Mark(), "top level: missing required key 'sweeps'");
  if (!sweeps->value.IsSequence()) {
    src.fail(sweeps->value_mark(),
             fmt::format("top level: 'sweeps' must be a list of mappings, got {}",
                         type_name(sweeps->value)));
  }
  if (sweeps->value.size() == 0) {
    src.fail(sweeps->value_mark(),
             "top level: 'sweeps' is an empty list; at least one sweep is required");
  }

  uint64_t total = 0;
  int index = 0;
  for (const auto& node : sweeps->value) {
    ++index;
    const std::string context = fmt::format("sweep {}", index);
    const YAML::Mark mark = node.Mark().is_null() ? sweeps->value_mark() : node.Mark();
    if (!node.IsMap()) {
      src.fail(mark, fmt::format("{}: 'sweeps' items must be mappings of sweep keys, got {}",
                                 context, type_name(node)));
    }
    const PartialSweep s = parse_sweep_keys(src, node, context);
    for (const auto& [key, present] :
         {std::pair{"batch", s.batch || defaults.batch}, std::pair{"in", s.in || defaults.in},
          std::pair{"hidden", s.hidden || defaults.hidden},
          std::pair{"dtype", s.dtype || defaults.dtype}}) {
      if (!present) {
        src.fail(mark, fmt::format("{}: missing required key '{}' (set it in the sweep or in "
                                   "'defaults')", context, key));
      }
    }
    SweepSpec spec;
    take(spec.batch, s.batch, defaults.batch);
    take(spec.in, s.in, defaults.in);
    take(spec.hidden, s.hidden, defaults.hidden);
    take(spec.dtype, s.dtype, defaults.dtype);
    take(spec.layout, s.layout, defaults.layout);
    take(spec.bias, s.bias, defaults.bias);
    take(spec.math, s.math, defaults.math);
    take(spec.x_stride_pad, s.x_stride_pad, defaults.x_stride_pad);
    take(spec.variants, s.variants, defaults.variants);
    take(spec.tiles, s.tiles, defaults.tiles);

    // Counted before anything is expanded, so a product of long lists fails at once.
    const uint64_t count = count_cases(spec);
    total = count > std::numeric_limits<uint64_t>::max() - total
                ? std::numeric_limits<uint64_t>::max()
                : total + count;
    if (total > max_cases) {
      src.fail(mark, fmt::format("{}: the config expands to {} cases (this sweep: {}), more than "
                                 "the limit of {}; raise it with --max-cases",
                                 context, count_text(total), count_text(count), max_cases));
    }
    const int line = mark.is_null() ? 1 : mark.line + 1;
    const int column = mark.is_null() ? 1 : mark.column + 1;
    for (Case& c : expand_sweep(spec, fmt::format("{}:{} ({})", source_name, line, context))) {
      c.file = source_name;
      c.line = line;
      c.column = column;
      config.cases.push_back(std::move(c));
    }
  }
  check_unique(config.cases);
  return config;
}

SweepConfig load_config(const std::string& path, size_t max_cases) {
  return parse_config(read_config_file(path), path, max_cases);
}

SweepConfig merge_configs(std::vector<SweepConfig> configs, size_t max_cases) {
  SweepConfig merged;
  std::vector<std::string> names, descriptions, sources;
  size_t total = 0;
  for (const SweepConfig& c : configs) total += c.cases.size();
  if (total > max_cases) {
    std::vector<std::string> parts;
    for (const SweepConfig& c : configs) {
      parts.push_back(fmt::format("{}: {}", c.source, c.cases.size()));
    }
    throw ConfigError(fmt::format("the configs expand to {} cases together ({}), more than the "
                                  "limit of {}; raise it with --max-cases",
                                  total, join(parts, ", "), max_cases));
  }
  merged.cases.reserve(total);
  for (SweepConfig& c : configs) {
    names.push_back(c.name);
    if (!c.description.empty()) descriptions.push_back(c.description);
    sources.push_back(c.source);
    std::move(c.cases.begin(), c.cases.end(), std::back_inserter(merged.cases));
  }
  merged.name = join(names, "+");
  merged.description = join(descriptions, "; ");
  merged.source = join(sources, ", ");
  check_unique(merged.cases);
  return merged;
}

}  // namespace swiglu::bench
