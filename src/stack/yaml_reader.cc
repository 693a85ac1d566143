#include "yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <sstream>
#include <unordered_map>
#include <unordered_set>

namespace shoal::stack {

namespace {

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool Utf16ToUtf8(std::string_view b, bool little, std::string* out, std::string* error) {
  if (b.size() % 2 != 0) {
    *error = "UTF-16 text has an odd number of bytes";
    return false;
  }
  auto unit = [&](size_t i) -> uint32_t {
    auto lo = static_cast<unsigned char>(b[i + (little ? 0 : 1)]);
    auto hi = static_cast<unsigned char>(b[i + (little ? 1 : 0)]);
    return (static_cast<uint32_t>(hi) << 8) | lo;
  };
  out->reserve(b.size() / 2);
  for (size_t i = 0; i < b.size(); i += 2) {
    uint32_t u = unit(i);
    if (u >= 0xD800 && u < 0xDC00) {
      if (i + 2 >= b.size() || unit(i + 2) < 0xDC00 || unit(i + 2) > 0xDFFF) {
        *error = "UTF-16 text has an unpaired surrogate at byte " + std::to_string(i);
        return false;
      }
      u = 0x10000 + ((u - 0xD800) << 10) + (unit(i + 2) - 0xDC00);
      i += 2;
    } else if (u >= 0xDC00 && u <= 0xDFFF) {
      *error = "UTF-16 text has an unpaired surrogate at byte " + std::to_string(i);
      return false;
    }
    AppendUtf8(u, out);
  }
  return true;
}

Mark ToMark(const YAML::Mark& m, const std::string* file) {
  Mark mark;
  mark.file = file;
  if (m.line >= 0) {
    mark.line = m.line + 1;
    mark.column = m.column + 1;
  }
  return mark;
}

// Builds the tree from yaml-cpp's parse events, which is about twice as fast
// as YAML::Load (no intermediate node graph) and lets limits apply while
// parsing rather than after.
class EventReader : public YAML::EventHandler {
 public:
  struct Abort {};  // thrown to stop the parser after a fatal error; caught in ReadYaml

  EventReader(const std::string* file, Diagnostics& diags, const ReadLimits& limits)
      : file_(file), diags_(diags), limits_(limits) {}

  NodePtr root() const { return root_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& m, YAML::anchor_t anchor) override {
    NodePtr n = Node::MakeNull(ToMark(m, file_));
    Count(n->mark);
    if (KeyPending()) return SetKey(n, "");
    Register(anchor, n);
    Add(n);
  }

  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    Mark mark = ToMark(m, file_);
    Count(mark);
    NodePtr n;
    if (tag == "?") {
      n = ResolvePlainScalar(value, mark);
    } else if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
               tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
      n = ResolvePlainScalar(value, mark);
      n->tag = tag;
    } else {
      n = Node::MakeString(value, mark);
      if (tag != "!") n->tag = tag;
    }
    if (KeyPending()) return SetKey(n, tag);
    Register(anchor, n);
    Add(n);
  }

