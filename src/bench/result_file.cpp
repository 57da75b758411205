#include "bench/result_file.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <deque>
#include <functional>
#include <stdexcept>
#include <unordered_map>
#include <utility>

#include "common/files.hpp"

namespace swiglu::bench {

using common::Json;

namespace {


constexpr std::string_view kSchema = "swiglubench/1";

bool parse_int(std::string_view s, int64_t& out) {
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && p == end;
}

bool parse_double(std::string_view s, double& out) {
  const char* end = s.data() + s.size();
  const auto [p, ec] = std::from_chars(s.data(), end, out);
  // Why: from_chars also reads "inf" and "nan", which are not JSON (the writer writes null).
  return ec == std::errc() && p == end && std::isfinite(out);
}

// A JSON value of a result file and where it starts. Its texts view the file's text (or, for a
// string with escapes, the parser's decoded copy): a row costs a few allocations, not one a key.
struct Node {
  enum class Kind { null, boolean, number, string, array, object };
  struct Member;

  Kind kind = Kind::null;
  size_t offset = 0;            // of the value's first byte in the file
  std::string_view text;        // boolean: "true" or "false"; number: as written; string: decoded
  std::vector<Node> items;      // array
  std::vector<Member> members;  // object, in file order
};

struct Node::Member {
  std::string_view key;
  size_t offset = 0;  // of the key
  Node value;
};

std::string describe(const Node& n) {
  switch (n.kind) {
    case Node::Kind::null: return "null";
    case Node::Kind::boolean:
    case Node::Kind::number: return std::string(n.text);
    case Node::Kind::string: return fmt::format("the string \"{}\"", n.text);
    case Node::Kind::array: return "an array";
    case Node::Kind::object: return "an object";
  }
  return "nothing";
}

Json to_json(const Node& n) {
  switch (n.kind) {
    case Node::Kind::null: return Json();
    case Node::Kind::boolean: return Json(n.text == "true");
    case Node::Kind::number: {
      int64_t i = 0;
      if (parse_int(n.text, i)) return Json(i);
      double d = 0;
      if (parse_double(n.text, d)) return Json(d);
      return Json(std::string(n.text));
    }
    case Node::Kind::string: return Json(std::string(n.text));
    case Node::Kind::array: {
      Json a = Json::array();
      for (const Node& e : n.items) a.push_back(to_json(e));
      return a;
    }
    case Node::Kind::object: {
      Json o = Json::object();
      for (const Node::Member& m : n.members) o.set(m.key, to_json(m.value));
      return o;
    }
  }
  return Json();
}

// The file's name and text; messages read "path: what" or "path:line:column: what".
class Source {
 public:
  Source(std::string path, std::string text) : path_(std::move(path)), text_(std::move(text)) {}

  [[noreturn]] void fail(std::string_view what) const {
    throw ResultFileError(fmt::format("{}: {}", path_, what));
  }
  [[noreturn]] void fail_at(size_t offset, std::string_view what) const {
    throw ResultFileError(fmt::format("{}: {}", where(offset), what));
  }
  // "path:line:column" of a byte offset, both 1-based.
  std::string where(size_t offset) const {
    offset = std::min(offset, text_.size());
    const auto end = text_.begin() + static_cast<std::ptrdiff_t>(offset);
    const size_t line = 1 + static_cast<size_t>(std::count(text_.begin(), end, '\n'));
    const size_t line_start = offset == 0 ? std::string::npos : text_.rfind('\n', offset - 1);
    const size_t column = line_start == std::string::npos ? offset + 1 : offset - line_start;
    return fmt::format("{}:{}:{}", path_, line, column);
  }
  const std::string& text() const { return text_; }

 private:
  std::string path_;
  std::string text_;
};

// The whole file, a regular file of at most kMaxResultFileBytes.
std::string read_result_text(const std::string& path) {
  try {
    return common::read_regular_file(path, kMaxResultFileBytes);
  } catch (const common::FileReadError& e) {
    const std::string why =
        e.reason({"not a regular file ({0}); a result file must be one",
                  "{5}{1} bytes, over the {3} MiB ({2} bytes) limit for a result file", "{4}"});
    throw ResultFileError(fmt::format("{}: cannot read: {}", path, why));
  }
}

// A strict JSON parser (RFC 8259) for result files. Arrays and objects nest at most
// kMaxResultDepth levels; there are no anchors or aliases to expand (YAML's), so the work and the
// memory grow with the file's size alone. The root object's "rows" elements are handed to a
// callback one by one rather than kept, so a large file never holds all its rows as nodes. The
// nodes view the source's text and the parser's decoded strings: both must outlive them.
class Parser {
 public:
  using RowSink = std::function<void(size_t index, Node&& row)>;

