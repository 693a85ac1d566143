#include "normalize.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "yaml_reader.h"

namespace shoal::stack {

namespace {

NodePtr Str(const std::string& s, const Mark& m) { return Node::MakeString(s, m); }

// A list of "k=v" strings (or "k") into a mapping; values become strings.
void ListToMap(Node& n, bool null_for_bare, char sep = '=') {
  if (n.IsMap()) {
    for (auto& e : n.entries) {
      // A label without a value is an empty string; an environment variable
      // without one is taken from the environment later, so it stays null.
      if (e.value->IsNull() && null_for_bare) continue;
      if (e.value->IsScalar() && e.value->kind != Kind::kString) {
        e.value = Str(e.value->ScalarText(), e.value->mark);
      }
    }
    return;
  }
  if (!n.IsSeq()) return;
  auto m = Node::MakeMap(n.mark);
  for (const auto& item : n.items) {
    std::string s = item->ScalarText();
    size_t eq = s.find(sep);
    if (eq == std::string::npos) {
      m->Set(s, null_for_bare ? Node::MakeNull(item->mark) : Str("", item->mark), item->mark);
    } else {
      m->Set(s.substr(0, eq), Str(s.substr(eq + 1), item->mark), item->mark);
    }
  }
  n = *m;
}

void StringToList(Node& n) {
  if (n.kind == Kind::kString) {
    auto s = Node::MakeSeq(n.mark);
    s->items.push_back(Str(n.text, n.mark));
    n = *s;
  }
}

bool ReadFile(const std::string& path, std::string* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    *error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  return ReadBounded(f, path, out, error);
}

class Normalizer {
 public:
  Normalizer(const NormalizeContext& ctx, Diagnostics& diags) : ctx_(ctx), diags_(diags) {}

  void File(Node& root) {
    if (!root.IsMap()) return;
    if (Node* services = root.Get("services"); services && services->IsMap()) {
      for (auto& e : services->entries) {
        if (e.value->IsNull()) {
          std::string tag = e.value->tag;
          e.value = Node::MakeMap(e.value->mark);
          e.value->tag = tag;
        }
        if (e.value->IsMap()) Service(*e.value, "services." + e.key);
      }
    }
    for (const char* kind : {"networks", "volumes", "secrets", "configs"}) {
      Node* top = root.Get(kind);
      if (!top || !top->IsMap()) continue;
      for (auto& e : top->entries) {
        if (e.value->IsNull()) e.value = Node::MakeMap(e.value->mark);
        if (!e.value->IsMap()) continue;
        Node& obj = *e.value;
        if (Node* labels = obj.Get("labels")) ListToMap(*labels, false);
        if (Node* ext = obj.Get("external"); ext && ext->IsMap()) {
          // Legacy "external: {name: x}" is "name: x, external: true".
          if (Node* name = ext->Get("name")) {
            if (obj.Get("name")) {
              diags_.Error(name->mark, std::string(kind) + "." + e.key + ".external.name",
                           "name and external.name conflict; only use name");
            } else {
              obj.Set("name", Str(name->ScalarText(), name->mark));
            }
          }
          obj.Set("external", Node::MakeBool(true, ext->mark));
        }
        if (std::string(kind) == "secrets" || std::string(kind) == "configs") {
          if (Node* file = obj.Get("file"); file && file->kind == Kind::kString) {
            file->text = ResolvePath(ctx_.dir, ctx_.home, file->text);
          }
        }
      }
    }
  }

 private:
  // The merge tags of the service's keys (!reset, !override) survive the
  // rewriting of their values, so that MergeInto still sees them.
  void Service(Node& svc, const std::string& path) {
    std::map<std::string, std::string> tags;
    for (const auto& e : svc.entries)
      if (!e.value->tag.empty()) tags[e.key] = e.value->tag;
    ServiceKeys(svc, path);
    for (auto& e : svc.entries) {
      auto it = tags.find(e.key);
      if (it != tags.end() && e.value->tag.empty()) e.value->tag = it->second;
    }
  }

