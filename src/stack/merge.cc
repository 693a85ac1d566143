#include "merge.h"

#include <set>

#include "normalize.h"

namespace shoal::stack {

namespace {

// The last segment of a key path: "services.web.ports" -> "ports".
std::string_view LastKey(std::string_view path) {
  size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

bool IsServiceKey(std::string_view path, std::string_view key) {
  // services.<name>.<key>
  if (path.rfind("services.", 0) != 0) return false;
  std::string_view rest = path.substr(9);
  size_t dot = rest.find('.');
  return dot != std::string_view::npos && rest.substr(dot + 1) == key;
}

// The identity of an item in a list merged by key, or "" when it has none.
std::string ItemKey(std::string_view list, const Node& item) {
  if (!item.IsMap()) return "";
  auto text = [&](const char* k) {
    const Node* v = item.Get(k);
    return v ? v->ScalarText() : std::string();
  };
  if (list == "ports") {
    return text("host_ip") + "|" + text("published") + "|" + text("target") + "|" +
           text("protocol") + "|" + text("mode");
  }
  if (list == "volumes") return text("target");
  if (list == "secrets" || list == "configs") {
    std::string t = text("target");
    return t.empty() ? "source:" + text("source") : t;
  }
  return "";
}

}  // namespace

void MergeInto(Node& base, const Node& over, const std::string& path) {
  if (!base.IsMap() || !over.IsMap()) {
    base = *over.Clone();
    return;
  }
  for (const auto& e : over.entries) {
    std::string child = JoinPath(path, e.key);
    if (e.value->tag == "!reset") {
      base.Erase(e.key);
      continue;
    }
    Node* existing = base.Get(e.key);
    if (!existing || e.value->tag == "!override") {
      NodePtr copy = e.value->Clone();
      copy->tag.clear();
      base.Set(e.key, copy, e.key_mark);
      continue;
    }
    const Node& v = *e.value;
    if (existing->IsMap() && v.IsMap()) {
      MergeInto(*existing, v, child);
    } else if (existing->IsSeq() && v.IsSeq()) {
      std::string_view key = LastKey(child);
      bool replace = IsServiceKey(child, "command") || IsServiceKey(child, "entrypoint") ||
                     (child.size() > 5 && child.substr(child.size() - 5) == ".test");
      bool keyed = IsServiceKey(child, "ports") || IsServiceKey(child, "volumes") ||
                   IsServiceKey(child, "secrets") || IsServiceKey(child, "configs");
      if (replace) {
        *existing = *v.Clone();
      } else if (keyed) {
        for (const auto& item : v.items) {
          std::string k = ItemKey(key, *item);
          bool done = false;
          for (auto& b : existing->items) {
            if (!k.empty() && ItemKey(key, *b) == k) {
              b = item->Clone();
              done = true;
              break;
            }
          }
          if (!done) existing->items.push_back(item->Clone());
        }
      } else {
        for (const auto& item : v.items) {
          bool dup = false;
          for (const auto& b : existing->items) dup = dup || b->Equals(*item);
          if (!dup) existing->items.push_back(item->Clone());
        }
      }
    } else {
      base.Set(e.key, v.Clone(), e.key_mark);
    }
  }
}

namespace {

class ExtendsResolver {
 public:
  ExtendsResolver(Node& root, const std::string& dir, const FileLoader& load, Diagnostics& diags)
      : root_(root), dir_(dir), load_(load), diags_(diags) {}

  void Run() {
    Node* services = root_.Get("services");
    if (!services || !services->IsMap()) return;
    for (auto& e : services->entries) Resolve(e.key, *services);
  }

 private:
  // Resolves services.<name> of `services` in place; false on error.
  bool Resolve(const std::string& name, Node& services) {
    Node* svc = services.Get(name);
    if (!svc || !svc->IsMap()) return true;
    const Entry* ext = svc->GetEntry("extends");
    if (!ext) return true;
    std::string path = "services." + name + ".extends";
    if (active_.count(name)) {
      diags_.Error(ext->key_mark, path, "extends forms a cycle through service \"" + name + "\"");
      return false;
    }
    std::string base_name, file;
    if (ext->value->IsMap()) {
      if (Node* s = ext->value->Get("service")) base_name = s->ScalarText();
      if (Node* f = ext->value->Get("file")) file = f->ScalarText();
    } else {
      base_name = ext->value->ScalarText();
    }
    NodePtr base;
    if (file.empty()) {
      active_.insert(name);
      Node* b = services.Get(base_name);
      if (!b) {
        diags_.Error(ext->value->mark, path, "extends an undefined service \"" + base_name + "\"");
        active_.erase(name);
        return false;
      }
      bool ok = Resolve(base_name, services);
      active_.erase(name);
      if (!ok) return false;
      base = services.Get(base_name)->Clone();
    } else {
      NodePtr other = load_(ResolvePath(dir_, "", file), ext->value->mark);
      if (!other) return false;
      Node* os = other->Get("services");
      Node* b = os ? os->Get(base_name) : nullptr;
      if (!b) {
        diags_.Error(ext->value->mark, path,
                     "extends service \"" + base_name + "\" which " + file + " does not define");
        return false;
      }
      base = b->Clone();
    }
    base->Erase("extends");
    NodePtr self = svc->Clone();
    self->Erase("extends");
    // Merge rules are keyed by "services.<name>.<key>".
    auto wrap_base = Node::MakeMap();
    auto services_b = Node::MakeMap();
    services_b->Set(name, base);
    wrap_base->Set("services", services_b);
    auto wrap_self = Node::MakeMap();
    auto services_s = Node::MakeMap();
    services_s->Set(name, self);
    wrap_self->Set("services", services_s);
    MergeInto(*wrap_base, *wrap_self);
    services.Set(name, wrap_base->Get("services")->GetPtr(name));
    return true;
  }

  Node& root_;
  const std::string& dir_;
  const FileLoader& load_;
  Diagnostics& diags_;
  std::set<std::string> active_;
};

}  // namespace

void ResolveExtends(Node& root, const std::string& dir, const FileLoader& load,
                    Diagnostics& diags) {
  ExtendsResolver(root, dir, load, diags).Run();
}

}  // namespace shoal::stack
