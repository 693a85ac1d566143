#include "schema_check.h"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_set>

namespace shoal::schema {
extern const char kComposeSpecJson[];
extern const std::size_t kComposeSpecJsonSize;
}  // namespace shoal::schema

namespace shoal::stack {

namespace {

using Excluded = std::unordered_set<const Node*>;

// One compiled schema: the whole specification, or one of its sub-schemas
// lifted to the root (with the definitions it refers to) so that a value can
// be checked against one branch of a oneOf to explain why it failed.
struct CompiledSchema {
  rapidjson::Document json;
  std::unique_ptr<rapidjson::SchemaDocument> doc;
  std::string origin;  // pointer of the root of `json` inside the full schema ("" for the full one)
};

class SchemaSet {
 public:
  static SchemaSet& Get() {
    static SchemaSet set;
    return set;
  }

  const rapidjson::Document& full() const { return full_; }

  // The schema rooted at `pointer` of the full schema; nullptr if it does not exist.
  const CompiledSchema* At(const std::string& pointer) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(pointer);
    if (it != cache_.end()) return it->second.get();
    auto c = std::make_unique<CompiledSchema>();
    c->origin = pointer;
    if (pointer.empty()) {
      c->json.CopyFrom(full_, c->json.GetAllocator());
    } else {
      const rapidjson::Value* sub = rapidjson::Pointer(pointer.c_str()).Get(full_);
      if (!sub || !sub->IsObject()) return nullptr;
      c->json.CopyFrom(*sub, c->json.GetAllocator());
      if (full_.HasMember("definitions") && !c->json.HasMember("definitions")) {
        rapidjson::Value defs;
        defs.CopyFrom(full_["definitions"], c->json.GetAllocator());
        c->json.AddMember("definitions", defs, c->json.GetAllocator());
      }
    }
    c->doc = std::make_unique<rapidjson::SchemaDocument>(c->json);
    const CompiledSchema* out = c.get();
    cache_[pointer] = std::move(c);
    return out;
  }

 private:
  SchemaSet() {
    full_.Parse(schema::kComposeSpecJson, schema::kComposeSpecJsonSize);
    // The schema is compiled in; a parse failure is a build defect, caught by every test.
    if (full_.HasParseError()) full_.SetObject();
    DropPatternProperties(full_, full_.GetAllocator());
  }

  // rapidjson 1.1's validator crashes on patternProperties, so the schema is
  // rewritten without them: "^x-" extension keys are dropped from the document
  // before validation instead, and a single remaining name pattern becomes
  // additionalProperties (object names are checked by CheckNames).
  static void DropPatternProperties(rapidjson::Value& v, rapidjson::Document::AllocatorType& a) {
    if (v.IsArray()) {
      for (auto& x : v.GetArray()) DropPatternProperties(x, a);
      return;
    }
    if (!v.IsObject()) return;
    for (auto& m : v.GetObject()) DropPatternProperties(m.value, a);
    auto pp = v.FindMember("patternProperties");
    if (pp == v.MemberEnd() || !pp->value.IsObject()) return;
    pp->value.RemoveMember("^x-");
    if (pp->value.MemberCount() == 1) {
      rapidjson::Value schema;
      schema.CopyFrom(pp->value.MemberBegin()->value, a);
      v.RemoveMember("additionalProperties");
      v.AddMember("additionalProperties", schema, a);
    }
    v.RemoveMember("patternProperties");
  }