  void ServiceKeys(Node& svc, const std::string& path) {
    for (const char* key : {"command", "entrypoint"}) {
      Node* n = svc.Get(key);
      if (!n || n->kind != Kind::kString) continue;
      std::vector<std::string> words;
      if (!ShellSplit(n->text, &words)) {
        diags_.Error(n->mark, JoinPath(path, key), "unterminated quote in \"" + n->text + "\"");
        continue;
      }
      auto seq = Node::MakeSeq(n->mark);
      for (auto& w : words) seq->items.push_back(Str(w, n->mark));
      *n = *seq;
    }
    for (const char* key : {"dns", "dns_search", "dns_opt", "tmpfs", "cap_add", "cap_drop"}) {
      if (Node* n = svc.Get(key)) StringToList(*n);
    }
    if (Node* n = svc.Get("labels")) ListToMap(*n, false);
    if (Node* n = svc.Get("sysctls")) ListToMap(*n, false);
    if (Node* n = svc.Get("extra_hosts")) ExtraHosts(*n);
    Environment(svc, path);
    if (Node* n = svc.Get("ports")) Ports(*n, JoinPath(path, "ports"));
    if (Node* n = svc.Get("volumes")) Volumes(*n, JoinPath(path, "volumes"));
    for (const char* key : {"secrets", "configs"}) {
      Node* n = svc.Get(key);
      if (!n || !n->IsSeq()) continue;
      for (auto& item : n->items) {
        if (item->kind == Kind::kString) {
          auto m = Node::MakeMap(item->mark);
          m->Set("source", Str(item->text, item->mark), item->mark);
          item = m;
        }
      }
    }
    if (Node* n = svc.Get("networks"); n && n->IsSeq()) {
      auto m = Node::MakeMap(n->mark);
      for (const auto& item : n->items)
        m->Set(item->ScalarText(), Node::MakeNull(item->mark), item->mark);
      *n = *m;
    }
    if (Node* n = svc.Get("depends_on")) DependsOn(*n);
    if (Node* hc = svc.Get("healthcheck"); hc && hc->IsMap()) {
      if (Node* t = hc->Get("test"); t && t->kind == Kind::kString) {
        auto seq = Node::MakeSeq(t->mark);
        seq->items.push_back(Str("CMD-SHELL", t->mark));
        seq->items.push_back(Str(t->text, t->mark));
        *t = *seq;
      }
    }
    if (Node* ul = svc.Get("ulimits"); ul && ul->IsMap()) {
      for (auto& e : ul->entries) {
        if (e.value->IsScalar()) {
          auto m = Node::MakeMap(e.value->mark);
          m->Set("soft", e.value->Clone());
          m->Set("hard", e.value->Clone());
          e.value = m;
        }
      }
    }
    if (Node* d = svc.Get("deploy"); d && d->IsMap()) {
      if (Node* l = d->Get("labels")) ListToMap(*l, false);
    }
    if (Node* lg = svc.Get("logging"); lg && lg->IsMap()) {
      if (Node* o = lg->Get("options")) ListToMap(*o, false);
    }
  }

  void ExtraHosts(Node& n) {
    if (n.IsMap()) {
      auto seq = Node::MakeSeq(n.mark);
      for (const auto& e : n.entries) {
        if (e.value->IsSeq()) {
          for (const auto& ip : e.value->items)
            seq->items.push_back(Str(e.key + ":" + ip->ScalarText(), ip->mark));
        } else {
          seq->items.push_back(Str(e.key + ":" + e.value->ScalarText(), e.value->mark));
        }
      }
      n = *seq;
      return;
    }
    if (!n.IsSeq()) return;
    for (auto& item : n.items) {
      std::string s = item->ScalarText();
      size_t eq = s.find('=');
      if (eq != std::string::npos) s[eq] = ':';
      item = Str(s, item->mark);
    }
  }

