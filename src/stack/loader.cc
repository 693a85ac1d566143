#include "shoal/stack/loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "convert.h"
#include "dotenv.h"
#include "interpolate.h"
#include "merge.h"
#include "normalize.h"
#include "schema_check.h"
#include "validate.h"
#include "yaml_reader.h"

extern char** environ;

namespace shoal::stack {

namespace {

namespace fs = std::filesystem;

bool ReadAll(const std::string& path, std::string* out, std::string* error) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    *error = path + " is a directory, not a stack file";
    return false;
  }
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  return ReadBounded(f, path, out, error);
}

std::string Absolute(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

// Loads files one at a time into normalised trees; remembers which files are
// being loaded so that extends and include cannot loop.
class FileSet {
 public:
  FileSet(VariableLookup lookup, std::string home, bool interpolate, Diagnostics& diags)
      : lookup_(std::move(lookup)),
        home_(std::move(home)),
        interpolate_(interpolate),
        diags_(diags) {}

  // Returns the normalised tree of `path`, or nullptr after reporting errors.
  // `shown` is the name used in messages (the path as the user wrote it).
  NodePtr Load(const std::string& path, const std::string& shown, const Mark& from) {
    std::string abs = Absolute(path);
    if (loading_.count(abs)) {
      diags_.Error(from, "", shown + " includes or extends itself");
      return nullptr;
    }
    auto file = InternFileName(shown);
    Mark file_mark{file, 0, 0};
    std::string bytes, text, error;
    if (!ReadAll(path, &bytes, &error)) {
      diags_.Error(from.file ? from : file_mark, "", error);
      return nullptr;
    }
    if (!DecodeText(bytes, &text, &error)) {
      diags_.Error(file_mark, "", error);
      return nullptr;
    }
    NodePtr root = ReadYaml(text, file, diags_);
    if (!root) return nullptr;
    if (root->IsNull()) {
      diags_.Error({file, 1, 1}, "", "empty compose file: it defines no services");
      return nullptr;
    }
    if (!root->IsMap()) {
      diags_.Error(root->mark, "",
                   std::string("top-level object must be a mapping, got ") + KindName(root->kind));
      return nullptr;
    }
    if (const Entry* v = root->GetEntry("version"); v && v->value->kind == Kind::kString) {
      const std::string& ver = v->value->text;
      if (ver.rfind("1", 0) == 0 || ver.rfind("2", 0) == 0) {
        diags_.Error(v->value->mark, "version",
                     "unsupported Compose file version: " + ver +
                         " (stacks use version 3 or the Compose Specification; remove `version` "
                         "or set it to \"3\")");
      }
    }
    if (interpolate_) InterpolateTree(*root, lookup_, diags_);
    CheckComposeSchema(*root, diags_);
    // A file with schema errors still goes through the later steps, so that its
    // semantic errors are reported in the same run; the loader drops what
    // follows from an error already reported (see LoadImpl).
    loading_.insert(abs);
    std::string dir = fs::path(abs).parent_path().string();
    NodePtr included = Includes(*root, dir);
    NormalizeFile(*root, {dir, home_, lookup_}, diags_);
    FileLoader loader = [this](const std::string& p, const Mark& m) { return Load(p, p, m); };
    ResolveExtends(*root, dir, loader, diags_);
    loading_.erase(abs);
    if (included) {
      MergeInto(*included, *root);
      root = included;
    }
    return root;
  }

 private:
  // compose `include:` — the included files' objects, merged in order; the
  // including file is merged over them.
  NodePtr Includes(Node& root, const std::string& dir) {
    const Entry* inc = root.GetEntry("include");
    if (!inc || !inc->value->IsSeq()) return nullptr;
    NodePtr merged;
    for (const auto& item : inc->value->items) {
      std::vector<std::string> paths;
      if (item->IsMap()) {
        if (const Node* p = item->Get("path")) {
          if (p->IsSeq()) {
            for (const auto& x : p->items) paths.push_back(x->ScalarText());
          } else {
            paths.push_back(p->ScalarText());
          }
        }
      } else {
        paths.push_back(item->ScalarText());
      }
      for (const auto& p : paths) {
        std::string abs = ResolvePath(dir, home_, p);
        NodePtr doc = Load(abs, abs, item->mark);
        if (!doc) continue;
        if (!merged)
          merged = doc;
        else
          MergeInto(*merged, *doc);
      }
    }
    root.Erase("include");
    return merged;
  }

  VariableLookup lookup_;
  std::string home_;
  bool interpolate_;
  Diagnostics& diags_;
  std::set<std::string> loading_;
};

// Variables from .env, --env-file and the environment, strongest last.
std::map<std::string, std::string, std::less<>> Variables(const LoadOptions& opts,
                                                          const std::string& dir,
                                                          Diagnostics& diags) {
  std::map<std::string, std::string, std::less<>> vars;
  VariableLookup env_only = [&](std::string_view n) -> std::optional<std::string> {
    auto it = opts.environment.find(std::string(n));
    if (it == opts.environment.end()) return std::nullopt;
    return it->second;
  };
  auto read = [&](const std::string& path, bool required) {
    std::string bytes, text, error;
    if (!ReadAll(path, &bytes, &error)) {
      if (required) diags.Error({}, "", "env file: " + error);
      return;
    }
    if (!DecodeText(bytes, &text, &error)) {
      diags.Error({}, "", path + ": " + error);
      return;
    }
    auto name = InternFileName(path);
    for (auto& e : ParseDotenv(text, name, env_only, diags)) {
      if (e.value) vars[e.key] = *e.value;
    }
  };
  std::error_code ec;
  if (opts.read_dotenv && fs::is_regular_file(fs::path(dir) / ".env", ec)) {
    read((fs::path(dir) / ".env").string(), false);
  }
  for (const auto& f : opts.env_files) read(f, true);
  for (const auto& [k, v] : opts.environment) vars[k] = v;
  return vars;
}

std::string StackNameFor(const LoadOptions& opts, const Node* root, const std::string& dir) {
  if (!opts.stack_name.empty()) return opts.stack_name;
  if (root && root->IsMap()) {
    if (const Node* n = root->Get("name"); n && n->kind == Kind::kString && !n->text.empty())
      return n->text;
  }
  std::string base = fs::path(dir).filename().string();
  std::string out;
  for (char c : base) {
    char l = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (isalnum(static_cast<unsigned char>(l)) || l == '_' || l == '-') out.push_back(l);
  }
  return out.empty() ? "default" : out;
}

Result<LoadedStack, Diagnostics> ResolveImpl(
    const LoadOptions& opts, VariableLookup* lookup_out,
    std::map<std::string, std::string, std::less<>>* vars) {
  Diagnostics diags;
  if (opts.files.empty()) {
    diags.Error({}, "", "no stack file given (use -c FILE)");
    return diags;
  }
  std::string dir = fs::path(Absolute(opts.files[0])).parent_path().string();
  *vars = Variables(opts, dir, diags);
  VariableLookup lookup = [vars](std::string_view n) -> std::optional<std::string> {
    auto it = vars->find(n);
    if (it == vars->end()) return std::nullopt;
    return it->second;
  };
  *lookup_out = lookup;
  auto home_it = opts.environment.find("HOME");
  FileSet files(lookup, home_it == opts.environment.end() ? "/" : home_it->second, opts.interpolate,
                diags);
  NodePtr merged;
  for (const auto& f : opts.files) {
    NodePtr doc = files.Load(f, f, {});
    if (!doc) continue;
    if (!merged) {
      merged = doc;
    } else {
      MergeInto(*merged, *doc);
    }
  }
  if (!merged) {
    diags.Sort();
    return diags;
  }
  WarnUnsupported(*merged, diags);
  LoadedStack out;
  out.name = StackNameFor(opts, merged.get(), dir);
  out.document = merged;
  out.warnings = diags;  // may hold errors: LoadImpl decides
  return out;
}

// True if `path` is `base` or lies below it ("services.web" covers
// "services.web.ports[0]").
bool Covers(const std::string& base, const std::string& path) {
  if (base.empty() || path.rfind(base, 0) != 0) return false;
  return path.size() == base.size() || path[base.size()] == '.' || path[base.size()] == '[';
}

}  // namespace

