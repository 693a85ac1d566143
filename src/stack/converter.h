#pragma once

// The converter behind ConvertStack: scalar helpers that report bad values,
// and the top-level objects. Services are converted in convert_service.cc.

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>

#include "convert.h"
#include "shoal/common/units.h"
#include "validate.h"
#include "yaml_reader.h"

namespace shoal::stack::detail {

using namespace shoal::v1;  // NOLINT: the spec messages are this file's vocabulary

constexpr int64_t kSecond = 1'000'000'000;

inline std::string Sha256Hex(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 15]);
  }
  return out;
}

class Converter {
 public:
  Converter(const Node& root, const ConvertOptions& opts, StackSpec* out, Diagnostics& diags)
      : root_(root), opts_(opts), out_(out), diags_(diags) {}

  void Run() {
    out_->set_name(opts_.stack_name);
    TopLevel<NetworkSpec>("networks", [&](const std::string& key, const Node& n, NetworkSpec* s) {
      Network(key, n, s);
    });
    TopLevel<VolumeSpec>("volumes", [&](const std::string& key, const Node& n, VolumeSpec* s) {
      Volume(key, n, s);
    });
    TopLevel<SecretSpec>("secrets", [&](const std::string& key, const Node& n, SecretSpec* s) {
      Secret(key, n, s);
    });
    TopLevel<ConfigSpec>("configs", [&](const std::string& key, const Node& n, ConfigSpec* s) {
      Config(key, n, s);
    });
    if (const Node* services = root_.Get("services"); services && services->IsMap()) {
      for (const auto& e : services->entries) {
        if (e.value->IsMap()) Service(e.key, *e.value, out_->add_services());
      }
    }
    SortAll();
  }

 private:
  // ---- scalar helpers: each reports a bad value and returns a fallback ----

  std::string Text(const Node* n) { return n ? n->ScalarText() : ""; }

  bool Bool(const Node* n, const std::string& path, bool fallback = false) {
    if (!n || n->IsNull()) return fallback;
    if (n->kind == Kind::kBool) return n->bool_value;
    std::string t = n->ScalarText();
    if (t == "true" || t == "True" || t == "TRUE") return true;
    if (t == "false" || t == "False" || t == "FALSE") return false;
    diags_.Error(n->mark, path, "expected a boolean, got \"" + t + "\"");
    return fallback;
  }

  int64_t Int(const Node* n, const std::string& path, int64_t fallback = 0, int64_t min = 0) {
    if (!n || n->IsNull()) return fallback;
    int64_t v;
    if (n->kind == Kind::kInt) {
      v = n->int_value;
    } else {
      NodePtr r = ResolvePlainScalar(n->ScalarText(), n->mark);
      if (r->kind != Kind::kInt) {
        diags_.Error(n->mark, path, "expected an integer, got \"" + n->ScalarText() + "\"");
        return fallback;
      }
      v = r->int_value;
    }
    if (v < min) {
      diags_.Error(n->mark, path,
                   "must be >= " + std::to_string(min) + ", got " + std::to_string(v));
      return fallback;
    }
    return v;
  }

  double Float(const Node* n, const std::string& path) {
    if (!n || n->IsNull()) return 0;
    if (n->kind == Kind::kInt) return static_cast<double>(n->int_value);
    if (n->kind == Kind::kFloat) return n->float_value;
    NodePtr r = ResolvePlainScalar(n->ScalarText(), n->mark);
    if (r->kind == Kind::kInt) return static_cast<double>(r->int_value);
    if (r->kind == Kind::kFloat) return r->float_value;
    diags_.Error(n->mark, path, "expected a number, got \"" + n->ScalarText() + "\"");
    return 0;
  }

  int64_t Duration(const Node* n, const std::string& path, int64_t fallback) {
    if (!n || n->IsNull()) return fallback;
    auto r = ParseDuration(n->ScalarText());
    if (!r.ok()) {
      diags_.Error(n->mark, path, r.error().message());
      return fallback;
    }
    return *r;
  }

  int64_t Bytes(const Node* n, const std::string& path) {
    if (!n || n->IsNull()) return 0;
    if (n->kind == Kind::kInt) {
      if (n->int_value < 0) diags_.Error(n->mark, path, "a size must be >= 0");
      return std::max<int64_t>(0, n->int_value);
    }
    auto r = ParseBytes(n->ScalarText());
    if (!r.ok()) {
      diags_.Error(n->mark, path, r.error().message());
      return 0;
    }
    return *r;
  }

