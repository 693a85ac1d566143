#include "interpolate.h"

#include <set>

namespace shoal::stack {

namespace {

bool IsNameStart(char c) { return c == '_' || isalpha(static_cast<unsigned char>(c)); }
bool IsNameChar(char c) { return c == '_' || isalnum(static_cast<unsigned char>(c)); }

// Finds the '}' that closes a "${" whose body starts at `pos`, skipping nested
// ${...} so that "${A:-${B}}" is one expression.
size_t FindClosingBrace(std::string_view s, size_t pos) {
  int depth = 1;
  for (size_t i = pos; i < s.size(); ++i) {
    if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
      ++i;
    } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
      ++depth;
      ++i;
    } else if (s[i] == '}') {
      if (--depth == 0) return i;
    }
  }
  return std::string_view::npos;
}

class Interpolator {
 public:
  Interpolator(const VariableLookup& lookup, std::vector<std::string>* unset)
      : lookup_(lookup), unset_(unset) {}

  bool Run(std::string_view in, std::string* out, std::string* error, int depth = 0) {
    if (depth > 16) {
      *error = "defaults are nested more than 16 levels deep";
      return false;
    }
    out->clear();
    for (size_t i = 0; i < in.size(); ++i) {
      char c = in[i];
      if (c != '$' || i + 1 >= in.size()) {
        out->push_back(c);
        continue;
      }
      char n = in[i + 1];
      if (n == '$') {
        out->push_back('$');
        ++i;
      } else if (IsNameStart(n)) {
        size_t j = i + 1;
        while (j < in.size() && IsNameChar(in[j])) ++j;
        std::string name(in.substr(i + 1, j - i - 1));
        out->append(Value(name));
        i = j - 1;
      } else if (n == '{') {
        size_t close = FindClosingBrace(in, i + 2);
        if (close == std::string_view::npos) {
          *error = "invalid interpolation format in \"" + std::string(in) +
                   "\": \"${\" is not closed (write $$ for a literal $)";
          return false;
        }
        std::string expanded;
        if (!Braced(in.substr(i + 2, close - i - 2), &expanded, error, depth)) return false;
        out->append(expanded);
        i = close;
      } else {
        // "$1", "$ " and the like are left as written, as docker and compose do.
        out->push_back(c);
      }
    }
    return true;
  }

 private:
  std::string Value(const std::string& name) {
    auto v = lookup_(name);
    if (!v) {
      if (unset_) unset_->push_back(name);
      return "";
    }
    return *v;
  }

  bool Braced(std::string_view body, std::string* out, std::string* error, int depth) {
    size_t j = 0;
    if (j >= body.size() || !IsNameStart(body[j])) {
      *error = "invalid interpolation format: \"${" + std::string(body) +
               "}\" does not start with a variable name";
      return false;
    }
    while (j < body.size() && IsNameChar(body[j])) ++j;
    std::string name(body.substr(0, j));
    std::string_view rest = body.substr(j);
    if (rest.empty()) {
      *out = Value(name);
      return true;
    }
    bool colon = rest[0] == ':';
    if (colon) rest.remove_prefix(1);
    if (rest.empty() || (rest[0] != '-' && rest[0] != '?' && rest[0] != '+')) {
      *error = "invalid interpolation format: \"${" + std::string(body) +
               "}\" (expected one of :- - :? ? :+ + after the name)";
      return false;
    }
    char op = rest[0];
    std::string_view arg = rest.substr(1);
    std::optional<std::string> v = lookup_(name);
    bool present = colon ? (v && !v->empty()) : v.has_value();
    switch (op) {
      case '-':
        if (present) {
          *out = *v;
          return true;
        }
        return Run(arg, out, error, depth + 1);
      case '+':
        if (!present) {
          out->clear();
          return true;
        }
        return Run(arg, out, error, depth + 1);
      case '?': {
        if (present) {
          *out = *v;
          return true;
        }
        std::string msg;
        if (!Run(arg, &msg, error, depth + 1)) return false;
        *error =
            "required variable " + name + " is missing a value" + (msg.empty() ? "" : ": " + msg);
        return false;
      }
    }
    return false;
  }

  const VariableLookup& lookup_;
  std::vector<std::string>* unset_;
};

// Key paths are built only for values that hold a "$": most values have none,
// and joining a path for each of them was a tenth of the load time.
struct PathSegment {
  const PathSegment* parent;
  std::string_view key;  // empty for a list item
  size_t index;
};

std::string PathString(const PathSegment* seg) {
  if (!seg || !seg->parent) return "";
  std::string base = PathString(seg->parent);
  return seg->key.empty() ? IndexPath(base, seg->index) : JoinPath(base, seg->key);
}

void Walk(Node& n, const PathSegment& here, const VariableLookup& lookup, Diagnostics& diags,
          std::set<std::string>& warned) {
  switch (n.kind) {
    case Kind::kMap:
      for (auto& e : n.entries) {
        PathSegment child{&here, e.key, 0};
        Walk(*e.value, child, lookup, diags, warned);
      }
      return;
    case Kind::kSeq:
      for (size_t i = 0; i < n.items.size(); ++i) {
        PathSegment child{&here, {}, i};
        Walk(*n.items[i], child, lookup, diags, warned);
      }
      return;
    case Kind::kString: {
      if (n.text.find('$') == std::string::npos) return;
      std::string out, error;
      std::vector<std::string> unset;
      if (!InterpolateString(n.text, lookup, &out, &unset, &error)) {
        diags.Error(n.mark, PathString(&here), error);
        return;
      }
      for (const auto& name : unset) {
        // Once per variable: a name used in twenty labels is one problem, not twenty.
        if (warned.insert(name).second) {
          diags.Warning(n.mark, PathString(&here),
                        "variable " + name + " is not set; substituting an empty string");
        }
      }
      n.text = std::move(out);
      return;
    }
    default:
      return;
  }
}

}  // namespace

bool InterpolateString(std::string_view in, const VariableLookup& lookup, std::string* out,
                       std::vector<std::string>* unset, std::string* error) {
  Interpolator interp(lookup, unset);
  return interp.Run(in, out, error);
}

void InterpolateTree(Node& root, const VariableLookup& lookup, Diagnostics& diags) {
  std::set<std::string> warned;
  PathSegment root_segment{nullptr, {}, 0};
  Walk(root, root_segment, lookup, diags, warned);
}

}  // namespace shoal::stack