  rapidjson::Document full_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<CompiledSchema>> cache_;
};

void ToJson(const Node& n, rapidjson::Value& out, rapidjson::Document::AllocatorType& a,
            const Excluded& ex) {
  switch (n.kind) {
    case Kind::kNull:
      out.SetNull();
      break;
    case Kind::kBool:
      out.SetBool(n.bool_value);
      break;
    case Kind::kInt:
      out.SetInt64(n.int_value);
      break;
    case Kind::kFloat:
      out.SetDouble(n.float_value);
      break;
    case Kind::kString:
      out.SetString(n.text.data(), static_cast<rapidjson::SizeType>(n.text.size()), a);
      break;
    case Kind::kSeq:
      out.SetArray();
      for (const auto& item : n.items) {
        if (ex.count(item.get())) continue;
        rapidjson::Value v;
        ToJson(*item, v, a, ex);
        out.PushBack(v, a);
      }
      break;
    case Kind::kMap:
      out.SetObject();
      for (const auto& e : n.entries) {
        // A "!reset" value only removes what an earlier file set; its own value is ignored.
        if (ex.count(e.value.get()) || e.key.rfind("x-", 0) == 0 || e.value->tag == "!reset") {
          continue;
        }
        rapidjson::Value k(e.key.data(), static_cast<rapidjson::SizeType>(e.key.size()), a);
        rapidjson::Value v;
        ToJson(*e.value, v, a, ex);
        out.AddMember(k, v, a);
      }
      break;
  }
}

struct Located {
  const Node* node = nullptr;
  const Entry* entry = nullptr;  // the map entry holding node, for the key's mark
  std::string path;
};

// Follows a JSON pointer into the tree, counting list positions the way the
// JSON document saw them (without the values set aside).
Located Resolve(const Node& root, const rapidjson::Pointer& p, const Excluded& ex) {
  Located loc{&root, nullptr, ""};
  for (size_t t = 0; t < p.GetTokenCount(); ++t) {
    const auto& tok = p.GetTokens()[t];
    std::string name(tok.name, tok.length);
    const Node* cur = loc.node;
    if (cur->IsMap()) {
      const Entry* found = nullptr;
      for (const auto& e : cur->entries)
        if (!ex.count(e.value.get()) && e.key == name && e.key.rfind("x-", 0) != 0) found = &e;
      if (!found) break;
      loc = {found->value.get(), found, JoinPath(loc.path, name)};
    } else if (cur->IsSeq()) {
      size_t want = tok.index, seen = 0;
      const Node* found = nullptr;
      for (const auto& item : cur->items) {
        if (ex.count(item.get())) continue;
        if (seen++ == want) {
          found = item.get();
          break;
        }
      }
      if (!found) break;
      loc = {found, nullptr, IndexPath(loc.path, want)};
    } else {
      break;
    }
  }
  return loc;
}

std::string Describe(const Node& n) {
  switch (n.kind) {
    case Kind::kString:
      return "\"" + n.text + "\"";
    case Kind::kMap:
      return "a mapping";
    case Kind::kSeq:
      return "a list";
    case Kind::kNull:
      return "null";
    default:
      return std::string(KindName(n.kind)) + " (" + n.ScalarText() + ")";
  }
}

const char* TypeWord(std::string_view t) {
  if (t == "string") return "a string";
  if (t == "integer") return "an integer";
  if (t == "number") return "a number";
  if (t == "boolean") return "a boolean";
  if (t == "object") return "a mapping";
  if (t == "array") return "a list";
  if (t == "null") return "null";
  return "a value";
}

bool TypeMatches(std::string_view t, Kind k) {
  if (t == "string") return k == Kind::kString;
  if (t == "integer") return k == Kind::kInt;
  if (t == "number") return k == Kind::kInt || k == Kind::kFloat;
  if (t == "boolean") return k == Kind::kBool;
  if (t == "object") return k == Kind::kMap;
  if (t == "array") return k == Kind::kSeq;
  if (t == "null") return k == Kind::kNull;
  return false;
}

// Follows "$ref" (local pointers only, as the compose schema uses).
const rapidjson::Value* Deref(const rapidjson::Value* s, const rapidjson::Value& root) {
  for (int i = 0; s && s->IsObject() && s->HasMember("$ref") && i < 8; ++i) {
    const auto& ref = (*s)["$ref"];
    if (!ref.IsString() || ref.GetString()[0] != '#') return s;
    s = rapidjson::Pointer(ref.GetString() + 1).Get(root);
  }
  return s;
}

std::vector<std::string> Types(const rapidjson::Value& s) {
  std::vector<std::string> out;
  if (!s.IsObject() || !s.HasMember("type")) return out;
  const auto& t = s["type"];
  if (t.IsString()) out.emplace_back(t.GetString());
  if (t.IsArray())
    for (const auto& x : t.GetArray())
      if (x.IsString()) out.emplace_back(x.GetString());
  return out;
}

std::string TypeList(const std::vector<std::string>& types) {
  std::string s;
  for (size_t i = 0; i < types.size(); ++i) {
    if (i) s += i + 1 == types.size() ? " or " : ", ";
    s += TypeWord(types[i]);
  }
  return s;
}

size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] =
          std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1] ? 1u : 0u)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool MatchesPattern(const std::string& key, const char* pattern) {
  rapidjson::internal::Regex re(pattern);
  return re.IsValid() && re.Search(key.c_str());
}