namespace {

// Resolve and Load share everything but the conversion.
Result<LoadedStack, Diagnostics> LoadImpl(const LoadOptions& options, bool convert) {
  VariableLookup lookup;
  std::map<std::string, std::string, std::less<>> vars;
  auto r = ResolveImpl(options, &lookup, &vars);
  if (!r.ok()) return r;
  LoadedStack out = std::move(r).value();
  Diagnostics early = out.warnings;
  Diagnostics later;
  ValidateStack(*out.document, later);
  if (convert) {
    ConvertOptions copts{out.name, options.read_file_contents, lookup};
    ConvertStack(*out.document, copts, &out.spec, later);
  }
  // Every error of every stage is reported at once, except those about a value
  // that an earlier stage already refused (they would say the same twice).
  Diagnostics diags = early;
  for (const auto& d : later.items()) {
    bool consequence = false;
    for (const auto& e : early.items()) {
      if (e.severity == Severity::kError && d.severity == Severity::kError &&
          Covers(e.path, d.path)) {
        consequence = true;
        break;
      }
    }
    if (!consequence) diags.Add(d);
  }
  diags.Sort();
  if (diags.HasErrors()) return diags;
  out.warnings = diags;
  return out;
}

}  // namespace

Result<LoadedStack, Diagnostics> Resolve(const LoadOptions& options) {
  return LoadImpl(options, /*convert=*/false);
}

Result<LoadedStack, Diagnostics> Load(const LoadOptions& options) {
  return LoadImpl(options, /*convert=*/true);
}

std::map<std::string, std::string> ProcessEnvironment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return env;
}

}  // namespace shoal::stack