  void OnAlias(const YAML::Mark& m, YAML::anchor_t anchor) override {
    Mark mark = ToMark(m, file_);
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) Fail(mark, "unknown alias");
    NodePtr copy = CountedClone(*it->second);
    if (KeyPending()) return SetKey(copy, "");
    Add(copy);
  }

  void OnSequenceStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Start(Node::MakeSeq(ToMark(m, file_)), tag, anchor);
  }
  void OnSequenceEnd() override { End(); }

  void OnMapStart(const YAML::Mark& m, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    Start(Node::MakeMap(ToMark(m, file_)), tag, anchor);
  }
  void OnMapEnd() override { End(); }

 private:
  struct Frame {
    NodePtr node;
    bool has_key = false;  // maps: a key was read, its value comes next
    std::string key;
    Mark key_mark;
    bool merge_key = false;
    std::vector<NodePtr> merges;  // "<<" sources in order of precedence
    // Keys seen, for duplicates: a scan of the entries while the map is small
    // (most are), a set once it is large.
    std::unordered_set<std::string> seen;
    bool Seen(const std::string& k) const {
      if (!seen.empty()) return seen.count(k) > 0;
      for (const auto& e : node->entries)
        if (e.key == k) return true;
      return false;
    }
    void Insert(const std::string& k) {
      if (seen.empty() && node->entries.size() < 32) return;  // found by the scan
      if (seen.empty())
        for (const auto& e : node->entries) seen.insert(e.key);
      seen.insert(k);
    }
  };

  bool KeyPending() const {
    return !stack_.empty() && stack_.back().node->IsMap() && !stack_.back().has_key;
  }

  // The scalar just read is a key of the map on top.
  void SetKey(const NodePtr& k, const std::string& tag) {
    Frame& f = stack_.back();
    if (!k->IsScalar()) Fail(k->mark, "a mapping key must be a string");
    f.has_key = true;
    f.key_mark = k->mark;
    f.key = k->ScalarText();
    f.merge_key = tag == "?" && f.key == "<<";
    if (!f.merge_key && tag == "?" && k->kind != Kind::kString) {
      diags_.Error(k->mark, PathTo(stack_.size() - 1),
                   k->IsNull() ? "a mapping key is empty"
                               : "non-string key " + f.key +
                                     ": quote it if it is meant as a name (\"" + f.key + "\")");
    }
  }

  void Start(NodePtr n, const std::string& tag, YAML::anchor_t anchor) {
    Count(n->mark);
    if (!tag.empty() && tag != "?" && tag != "!") n->tag = tag;
    if (KeyPending()) Fail(n->mark, "a mapping key must be a string");
    if (static_cast<int>(stack_.size()) >= limits_.max_depth) {
      Fail(n->mark, "nesting is deeper than " + std::to_string(limits_.max_depth) + " levels");
    }
    Register(anchor, n);
    Frame f;
    f.node = std::move(n);
    stack_.push_back(std::move(f));
  }

  void End() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    if (f.node->IsMap()) {
      // Explicit keys win over merged ones; among merged maps the first wins (YAML merge spec).
      for (const auto& m : f.merges) {
        for (const auto& e : m->entries) {
          if (f.Seen(e.key)) continue;
          f.Insert(e.key);
          f.node->entries.push_back({e.key, e.key_mark, e.value->Clone()});
        }
      }
    }
    Add(f.node);
  }

  // The key path of the value about to be added, for messages. Built from the
  // stack only when a message needs it: most documents have none.
  std::string ChildPath() const { return PathTo(stack_.size()); }

  // The path of the value that the frame at `depth` is adding.
  std::string PathTo(size_t depth) const {
    std::string path;
    for (size_t i = 0; i < depth; ++i) {
      const Frame& f = stack_[i];
      path = f.node->IsSeq() ? IndexPath(path, f.node->items.size()) : JoinPath(path, f.key);
    }
    return path;
  }

  void Add(const NodePtr& v) {
    if (stack_.empty()) {
      root_ = v;
      return;
    }
    Frame& f = stack_.back();
    if (f.node->IsSeq()) {
      f.node->items.push_back(v);
      return;
    }
    f.has_key = false;
    auto kpath = [&] { return ChildPath(); };
    if (f.merge_key) {
      if (v->IsMap()) {
        f.merges.push_back(v);
      } else if (v->IsSeq()) {
        for (const auto& item : v->items) {
          if (item->IsMap())
            f.merges.push_back(item);
          else
            diags_.Error(item->mark, kpath(),
                         "a merge key (<<) takes a mapping or a list of mappings");
        }
      } else {
        diags_.Error(f.key_mark, kpath(), "a merge key (<<) takes a mapping or a list of mappings");
      }
      return;
    }
    if (f.Seen(f.key)) {
      const Entry* first = f.node->GetEntry(f.key);
      diags_.Error(f.key_mark, kpath(),
                   "duplicate key \"" + f.key + "\" (first defined at line " +
                       std::to_string(first ? first->key_mark.line : 0) + ")");
      return;
    }
    f.Insert(f.key);
    f.node->entries.push_back({std::move(f.key), std::move(f.key_mark), v});
  }

  void Register(YAML::anchor_t anchor, const NodePtr& n) {
    if (anchor != YAML::NullAnchor) anchors_[anchor] = n;
  }

  void Count(const Mark& mark) {
    if (++nodes_ > limits_.max_nodes) {
      Fail(mark, "the document expands to more than " + std::to_string(limits_.max_nodes) +
                     " values (are aliases nested too deeply?)");
    }
  }

  // Aliases are copied so that each place can be changed on its own. The size
  // of a copy is checked against the alias budget before anything is copied,
  // which is what stops "billion laughs" cheaply.
  NodePtr CountedClone(const Node& n) {
    size_t budget = limits_.max_alias_values - std::min(alias_values_, limits_.max_alias_values);
    size_t size = SizeUpTo(n, budget + 1);
    alias_values_ += size;
    if (size > budget) {
      Fail(n.mark, "the document expands to more than " + std::to_string(limits_.max_alias_values) +
                       " values through aliases (are aliases nested too deeply?)");
    }
    nodes_ += size;
    if (nodes_ > limits_.max_nodes) Count(n.mark);
    return n.Clone();
  }

  // The number of values in `n`, counting no further than `limit`.
  static size_t SizeUpTo(const Node& n, size_t limit) {
    size_t size = 1;
    for (const auto& e : n.entries) {
      if (size > limit) return size;
      size += SizeUpTo(*e.value, limit - size);
    }
    for (const auto& i : n.items) {
      if (size > limit) return size;
      size += SizeUpTo(*i, limit - size);
    }
    return size;
  }

  [[noreturn]] void Fail(const Mark& mark, std::string msg) {
    diags_.Error(mark, ChildPath(), std::move(msg));
    throw Abort{};
  }

  const std::string* file_;
  Diagnostics& diags_;
  const ReadLimits& limits_;
  std::vector<Frame> stack_;
  std::unordered_map<YAML::anchor_t, NodePtr> anchors_;
  NodePtr root_;
  size_t nodes_ = 0;
  size_t alias_values_ = 0;
};

}  // namespace