struct Finding {
  Mark mark;
  std::string path;
  std::string message;
  std::vector<const Node*> exclude;  // set aside before validating again
};

class Checker {
 public:
  Checker(const Node& root, Diagnostics& diags) : root_(root), diags_(diags) {}

  // Names of services, networks, volumes, secrets and configs, which the
  // schema's patternProperties said and the rewritten schema no longer does.
  void CheckNames() {
    if (!root_.IsMap()) return;
    for (const char* kind : {"services", "networks", "volumes", "secrets", "configs"}) {
      const Node* top = root_.Get(kind);
      if (!top || !top->IsMap()) continue;
      for (const auto& e : top->entries) {
        bool ok = !e.key.empty();
        for (char c : e.key) {
          ok = ok && (isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
        }
        if (!ok) {
          diags_.Error(
              e.key_mark, JoinPath(kind, e.key),
              "invalid name \"" + e.key + "\": use letters, digits, \".\", \"_\" and \"-\"");
          excluded_.insert(e.value.get());
        }
      }
    }
  }

  void Run() {
    CheckNames();
    SchemaSet& set = SchemaSet::Get();
    const CompiledSchema* full = set.At("");
    for (int round = 0; round < kMaxErrors; ++round) {
      rapidjson::Document doc;
      ToJson(root_, doc, doc.GetAllocator(), excluded_);
      rapidjson::SchemaValidator v(*full->doc);
      if (doc.Accept(v)) return;
      Finding f = Explain(*full, v, root_, "");
      if (f.message.empty() && f.exclude.empty()) {
        // Nothing to point at: look for the error of the value inside by
        // validating once more without the node's siblings... in practice the
        // value error is reported by the oneOf branch check; say what is known.
        f.message = "is not valid here";
        f.exclude.push_back(Resolve(root_, v.GetInvalidDocumentPointer(), excluded_).node);
      }
      if (!f.message.empty()) diags_.Error(f.mark, f.path, f.message);
      bool progressed = false;
      for (const Node* n : f.exclude) {
        if (n != &root_ && excluded_.insert(n).second) progressed = true;
      }
      if (!progressed) return;
    }
  }

 private:
  static constexpr int kMaxErrors = 64;

  // Turns the validator's first error into words. `base` is the key path of
  // `node` within the file, for sub-validations of a oneOf branch.
  Finding Explain(const CompiledSchema& schema, const rapidjson::SchemaValidator& v,
                  const Node& node, const std::string& base) {
    std::string keyword = v.GetInvalidSchemaKeyword();
    rapidjson::StringBuffer sb;
    v.GetInvalidSchemaPointer().StringifyUriFragment(sb);
    std::string sptr = sb.GetString();
    if (!sptr.empty() && sptr[0] == '#') sptr.erase(0, 1);
    const rapidjson::Value* s = rapidjson::Pointer(sptr.c_str()).Get(schema.json);
    const rapidjson::Pointer& dp = v.GetInvalidDocumentPointer();
    Located loc = Resolve(node, dp, excluded_);
    // For a disallowed key rapidjson's document pointer ends with that key: the
    // object that holds it, whose keys are checked below, is one level up.
    if (keyword == "additionalProperties" && s && s->IsObject() && loc.entry &&
        dp.GetTokenCount() > 0) {
      const auto& last = dp.GetTokens()[dp.GetTokenCount() - 1];
      rapidjson::Value name(rapidjson::StringRef(last.name, last.length));
      auto props = s->FindMember("properties");
      bool known =
          props != s->MemberEnd() && props->value.IsObject() && props->value.HasMember(name);
      if (!known)
        loc = Resolve(node, rapidjson::Pointer(dp.GetTokens(), dp.GetTokenCount() - 1), excluded_);
    }
    std::string path =
        base.empty()
            ? loc.path
            : (loc.path.empty() ? base : base + (loc.path[0] == '[' ? "" : ".") + loc.path);
    const Node& bad = *loc.node;
    // Pointers into "definitions" mean the same in the full schema; others are
    // relative to the lifted sub-schema.
    std::string full_ptr = (sptr.rfind("/definitions", 0) == 0) ? sptr : schema.origin + sptr;

    Finding f{bad.mark, path, "", {&bad}};
    if (keyword == "additionalProperties" && bad.IsMap() && s) {
      f.exclude.clear();
      std::vector<std::string> known;
      if (s->HasMember("properties") && (*s)["properties"].IsObject())
        for (const auto& m : (*s)["properties"].GetObject()) known.emplace_back(m.name.GetString());
      for (const auto& e : bad.entries) {
        if (excluded_.count(e.value.get()) || e.key.rfind("x-", 0) == 0) continue;
        bool ok = std::find(known.begin(), known.end(), e.key) != known.end();
        if (!ok && s->HasMember("patternProperties")) {
          for (const auto& m : (*s)["patternProperties"].GetObject())
            if (MatchesPattern(e.key, m.name.GetString())) ok = true;
        }
        if (ok) continue;
        std::string msg = "unknown key \"" + e.key + "\"";
        std::string best;
        size_t best_d = 3;
        for (const auto& k : known) {
          size_t d = EditDistance(e.key, k);
          if (d < best_d) best_d = d, best = k;
        }
        if (!best.empty()) msg += " (did you mean \"" + best + "\"?)";
        if (known.empty() && s->HasMember("patternProperties")) {
          msg = "invalid name \"" + e.key + "\": use letters, digits, \".\", \"_\" and \"-\"";
        }
        if (f.message.empty()) {
          f.mark = e.key_mark;
          f.path = JoinPath(path, e.key);
          f.message = msg;
        } else {
          diags_.Error(e.key_mark, JoinPath(path, e.key), msg);
        }
        f.exclude.push_back(e.value.get());
      }
      if (f.message.empty()) f.message = "has a key that is not allowed";
      if (f.exclude.empty()) f.exclude.push_back(&bad);
      return f;
    }
    if (keyword == "type" && s) {
      f.message = "expected " + TypeList(Types(*s)) + ", got " + Describe(bad);
      return f;
    }
    if (keyword == "required" && s && s->HasMember("required")) {
      for (const auto& r : (*s)["required"].GetArray()) {
        if (!bad.Get(r.GetString())) {
          f.message = std::string("missing required key \"") + r.GetString() + "\"";
          break;
        }
      }
      // rapidjson also says "required" when a present required key has an
      // invalid value; that value's own error is reported instead.
      if (f.message.empty()) f.exclude.clear();
      return f;
    }
    if (keyword == "enum" && s && s->HasMember("enum")) {
      std::string opts;
      for (const auto& e : (*s)["enum"].GetArray()) {
        if (!opts.empty()) opts += ", ";
        opts += e.IsString() ? e.GetString() : "?";
      }
      f.message = "expected one of " + opts + "; got " + Describe(bad);
      return f;
    }
    if ((keyword == "minimum" || keyword == "maximum") && s && s->HasMember(keyword.c_str())) {
      const auto& lim = (*s)[keyword.c_str()];
      std::string l =
          lim.IsInt64() ? std::to_string(lim.GetInt64()) : std::to_string(lim.GetDouble());
      f.message = std::string("must be ") + (keyword == "minimum" ? ">= " : "<= ") + l + ", got " +
                  bad.ScalarText();
      return f;
    }
    if (keyword == "pattern" && s) {
      f.message = "value " + Describe(bad) + " does not match the pattern " +
                  std::string((*s)["pattern"].GetString());
      return f;
    }
    if (keyword == "uniqueItems") {
      f.message = "contains the same item more than once";
      return f;
    }
    if ((keyword == "oneOf" || keyword == "anyOf") && s && s->HasMember(keyword.c_str())) {
      return ExplainAlternatives(schema, *s, keyword, full_ptr, bad, path, f);
    }
    f.message = "is not valid (schema rule \"" + keyword + "\")";
    return f;
  }

  Finding ExplainAlternatives(const CompiledSchema& schema, const rapidjson::Value& s,
                              const std::string& keyword, const std::string& full_ptr,
                              const Node& bad, const std::string& path, Finding f) {
    std::vector<std::string> all_types;
    std::vector<size_t> candidates;
    const auto& alts = s[keyword.c_str()].GetArray();
    for (rapidjson::SizeType i = 0; i < alts.Size(); ++i) {
      const rapidjson::Value* alt = Deref(&alts[i], schema.json);
      std::vector<std::string> types = alt ? Types(*alt) : std::vector<std::string>{};
      bool match = types.empty();
      for (const auto& t : types) {
        if (std::find(all_types.begin(), all_types.end(), t) == all_types.end())
          all_types.push_back(t);
        if (TypeMatches(t, bad.kind)) match = true;
      }
      if (match) candidates.push_back(i);
    }
    if (candidates.empty()) {
      f.message = "expected " + TypeList(all_types) + ", got " + Describe(bad);
      return f;
    }
    // The value has the shape of one branch: check it against that branch
    // alone so the message names the real problem inside it.
    if (candidates.size() == 1 && depth_ < 8) {
      const CompiledSchema* branch =
          SchemaSet::Get().At(full_ptr + "/" + keyword + "/" + std::to_string(candidates[0]));
      if (branch) {
        rapidjson::Document doc;
        ToJson(bad, doc, doc.GetAllocator(), excluded_);
        rapidjson::SchemaValidator v(*branch->doc);
        if (!doc.Accept(v)) {
          ++depth_;
          Finding inner = Explain(*branch, v, bad, path);
          --depth_;
          if (!inner.message.empty()) return inner;
          // The branch's first complaint named no key: find the invalid value
          // among the mapping's entries, each checked against its property.
          if (const Finding* deeper = FindInEntries(*branch, bad, path, &inner)) return *deeper;
        }
      }
    }
    f.message = "does not match any allowed form (" + TypeList(all_types) + ")";
    return f;
  }

  // Checks each entry of a mapping against the branch's schema for that key.
  const Finding* FindInEntries(const CompiledSchema& branch, const Node& map,
                               const std::string& path, Finding* out) {
    const rapidjson::Value* props = rapidjson::Pointer("/properties").Get(branch.json);
    if (!props || !props->IsObject() || !map.IsMap()) return nullptr;
    std::string base = branch.origin + "/properties/";
    for (const auto& e : map.entries) {
      if (!props->HasMember(e.key.c_str())) continue;
      const CompiledSchema* prop = SchemaSet::Get().At(base + e.key);
      if (!prop) continue;
      rapidjson::Document doc;
      ToJson(*e.value, doc, doc.GetAllocator(), excluded_);
      rapidjson::SchemaValidator v(*prop->doc);
      if (doc.Accept(v)) continue;
      ++depth_;
      *out = Explain(*prop, v, *e.value, JoinPath(path, e.key));
      --depth_;
      if (!out->message.empty()) return out;
    }
    return nullptr;
  }

  const Node& root_;
  Diagnostics& diags_;
  Excluded excluded_;
  int depth_ = 0;
};

}  // namespace

void CheckComposeSchema(const Node& root, Diagnostics& diags) { Checker(root, diags).Run(); }

}  // namespace shoal::stack