  void Environment(Node& svc, const std::string& path) {
    auto env = Node::MakeMap(svc.mark);
    if (const Entry* ef = svc.GetEntry("env_file")) {
      env->mark = ef->key_mark;
      Node& files = *ef->value;
      StringToList(files);
      size_t i = 0;
      for (const auto& item : files.items) {
        std::string file;
        bool required = true;
        if (item->IsMap()) {
          if (Node* p = item->Get("path")) file = p->ScalarText();
          if (Node* r = item->Get("required"); r && r->kind == Kind::kBool)
            required = r->bool_value;
        } else {
          file = item->ScalarText();
        }
        std::string abs = ResolvePath(ctx_.dir, ctx_.home, file);
        std::string bytes, text, error;
        std::string ipath = IndexPath(JoinPath(path, "env_file"), i++);
        if (!ReadFile(abs, &bytes, &error)) {
          if (required) diags_.Error(item->mark, ipath, error);
          continue;
        }
        if (!DecodeText(bytes, &text, &error)) {
          diags_.Error(item->mark, ipath, abs + ": " + error);
          continue;
        }
        auto file_name = InternFileName(abs);
        for (auto& de : ParseDotenv(text, file_name, ctx_.lookup, diags_)) {
          Mark m{file_name, de.line, 1};
          env->Set(de.key, de.value ? Str(*de.value, m) : Node::MakeNull(m), m);
        }
      }
      svc.Erase("env_file");
    }
    if (const Entry* e = svc.GetEntry("environment")) {
      Node& n = *e->value;
      ListToMap(n, true);
      if (n.IsMap()) {
        for (const auto& kv : n.entries) env->Set(kv.key, kv.value, kv.key_mark);
      }
    }
    if (env->entries.empty() && !svc.Get("environment")) return;
    // A bare KEY takes its value from the environment shoal runs in; when that
    // has none either, the key stays null and is left out of the task.
    for (auto& kv : env->entries) {
      if (kv.value->IsNull()) {
        if (auto v = ctx_.lookup(kv.key)) kv.value = Str(*v, kv.value->mark);
      }
    }
    svc.Set("environment", env);
  }

  void Ports(Node& n, const std::string& path) {
    if (!n.IsSeq()) return;
    auto out = Node::MakeSeq(n.mark);
    for (size_t i = 0; i < n.items.size(); ++i) {
      const NodePtr& item = n.items[i];
      std::string ipath = IndexPath(path, i);
      if (item->IsMap()) {
        auto m = item->Clone();
        if (!m->Get("mode")) m->Set("mode", Str("ingress", item->mark));
        if (!m->Get("protocol")) m->Set("protocol", Str("tcp", item->mark));
        for (const char* k : {"target", "published"}) {
          Node* v = m->Get(k);
          if (v && v->kind == Kind::kString) {
            NodePtr r = ResolvePlainScalar(v->text, v->mark);
            if (r->kind == Kind::kInt) m->Set(k, r);
          }
        }
        out->items.push_back(m);
        continue;
      }
      std::string spec = item->ScalarText();
      std::string err;
      if (!ShortPort(spec, item->mark, out.get(), &err)) {
        diags_.Error(item->mark, ipath, "invalid port \"" + spec + "\": " + err);
      }
    }
    n = *out;
  }

  static bool ParseRange(const std::string& s, int64_t* lo, int64_t* hi) {
    size_t dash = s.find('-');
    auto num = [](const std::string& t, int64_t* v) {
      if (t.empty() || t.size() > 5) return false;
      for (char c : t)
        if (!isdigit(static_cast<unsigned char>(c))) return false;
      *v = std::stoll(t);
      return *v <= 65535;
    };
    if (dash == std::string::npos) {
      if (!num(s, lo)) return false;
      *hi = *lo;
      return true;
    }
    return num(s.substr(0, dash), lo) && num(s.substr(dash + 1), hi) && *lo <= *hi;
  }