  explicit Parser(const Source& src) : src_(src), s_(src.text()) {}

  Node document(const RowSink& on_row) {
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;  // a UTF-8 byte order mark
    skip_space();
    if (pos_ == s_.size()) src_.fail("empty file; expected a swiglubench result object");
    Node root = s_[pos_] == '{' ? object(1, &on_row) : value(1);
    skip_space();
    if (pos_ != s_.size()) src_.fail_at(pos_, "text after the end of the JSON object");
    return root;
  }

 private:
  [[noreturn]] void syntax(std::string_view what) const {
    src_.fail_at(pos_, fmt::format("syntax error: {}", what));
  }

  std::string shown(char c) const {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u < 0x7f ? fmt::format("'{}'", c) : fmt::format("byte 0x{:02x}", u);
  }

  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
      ++pos_;
  }

  // A value that, if it is an array or an object, sits at nesting level `depth` (the root is 1).
  Node value(int depth) {
    skip_space();
    if (pos_ == s_.size()) syntax("unexpected end of file");
    const char c = s_[pos_];
    if (c == '{' || c == '[') return c == '{' ? object(depth, nullptr) : array(depth, nullptr);
    Node n;
    n.offset = pos_;
    if (c == '"') {
      n.kind = Node::Kind::string;
      n.text = string_literal();
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      n.kind = Node::Kind::number;
      n.text = number();
    } else if (literal("true") || literal("false")) {
      n.kind = Node::Kind::boolean;
      n.text = c == 't' ? "true" : "false";
    } else if (literal("null")) {
      n.kind = Node::Kind::null;
    } else if (c == '&' || c == '*') {
      syntax(fmt::format("{}: YAML anchors and aliases are not allowed; a result file is JSON",
                         shown(c)));
    } else {
      syntax(fmt::format("unexpected {}", shown(c)));
    }
    return n;
  }

  void enter(int depth) const {
    if (depth > kMaxResultDepth) {
      src_.fail_at(pos_, fmt::format("arrays and objects nested deeper than {} levels",
                                     kMaxResultDepth));
    }
  }

  // Past `close` and true when it comes next (an empty array or object), else false.
  bool at_close(char close) {
    skip_space();
    if (pos_ == s_.size() || s_[pos_] != close) return false;
    ++pos_;
    return true;
  }

  // After an element: past the ',' (false) or the closing `close` (true).
  bool next_or_close(char close, std::string_view element) {
    skip_space();
    if (pos_ == s_.size() || (s_[pos_] != ',' && s_[pos_] != close))
      syntax(fmt::format("expected ',' or '{}' after {}", close, element));
    return s_[pos_++] == close;
  }

  // An array at `depth`; with `sink`, its elements go there instead of into the node.
  Node array(int depth, const RowSink* sink) {
    enter(depth);
    Node n;
    n.kind = Node::Kind::array;
    n.offset = pos_++;
    if (at_close(']')) return n;
    for (size_t i = 0;; ++i) {
      Node item = value(depth + 1);
      if (sink != nullptr) {
        (*sink)(i, std::move(item));
      } else {
        n.items.push_back(std::move(item));
      }
      if (next_or_close(']', "an array element")) return n;
    }
  }

  // An object at `depth`; with `rows`, the elements of its "rows" array go there.
  Node object(int depth, const RowSink* rows) {
    enter(depth);
    Node n;
    n.kind = Node::Kind::object;
    n.offset = pos_++;
    n.members.reserve(8);
    if (at_close('}')) return n;
    for (;;) {
      skip_space();
      if (pos_ == s_.size() || s_[pos_] != '"') syntax("expected a string key");
      Node::Member m;
      m.offset = pos_;
      m.key = string_literal();
      for (const Node::Member& other : n.members) {
        if (other.key == m.key) src_.fail_at(m.offset, fmt::format("duplicate key '{}'", m.key));
      }
      skip_space();
      if (pos_ == s_.size() || s_[pos_] != ':') syntax("expected ':' after a key");
      ++pos_;
      skip_space();
      if (rows != nullptr && m.key == "rows" && pos_ < s_.size() && s_[pos_] == '[') {
        m.value = array(depth + 1, rows);
      } else {
        m.value = value(depth + 1);
      }
      n.members.push_back(std::move(m));
      if (next_or_close('}', "an object member")) return n;
    }
  }

  bool literal(std::string_view word) {
    if (s_.compare(pos_, word.size(), word) != 0) return false;
    pos_ += word.size();
    return true;
  }