bool DecodeText(std::string_view b, std::string* out, std::string* error) {
  std::string utf8;
  if (b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0xFF &&
      static_cast<unsigned char>(b[1]) == 0xFE) {
    if (!Utf16ToUtf8(b.substr(2), true, &utf8, error)) return false;
  } else if (b.size() >= 2 && static_cast<unsigned char>(b[0]) == 0xFE &&
             static_cast<unsigned char>(b[1]) == 0xFF) {
    if (!Utf16ToUtf8(b.substr(2), false, &utf8, error)) return false;
  } else if (b.size() >= 3 && b.substr(0, 3) == "\xEF\xBB\xBF") {
    utf8.assign(b.substr(3));
  } else {
    utf8.assign(b);
  }
  out->clear();
  out->reserve(utf8.size());
  for (size_t i = 0; i < utf8.size(); ++i) {
    if (utf8[i] == '\r') {
      out->push_back('\n');
      if (i + 1 < utf8.size() && utf8[i + 1] == '\n') ++i;
    } else {
      out->push_back(utf8[i]);
    }
  }
  return true;
}

bool ReadBounded(std::istream& in, const std::string& name, std::string* out, std::string* error,
                 size_t max_bytes) {
  out->clear();
  char buf[1 << 16];
  while (in) {
    in.read(buf, sizeof buf);
    out->append(buf, static_cast<size_t>(in.gcount()));
    if (out->size() > max_bytes) {
      out->clear();
      *error = name + " is larger than " + std::to_string(max_bytes >> 20) + " MiB";
      return false;
    }
  }
  return true;
}

NodePtr ReadYaml(std::string_view text, const std::string* file, Diagnostics& diags,
                 const ReadLimits& limits) {
  Mark file_mark;
  file_mark.file = file;
  if (text.size() > limits.max_bytes) {
    diags.Error(file_mark, "",
                "file is larger than " + std::to_string(limits.max_bytes >> 20) + " MiB");
    return nullptr;
  }
  if (text.find('\0') != std::string_view::npos) {
    size_t pos = text.find('\0');
    Mark m = file_mark;
    m.line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n'));
    diags.Error(m, "", "file contains a NUL byte: this is not a YAML text file");
    return nullptr;
  }
  try {
    std::string copy(text);
    std::istringstream in(copy);
    YAML::Parser parser(in);
    EventReader reader(file, diags, limits);
    if (!parser.HandleNextDocument(reader) || !reader.root()) return Node::MakeNull(file_mark);
    return reader.root();
  } catch (const EventReader::Abort&) {
    return nullptr;
  } catch (const YAML::Exception& e) {
    Mark m = ToMark(e.mark, file);
    diags.Error(m, "", "invalid YAML: " + e.msg);
    return nullptr;
  } catch (const std::exception& e) {
    diags.Error(file_mark, "", std::string("invalid YAML: ") + e.what());
    return nullptr;
  }
}

}  // namespace shoal::stack