  int64_t Cpus(const Node* n, const std::string& path) {
    if (!n || n->IsNull()) return 0;
    auto r = ParseNanoCpus(n->ScalarText());
    if (!r.ok()) {
      diags_.Error(n->mark, path, r.error().message());
      return 0;
    }
    return *r;
  }

  uint32_t Mode(const Node* n, const std::string& path, uint32_t fallback) {
    if (!n || n->IsNull()) return fallback;
    int64_t v = Int(n, path, fallback);
    if (v > 07777) {
      diags_.Error(n->mark, path, "file mode " + std::to_string(v) + " is out of range");
      return fallback;
    }
    return static_cast<uint32_t>(v);
  }

  template <class Map>
  void StringMap(const Node* n, Map* out) {
    if (!n || !n->IsMap()) return;
    for (const auto& e : n->entries) {
      if (e.value->IsNull()) continue;
      (*out)[e.key] = e.value->ScalarText();
    }
  }

  template <class Rep>
  void StringList(const Node* n, Rep* out) {
    if (!n) return;
    if (n->IsSeq()) {
      for (const auto& i : n->items) *out->Add() = i->ScalarText();
    } else if (!n->IsNull()) {
      *out->Add() = n->ScalarText();
    }
  }

  // ---- names ----

  std::string Scoped(const std::string& name) { return opts_.stack_name + "_" + name; }

  // The full name of a top-level object: its `name:`, else "<stack>_<key>" (an
  // external object without a name keeps its key, as docker does).
  std::string ObjectName(const char* kind, const std::string& key) {
    const Node* top = root_.Get(kind);
    const Node* obj = top ? top->Get(key) : nullptr;
    if (obj) {
      if (const Node* name = obj->Get("name")) return name->ScalarText();
      const Node* ext = obj->Get("external");
      if (ext && ext->kind == Kind::kBool && ext->bool_value) return key;
    }
    return Scoped(key);
  }

  template <class Spec, class Fn>
  void TopLevel(const char* kind, Fn fn) {
    const Node* top = root_.Get(kind);
    if (!top || !top->IsMap()) return;
    for (const auto& e : top->entries) {
      Spec s;
      fn(e.key, *e.value, &s);
      Add(&s);
    }
  }

  void Add(NetworkSpec* s) { *out_->add_networks() = std::move(*s); }
  void Add(VolumeSpec* s) { *out_->add_volumes() = std::move(*s); }
  void Add(SecretSpec* s) { *out_->add_secrets() = std::move(*s); }
  void Add(ConfigSpec* s) { *out_->add_configs() = std::move(*s); }

  // ---- top-level objects ----

  void Network(const std::string& key, const Node& n, NetworkSpec* s) {
    std::string path = "networks." + key;
    s->set_name(ObjectName("networks", key));
    s->set_short_name(key);
    s->set_external(Bool(n.Get("external"), path + ".external"));
    s->set_driver(n.Get("driver") ? Text(n.Get("driver")) : (s->external() ? "" : "overlay"));
    StringMap(n.Get("driver_opts"), s->mutable_driver_opts());
    StringMap(n.Get("labels"), s->mutable_labels());
    if (!s->external()) (*s->mutable_labels())[kStackLabel] = opts_.stack_name;
    s->set_attachable(Bool(n.Get("attachable"), path + ".attachable"));
    s->set_internal(Bool(n.Get("internal"), path + ".internal"));
    s->set_enable_ipv6(Bool(n.Get("enable_ipv6"), path + ".enable_ipv6"));
    if (const Node* ipam = n.Get("ipam"); ipam && ipam->IsMap()) {
      Ipam* out = s->mutable_ipam();
      out->set_driver(Text(ipam->Get("driver")));
      StringMap(ipam->Get("options"), out->mutable_options());
      if (const Node* cfg = ipam->Get("config"); cfg && cfg->IsSeq()) {
        for (const auto& c : cfg->items) {
          IpamConfig* ic = out->add_config();
          ic->set_subnet(Text(c->Get("subnet")));
          ic->set_ip_range(Text(c->Get("ip_range")));
          ic->set_gateway(Text(c->Get("gateway")));
          StringMap(c->Get("aux_addresses"), ic->mutable_aux_addresses());
        }
      }
    }
  }