  std::string_view number() {
    const size_t start = pos_;
    const auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ > from;
    };
    if (s_[pos_] == '-') ++pos_;
    if (pos_ < s_.size() && s_[pos_] == '0') {
      ++pos_;
    } else if (!digits()) {
      syntax("a number needs a digit");
    }
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (!digits()) syntax("a number needs a digit after '.'");
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digits()) syntax("a number needs a digit in its exponent");
    }
    return std::string_view(s_).substr(start, pos_ - start);
  }

  unsigned hex4() {
    if (s_.size() - pos_ < 4) syntax("\\u needs four hex digits");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<unsigned>(c - 'A' + 10);
      else syntax("\\u needs four hex digits");
    }
    return v;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  // At the opening quote; returns the decoded string, positioned after the closing quote. Without
  // escapes it is a view of the text, else of a decoded copy the parser keeps.
  std::string_view string_literal() {
    const size_t start = ++pos_;
    std::string out;
    for (;;) {
      const size_t run = pos_;
      while (pos_ < s_.size() && s_[pos_] != '"' && s_[pos_] != '\\' &&
             static_cast<unsigned char>(s_[pos_]) >= 0x20)
        ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '"' && run == start) {
        ++pos_;
        return std::string_view(s_).substr(start, pos_ - 1 - start);
      }
      out.append(s_, run, pos_ - run);
      if (pos_ == s_.size()) syntax("a string is not closed");
      const char c = s_[pos_];
      if (c == '"') {
        ++pos_;
        return decoded_.emplace_back(std::move(out));
      }
      if (c != '\\') syntax("a control character in a string (JSON writes it as \\u00XX)");
      if (++pos_ == s_.size()) syntax("a string is not closed");
      switch (s_[pos_++]) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) syntax("a \\u escape holds a lone low surrogate");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (s_.compare(pos_, 2, "\\u") != 0) syntax("a \\u escape holds a lone high surrogate");
            pos_ += 2;
            const unsigned low = hex4();
            if (low < 0xDC00 || low > 0xDFFF) syntax("a \\u escape holds a lone high surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(out, cp);
          break;
        }
        default: --pos_; syntax(fmt::format("unknown escape \\{}", s_[pos_]));
      }
    }
  }

  const Source& src_;
  const std::string& s_;
  size_t pos_ = 0;
  std::deque<std::string> decoded_;  // strings with escapes; a deque never moves its elements
};

// The members of a JSON object with typed readers; `where` names it in messages ("rows[3]").
class Object {
 public:
  Object(const Source& src, const Node& node, std::string where)
      : src_(src), node_(node), where_(std::move(where)) {
    if (node.kind != Node::Kind::object) {
      src.fail_at(node.offset,
                  fmt::format("{} must be an object, found {}", where_, describe(node)));
    }
  }

  const Node* find(std::string_view key) const {
    for (const Node::Member& m : node_.members)
      if (m.key == key) return &m.value;
    return nullptr;
  }

  // The value of `key`; throws when it is absent.
  const Node& need(std::string_view key) const {
    const Node* v = find(key);
    if (v == nullptr) src_.fail_at(node_.offset, fmt::format("{}: missing key '{}'", where_, key));
    return *v;
  }

  [[noreturn]] void fail(const Node& at, std::string_view what) const {
    src_.fail_at(at.offset, fmt::format("{}: {}", where_, what));
  }

