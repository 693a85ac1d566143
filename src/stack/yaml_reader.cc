#include "yaml_reader.h"

#include <yaml-cpp/yaml.h>

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

Mark ToMark(const YAML::Mark& m, const std::shared_ptr<const std::string>& file) {
  Mark mark;
  mark.file = file;
  if (m.line >= 0) {
    mark.line = m.line + 1;
    mark.column = m.column + 1;
  }
  return mark;
}

class Reader {
 public:
  Reader(std::shared_ptr<const std::string> file, Diagnostics& diags, const ReadLimits& limits)
      : file_(std::move(file)), diags_(diags), limits_(limits) {}

  NodePtr Convert(const YAML::Node& y, const std::string& path, int depth) {
    if (failed_) return nullptr;
    Mark mark = ToMark(y.Mark(), file_);
    if (depth > limits_.max_depth) {
      Fail(mark, path, "nesting is deeper than " + std::to_string(limits_.max_depth) + " levels");
      return nullptr;
    }
    if (++nodes_ > limits_.max_nodes) {
      Fail(mark, path,
           "the document expands to more than " + std::to_string(limits_.max_nodes) +
               " values (are aliases nested too deeply?)");
      return nullptr;
    }
    const std::string& tag = y.Tag();
    std::string user_tag = (!tag.empty() && tag != "?" && tag != "!") ? tag : "";
    NodePtr n;
    switch (y.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        n = Node::MakeNull(mark);
        break;
      case YAML::NodeType::Scalar:
        n = ConvertScalar(y, mark, tag);
        break;
      case YAML::NodeType::Sequence: {
        n = Node::MakeSeq(mark);
        size_t i = 0;
        for (const auto& item : y) {
          NodePtr c = Convert(item, IndexPath(path, i++), depth + 1);
          if (!c) return nullptr;
          n->items.push_back(std::move(c));
        }
        break;
      }
      case YAML::NodeType::Map:
        n = ConvertMap(y, mark, path, depth);
        if (!n) return nullptr;
        break;
    }
    if (n->tag.empty()) n->tag = user_tag;
    return n;
  }

  bool failed() const { return failed_; }

 private:
  NodePtr ConvertScalar(const YAML::Node& y, const Mark& mark, const std::string& tag) {
    const std::string& s = y.Scalar();
    if (tag == "?") return ResolvePlainScalar(s, mark);
    if (tag == "tag:yaml.org,2002:int" || tag == "tag:yaml.org,2002:float" ||
        tag == "tag:yaml.org,2002:bool" || tag == "tag:yaml.org,2002:null") {
      NodePtr n = ResolvePlainScalar(s, mark);
      n->tag = tag;
      return n;
    }
    NodePtr n = Node::MakeString(s, mark);
    n->quoted = true;
    return n;
  }

  // Resolves a key to a string; compose refuses non-string keys.
  bool KeyText(const YAML::Node& k, const std::string& path, std::string* out) {
    if (k.Type() != YAML::NodeType::Scalar) {
      Fail(ToMark(k.Mark(), file_), path,
           k.IsNull() ? "a mapping key is empty" : "a mapping key must be a string");
      return false;
    }
    if (k.Tag() == "?") {
      NodePtr r = ResolvePlainScalar(k.Scalar(), {});
      if (r->kind != Kind::kString) {
        Error(ToMark(k.Mark(), file_), path, "non-string key " + k.Scalar() +
                                                 ": quote it if it is meant as a name (\"" +
                                                 k.Scalar() + "\")");
      }
    }
    *out = k.Scalar();
    return true;
  }

  NodePtr ConvertMap(const YAML::Node& y, const Mark& mark, const std::string& path, int depth) {
    NodePtr n = Node::MakeMap(mark);
    std::vector<NodePtr> merges;  // "<<" sources, in order of precedence
    std::unordered_set<std::string> seen;
    for (const auto& kv : y) {
      const YAML::Node& k = kv.first;
      if (k.Type() == YAML::NodeType::Scalar && k.Tag() == "?" && k.Scalar() == "<<") {
        std::string mpath = JoinPath(path, "<<");
        NodePtr src = Convert(kv.second, mpath, depth + 1);
        if (!src) return nullptr;
        if (src->IsMap()) {
          merges.push_back(src);
        } else if (src->IsSeq()) {
          for (const auto& item : src->items) {
            if (!item->IsMap()) {
              Error(item->mark, mpath, "a merge key (<<) takes a mapping or a list of mappings");
              continue;
            }
            merges.push_back(item);
          }
        } else {
          Error(src->mark, mpath, "a merge key (<<) takes a mapping or a list of mappings");
        }
        continue;
      }
      std::string key;
      if (!KeyText(k, path, &key)) return nullptr;
      std::string kpath = JoinPath(path, key);
      Mark kmark = ToMark(k.Mark(), file_);
      if (!seen.insert(key).second) {
        const Entry* first = n->GetEntry(key);
        Error(kmark, kpath,
              "duplicate key \"" + key + "\" (first defined at line " +
                  std::to_string(first ? first->key_mark.line : 0) + ")");
        continue;
      }
      NodePtr v = Convert(kv.second, kpath, depth + 1);
      if (!v) return nullptr;
      n->entries.push_back({std::move(key), kmark, std::move(v)});
    }
    // Explicit keys win over merged ones; among merged maps the first wins (YAML merge spec).
    for (const auto& m : merges) {
      for (const auto& e : m->entries) {
        if (seen.insert(e.key).second) n->entries.push_back({e.key, e.key_mark, e.value->Clone()});
      }
    }
    return n;
  }

  void Error(const Mark& mark, const std::string& path, std::string msg) {
    diags_.Error(mark, path, std::move(msg));
  }
  void Fail(const Mark& mark, const std::string& path, std::string msg) {
    Error(mark, path, std::move(msg));
    failed_ = true;
  }

  std::shared_ptr<const std::string> file_;
  Diagnostics& diags_;
  const ReadLimits& limits_;
  size_t nodes_ = 0;
  bool failed_ = false;
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

NodePtr ReadYaml(std::string_view text, const std::shared_ptr<const std::string>& file,
                 Diagnostics& diags, const ReadLimits& limits) {
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
    YAML::Node root = YAML::Load(std::string(text));
    Reader reader(file, diags, limits);
    NodePtr n = reader.Convert(root, "", 0);
    if (reader.failed()) return nullptr;
    return n;
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