  // "[ip:][published:]target[/protocol]", each port possibly a range.
  static bool ShortPort(std::string spec, const Mark& mark, Node* out, std::string* err) {
    std::string protocol = "tcp";
    if (size_t slash = spec.rfind('/'); slash != std::string::npos) {
      protocol = spec.substr(slash + 1);
      spec = spec.substr(0, slash);
    }
    std::string host_ip, published, target;
    size_t last = spec.rfind(':');
    if (last == std::string::npos) {
      target = spec;
    } else {
      target = spec.substr(last + 1);
      std::string rest = spec.substr(0, last);
      size_t prev = rest.rfind(':');
      if (prev == std::string::npos) {
        published = rest;
      } else {
        published = rest.substr(prev + 1);
        host_ip = rest.substr(0, prev);
        if (host_ip.size() > 2 && host_ip.front() == '[' && host_ip.back() == ']')
          host_ip = host_ip.substr(1, host_ip.size() - 2);
      }
    }
    int64_t tlo, thi, plo = 0, phi = 0;
    if (!ParseRange(target, &tlo, &thi)) {
      *err = "the container port \"" + target + "\" is not a port number (1-65535) or range";
      return false;
    }
    if (!published.empty() && !ParseRange(published, &plo, &phi)) {
      *err = "the published port \"" + published + "\" is not a port number (1-65535) or range";
      return false;
    }
    if (!published.empty() && (phi - plo) != (thi - tlo) && plo != phi) {
      *err = "the published and container port ranges differ in length";
      return false;
    }
    for (int64_t t = tlo; t <= thi; ++t) {
      auto m = Node::MakeMap(mark);
      m->Set("mode", Node::MakeString("ingress", mark));
      m->Set("target", Node::MakeInt(t, mark));
      if (!published.empty()) {
        int64_t p = plo == phi ? plo : plo + (t - tlo);
        m->Set("published", Node::MakeInt(p, mark));
      }
      m->Set("protocol", Node::MakeString(protocol, mark));
      if (!host_ip.empty()) m->Set("host_ip", Node::MakeString(host_ip, mark));
      out->items.push_back(m);
    }
    return true;
  }

  void Volumes(Node& n, const std::string& path) {
    if (!n.IsSeq()) return;
    for (size_t i = 0; i < n.items.size(); ++i) {
      NodePtr& item = n.items[i];
      if (item->IsMap()) {
        Node* type = item->Get("type");
        Node* src = item->Get("source");
        if (type && type->ScalarText() == "bind" && src && src->kind == Kind::kString) {
          src->text = ResolvePath(ctx_.dir, ctx_.home, src->text);
        }
        continue;
      }
      std::string spec = item->ScalarText();
      std::vector<std::string> parts;
      std::stringstream ss(spec);
      for (std::string p; std::getline(ss, p, ':');) parts.push_back(p);
      auto m = Node::MakeMap(item->mark);
      const Mark& mk = item->mark;
      if (parts.size() == 1) {
        m->Set("type", Str("volume", mk));
        m->Set("target", Str(parts[0], mk));
      } else if (parts.size() == 2 || parts.size() == 3) {
        const std::string& src = parts[0];
        bool bind = !src.empty() && (src[0] == '/' || src[0] == '.' || src[0] == '~');
        m->Set("type", Str(bind ? "bind" : "volume", mk));
        m->Set("source", Str(bind ? ResolvePath(ctx_.dir, ctx_.home, src) : src, mk));
        m->Set("target", Str(parts[1], mk));
        if (parts.size() == 3) {
          std::stringstream os(parts[2]);
          for (std::string opt; std::getline(os, opt, ',');) {
            if (opt == "ro") {
              m->Set("read_only", Node::MakeBool(true, mk));
            } else if (opt == "rw") {
            } else if (opt == "nocopy") {
              auto v = Node::MakeMap(mk);
              v->Set("nocopy", Node::MakeBool(true, mk));
              m->Set("volume", v);
            } else if (opt == "z" || opt == "Z") {
              auto b = Node::MakeMap(mk);
              b->Set("selinux", Str(opt, mk));
              m->Set("bind", b);
            } else if (opt == "shared" || opt == "rshared" || opt == "slave" || opt == "rslave" ||
                       opt == "private" || opt == "rprivate") {
              auto b = Node::MakeMap(mk);
              b->Set("propagation", Str(opt, mk));
              m->Set("bind", b);
            } else if (opt == "cached" || opt == "delegated" || opt == "consistent") {
              m->Set("consistency", Str(opt, mk));
            } else {
              diags_.Error(mk, IndexPath(path, i),
                           "invalid volume option \"" + opt + "\" in \"" + spec + "\"");
            }
          }
        }
      } else {
        diags_.Error(mk, IndexPath(path, i),
                     "invalid volume \"" + spec + "\": expected [source:]target[:mode]");
        continue;
      }
      item = m;
    }
  }