  // Typed readers. `out` keeps its value when the key is absent and not required.
  void string(std::string_view key, bool required, std::string& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind != Node::Kind::string) wrong(*v, key, "a string");
      out = v->text;
    }
  }
  void nullable_string(std::string_view key, bool required, std::string& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind == Node::Kind::null) {
        out.clear();
      } else {
        if (v->kind != Node::Kind::string) wrong(*v, key, "a string or null");
        out = v->text;
      }
    }
  }
  void integer(std::string_view key, bool required, int64_t& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind != Node::Kind::number || !parse_int(v->text, out)) wrong(*v, key, "an integer");
    }
  }
  void boolean(std::string_view key, bool required, bool& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind != Node::Kind::boolean) wrong(*v, key, "true or false");
      out = v->text == "true";
    }
  }
  // A number or null (NaN).
  void number(std::string_view key, bool required, double& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind == Node::Kind::null) {
        out = kNaN;
      } else if (v->kind != Node::Kind::number || !parse_double(v->text, out)) {
        wrong(*v, key, "a number or null");
      }
    }
  }
  // A non-negative integer or null (-1).
  void index(std::string_view key, bool required, int64_t& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind == Node::Kind::null) {
        out = -1;
      } else if (v->kind != Node::Kind::number || !parse_int(v->text, out) || out < 0) {
        wrong(*v, key, "a non-negative integer or null");
      }
    }
  }
  // An integer of either sign or null (-1): a byte count, or a difference of two (cudaMemGetInfo's
  // readings may move against it).
  void nullable_integer(std::string_view key, bool required, int64_t& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind == Node::Kind::null) {
        out = -1;
      } else if (v->kind != Node::Kind::number || !parse_int(v->text, out)) {
        wrong(*v, key, "an integer or null");
      }
    }
  }
  // A measured value or null (NaN). A number outside [lo, hi] (<= 0, denormal, absurd, beyond a
  // double) is refused; the message names the row's case, label().
  template <typename Label>
  void measurement(std::string_view key, bool required, double lo, double hi, const Label& label,
                   double& out) const {
    if (const Node* v = lookup(key, required)) {
      if (v->kind == Node::Kind::null) {
        out = kNaN;
        return;
      }
      if (v->kind != Node::Kind::number) wrong(*v, key, "a number or null");
      if (!parse_double(v->text, out) || !(out >= lo && out <= hi)) {
        fail(*v, fmt::format("case {}: '{}' is {}, not a measurement (a number in [{}, {}], "
                             "or null)",
                             label(), key, v->text, lo, hi));
      }
    }
  }
  void count(std::string_view key, bool required, size_t& out) const {
    int64_t i = 0;
    if (const Node* v = lookup(key, required)) {
      if (v->kind != Node::Kind::number || !parse_int(v->text, i) || i < 0)
        wrong(*v, key, "a non-negative integer");
      out = static_cast<size_t>(i);
    }
  }

 private:
  const Node* lookup(std::string_view key, bool required) const {
    return required ? &need(key) : find(key);
  }
  [[noreturn]] void wrong(const Node& v, std::string_view key, std::string_view want) const {
    fail(v, fmt::format("'{}' must be {}, found {}", key, want, describe(v)));
  }

  const Source& src_;
  const Node& node_;
  std::string where_;
};

// The key of a row's problem: case_key without the tile.
std::string problem_key(const Row& r, std::string_view policy) {
  std::string key = fmt::format("{} {} B={} I={} D={} ldx={} {} {} {} bias={}", r.op, r.variant,
                                r.batch, r.in, r.hidden, r.ldx, r.dtype, r.layout, r.math, r.bias);
  if (!policy.empty()) fmt::format_to(std::back_inserter(key), " policy={}", policy);
  return key;
}

// The inverse of row_to_json. Required: the case key, status, and what the comparison reads.
// Returns whether the row names its tile_choice (files written before it existed have none, and
// gradient rows were once written with it empty).
bool read_row(const Object& o, Row& r) {
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
  o.number("p25_ms", opt, r.p25_ms);
  o.number("p75_ms", opt, r.p75_ms);
  o.number("min_ms", opt, r.min_ms);
  o.count("samples", opt, r.samples);
  o.number("tflops", opt, r.tflops);
  o.number("gbps", opt, r.gbps);
  o.number("copy_fraction", opt, r.copy_fraction);
  o.number("rel_l2_unquantised", opt, r.rel_l2_unquantised);
  o.number("sm_clock_mhz", opt, r.sm_clock_mhz);
  o.boolean("cold_l2", opt, r.cold_l2);
  o.boolean("cuda_graph", opt, r.cuda_graph);
  o.nullable_string("tile_choice", opt, r.tile_choice);
  o.nullable_string("policy", opt, r.policy);
  // The gradient ops' keys (row_to_json writes them for backward, step and memory rows only).
  o.string("grads", opt, r.grads);
  o.string("gate_placement", opt, r.gate_placement);
  o.string("tile_forward", opt, r.tile_forward);
  o.string("tile_recompute", opt, r.tile_recompute);
  o.string("tile_dx", opt, r.tile_dx);
  o.string("tile_dw", opt, r.tile_dw);
  o.string("worst_output", opt, r.worst_output);
  o.number("rel_l2_z", opt, r.rel_l2_z);
  o.number("rel_l2_dx", opt, r.rel_l2_dx);
  o.number("rel_l2_dw", opt, r.rel_l2_dw);
  o.number("rel_l2_dbias", opt, r.rel_l2_dbias);
  o.nullable_integer("requested_saved_bytes", opt, r.requested_saved_bytes);
  o.nullable_integer("measured_saved_bytes", opt, r.measured_saved_bytes);
  o.nullable_integer("requested_workspace_bytes", opt, r.requested_workspace_bytes);
  o.nullable_integer("measured_workspace_bytes", opt, r.measured_workspace_bytes);
  o.number("saved_vs_cublas2", opt, r.saved_vs_cublas2);
  o.number("workspace_vs_cublas2", opt, r.workspace_vs_cublas2);
  o.nullable_integer("cublas_workspace_bytes", opt, r.cublas_workspace_bytes);
  o.nullable_integer("meminfo_granularity_bytes", opt, r.meminfo_granularity_bytes);
  o.nullable_integer("measured_peak_bytes", opt, r.measured_peak_bytes);
  o.number("peak_vs_cublas2", opt, r.peak_vs_cublas2);
  // What the comparison reads: a value that no run measures (<= 0, denormal, absurdly large) would
  // decide a verdict, so it makes the file malformed.
  const auto label = [&] { return problem_key(r, r.policy); };
  o.measurement("median_ms", req, kMinMeasurement, kMaxMeasurement, label, r.median_ms);
  o.measurement("noise", req, 0.0, kMaxNoise, label, r.noise);
  o.measurement("speedup_vs_cublas2", req, kMinMeasurement, kMaxMeasurement, label,
                r.speedup_vs_cublas2);
  o.measurement("speedup_vs_cublas1", req, kMinMeasurement, kMaxMeasurement, label,
                r.speedup_vs_cublas1);
  return !r.tile_choice.empty();
}