  void Volume(const std::string& key, const Node& n, VolumeSpec* s) {
    std::string path = "volumes." + key;
    s->set_name(ObjectName("volumes", key));
    s->set_short_name(key);
    s->set_external(Bool(n.Get("external"), path + ".external"));
    s->set_driver(n.Get("driver") ? Text(n.Get("driver")) : (s->external() ? "" : "local"));
    StringMap(n.Get("driver_opts"), s->mutable_driver_opts());
    StringMap(n.Get("labels"), s->mutable_labels());
    if (!s->external()) (*s->mutable_labels())[kStackLabel] = opts_.stack_name;
  }

  // Reads the value of a secret or config from its file, environment variable
  // or inline content. Returns false when there is none to read.
  bool Content(const Node& n, const std::string& path, std::string* file, std::string* env,
               std::string* data) {
    if (const Node* f = n.Get("file")) {
      *file = f->ScalarText();
      if (!opts_.read_file_contents) return false;
      std::ifstream in(*file, std::ios::binary);
      if (!in) {
        diags_.Error(f->mark, path + ".file", "cannot open " + *file + ": " + std::strerror(errno));
        return false;
      }
      std::string error;
      if (!ReadBounded(in, *file, data, &error)) {
        diags_.Error(f->mark, path + ".file", error);
        return false;
      }
      return true;
    }
    if (const Node* e = n.Get("environment")) {
      *env = e->ScalarText();
      auto v = opts_.lookup ? opts_.lookup(*env) : std::nullopt;
      if (!v) {
        diags_.Error(e->mark, path + ".environment", "variable " + *env + " is not set");
        return false;
      }
      *data = *v;
      return true;
    }
    if (const Node* c = n.Get("content")) {
      *data = c->ScalarText();
      return true;
    }
    return false;
  }

  // Fields that secrets and configs share; `what` lists the sources the
  // object kind accepts, for the message when it has none.
  template <class Spec>
  void FileObject(const char* kind, const std::string& key, const Node& n, Spec* s,
                  const char* what) {
    std::string path = std::string(kind) + "." + key;
    s->set_name(ObjectName(kind, key));
    s->set_short_name(key);
    s->set_external(Bool(n.Get("external"), path + ".external"));
    StringMap(n.Get("labels"), s->mutable_labels());
    if (!s->external()) (*s->mutable_labels())[kStackLabel] = opts_.stack_name;
    s->set_template_driver(Text(n.Get("template_driver")));
    std::string data;
    if (Content(n, path, s->mutable_file(), s->mutable_environment(), &data)) {
      s->set_data_hash(Sha256Hex(data));
      s->set_data(std::move(data));
    } else if (!s->external() && !n.Get("file") && !n.Get("environment") && !n.Get("content")) {
      diags_.Error(n.mark, path, std::string("needs ") + what + " or external: true");
    }
  }

  void Secret(const std::string& key, const Node& n, SecretSpec* s) {
    FileObject("secrets", key, n, s, "file, environment");
    s->set_driver(Text(n.Get("driver")));
  }

  void Config(const std::string& key, const Node& n, ConfigSpec* s) {
    FileObject("configs", key, n, s, "file, environment, content");
  }

  std::string DataHash(const char* kind, const std::string& source) {
    if (std::string(kind) == "secrets") {
      for (const auto& s : out_->secrets())
        if (s.short_name() == source) return s.data_hash().substr(0, 12);
    } else {
      for (const auto& c : out_->configs())
        if (c.short_name() == source) return c.data_hash().substr(0, 12);
    }
    return "";
  }

  // ---- services ----

  void Service(const std::string& key, const Node& n, ServiceSpec* s);
  void Container(const std::string& key, const Node& n, const std::string& path, ContainerSpec* c);
  void Deploy(const Node& n, const std::string& path, ServiceSpec* s);
  void Update(const Node* n, const std::string& path, UpdateConfig* u);
  void ResourceSetOf(const Node* n, const std::string& path, ResourceSet* r);
  void Mounts(const Node& n, const std::string& path, ContainerSpec* c);
  void Files(const char* kind, const Node* n, const std::string& path,
             google::protobuf::RepeatedPtrField<FileReference>* out);
  void SortAll();

  const Node& root_;
  const ConvertOptions& opts_;
  StackSpec* out_;
  Diagnostics& diags_;
  bool uses_default_network_ = false;
};

}  // namespace shoal::stack::detail