  void DependsOn(Node& n) {
    if (n.IsSeq()) {
      auto m = Node::MakeMap(n.mark);
      for (const auto& item : n.items) {
        auto d = Node::MakeMap(item->mark);
        d->Set("condition", Str("service_started", item->mark));
        d->Set("required", Node::MakeBool(true, item->mark));
        m->Set(item->ScalarText(), d, item->mark);
      }
      n = *m;
      return;
    }
    if (!n.IsMap()) return;
    for (auto& e : n.entries) {
      if (e.value->IsNull()) e.value = Node::MakeMap(e.value->mark);
      if (!e.value->IsMap()) continue;
      if (!e.value->Get("condition"))
        e.value->Set("condition", Str("service_started", e.value->mark));
      if (!e.value->Get("required")) e.value->Set("required", Node::MakeBool(true, e.value->mark));
    }
  }

  const NormalizeContext& ctx_;
  Diagnostics& diags_;
};

}  // namespace

bool ShellSplit(std::string_view s, std::vector<std::string>* out) {
  out->clear();
  std::string cur;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) out->push_back(std::move(cur)), cur.clear(), in_word = false;
    } else if (c == '\'') {
      size_t end = s.find('\'', i + 1);
      if (end == std::string_view::npos) return false;
      cur.append(s.substr(i + 1, end - i - 1));
      i = end;
      in_word = true;
    } else if (c == '"') {
      size_t j = i + 1;
      for (; j < s.size() && s[j] != '"'; ++j) {
        if (s[j] == '\\' && j + 1 < s.size() &&
            (s[j + 1] == '"' || s[j + 1] == '\\' || s[j + 1] == '$' || s[j + 1] == '`')) {
          ++j;
        }
        cur.push_back(s[j]);
      }
      if (j >= s.size()) return false;
      i = j;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur.push_back(s[++i]);
      in_word = true;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) out->push_back(std::move(cur));
  return true;
}

std::string ResolvePath(const std::string& dir, const std::string& home, const std::string& p) {
  std::filesystem::path path;
  if (p == "~" || p.rfind("~/", 0) == 0) {
    path = std::filesystem::path(home) / p.substr(p.size() > 1 ? 2 : 1);
  } else if (!p.empty() && p[0] == '/') {
    path = p;
  } else {
    path = std::filesystem::path(dir) / p;
  }
  std::string out = path.lexically_normal().string();
  if (out.size() > 1 && out.back() == '/') out.pop_back();
  return out;
}

void NormalizeFile(Node& root, const NormalizeContext& ctx, Diagnostics& diags) {
  Normalizer(ctx, diags).File(root);
}

}  // namespace shoal::stack