// Rows that do not name their tile_choice: a fused row (forward "fused", gradient "fused-save",
// "fused-recompute", ...) is taken as the heuristic's pick when it is the only row of its variant
// and problem in the file (a sweep with tiles: auto, as configs/ci.yaml), else as forced (tiles:
// all, or a list of names).
void infer_tile_choice(ResultFile& f, const std::vector<char>& has_choice) {
  std::unordered_map<std::string, int> fused_rows;
  for (size_t i = 0; i < f.rows.size(); ++i)
    if (fused_row(f.rows[i])) ++fused_rows[problem_key(f.rows[i], f.rows[i].policy)];
  for (size_t i = 0; i < f.rows.size(); ++i) {
    Row& r = f.rows[i];
    if (has_choice[i] || !fused_row(r)) continue;
    r.tile_choice = fused_rows[problem_key(r, r.policy)] == 1 ? "auto" : "forced";
  }
}

}  // namespace

ResultFile load_result_file(const std::string& path) {
  const Source src(path, read_result_text(path));
  ResultFile file;
  file.path = path;
  std::vector<char> has_choice;
  // Why kept aside: the root's keys (schema first) are checked before any row is blamed.
  std::string row_error;
  Parser parser(src);
  const Node root = parser.document([&](size_t i, Node&& node) {
    if (!row_error.empty()) return;
    try {
      const Object row(src, node, fmt::format("rows[{}]", i));
      Row r;
      has_choice.push_back(read_row(row, r) ? 1 : 0);
      file.rows.push_back(std::move(r));
    } catch (const ResultFileError& e) {
      row_error = e.what();
    }
  });

  const Object top(src, root, "the file");
  std::string schema;
  top.string("schema", true, schema);
  if (schema != kSchema) {
    src.fail_at(top.need("schema").offset,
                fmt::format("schema is '{}', expected '{}'", schema, kSchema));
  }
  const Node& prov_node = top.need("provenance");
  const Object prov(src, prov_node, "provenance");
  prov.string("git_sha", true, file.git_sha);
  const Object device(src, prov.need("device"), "provenance.device");
  device.string("name", true, file.device_name);
  device.integer("sm_count", true, file.sm_count);
  device.integer("cublas", true, file.cublas_version);
  device.nullable_string("driver", true, file.driver);
  device.nullable_string("cuda_driver_api", true, file.cuda_driver_api);
  if (const Node* timing = prov.find("timing")) {
    const Object t(src, *timing, "provenance.timing");
    t.boolean("cuda_graph", false, file.cuda_graph);
  }
  file.provenance = to_json(prov_node);
  top.boolean("complete", true, file.complete);
  const Node& rows = top.need("rows");
  if (rows.kind != Node::Kind::array)
    src.fail_at(rows.offset, fmt::format("'rows' must be an array, found {}", describe(rows)));
  if (!row_error.empty()) throw ResultFileError(row_error);
  infer_tile_choice(file, has_choice);
  return file;
}

std::string case_key(const Row& r, std::string_view policy) {
  const std::string_view tile = r.tile_choice == "auto" ? std::string_view("auto") : r.tile;
  return fmt::format("{} tile={}", problem_key(r, policy), tile);
}

}  // namespace swiglu::bench
