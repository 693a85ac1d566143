// Conversion of services; see converter.h for the helpers and top-level objects.

#include <algorithm>
#include <tuple>

#include "converter.h"
#include "shoal/common/units.h"
#include "validate.h"

namespace shoal::stack {
namespace detail {

void Converter::Service(const std::string& key, const Node& n, ServiceSpec* s) {
  std::string path = "services." + key;
  s->set_name(Scoped(key));
  s->set_stack(opts_.stack_name);
  s->set_short_name(key);
  Container(key, n, path, s->mutable_container());
  (*s->mutable_labels())[kStackLabel] = opts_.stack_name;
  (*s->mutable_labels())["com.docker.stack.image"] = s->container().image();

  // Defaults first, so that a deploy section that spells them changes nothing.
  s->set_mode(MODE_REPLICATED);
  s->set_replicas(1);
  RestartPolicy* rp = s->mutable_restart_policy();
  rp->set_condition(RestartPolicy::CONDITION_ANY);
  rp->set_delay_ns(5 * kSecond);
  Update(nullptr, "", s->mutable_update_config());
  Update(nullptr, "", s->mutable_rollback_config());
  if (const Node* scale = n.Get("scale")) s->set_replicas(Int(scale, path + ".scale", 1));
  // `restart:` applies when deploy.restart_policy does not say otherwise, as in docker.
  if (const Node* r = n.Get("restart")) {
    std::string t = r->ScalarText();
    if (t == "no") {
      rp->set_condition(RestartPolicy::CONDITION_NONE);
    } else if (t == "always" || t == "unless-stopped") {
      rp->set_condition(RestartPolicy::CONDITION_ANY);
    } else if (t.rfind("on-failure", 0) == 0) {
      rp->set_condition(RestartPolicy::CONDITION_ON_FAILURE);
      if (t.size() > 11 && t[10] == ':') {
        auto max = ResolvePlainScalar(t.substr(11), r->mark);
        if (max->kind == Kind::kInt && max->int_value >= 0)
          rp->set_max_attempts(max->int_value);
        else
          diags_.Error(r->mark, path + ".restart", "invalid restart policy \"" + t + "\"");
      }
    } else {
      diags_.Error(r->mark, path + ".restart",
                   "invalid restart policy \"" + t +
                       "\" (use no, always, on-failure[:N] or unless-stopped)");
    }
  }
  if (const Node* d = n.Get("deploy"); d && d->IsMap()) Deploy(*d, path + ".deploy", s);

  // Networks: those listed, or the stack's default network.
  const Node* nets = n.Get("networks");
  if ((!nets || !nets->IsMap() || nets->entries.empty()) && !n.Get("network_mode")) {
    uses_default_network_ = true;
    s->add_networks()->set_target(ObjectName("networks", "default"));
  } else if (nets && nets->IsMap()) {
    for (const auto& e : nets->entries) {
      NetworkAttachment* a = s->add_networks();
      a->set_target(ObjectName("networks", e.key));
      if (e.value->IsMap()) {
        StringList(e.value->Get("aliases"), a->mutable_aliases());
        a->set_ipv4_address(Text(e.value->Get("ipv4_address")));
        a->set_ipv6_address(Text(e.value->Get("ipv6_address")));
      }
      if (e.key == "default") uses_default_network_ = true;
    }
  }
  if (const Node* ports = n.Get("ports"); ports && ports->IsSeq()) {
    for (size_t i = 0; i < ports->items.size(); ++i) {
      const Node& p = *ports->items[i];
      std::string ppath = IndexPath(path + ".ports", i);
      PortConfig* pc = s->mutable_endpoint()->add_ports();
      pc->set_name(Text(p.Get("name")));
      pc->set_protocol(p.Get("protocol") ? Text(p.Get("protocol")) : "tcp");
      pc->set_target(static_cast<uint32_t>(Int(p.Get("target"), ppath + ".target", 0, 0)));
      pc->set_published(static_cast<uint32_t>(Int(p.Get("published"), ppath + ".published", 0, 0)));
      if (pc->target() > 65535 || pc->published() > 65535) {
        diags_.Error(p.mark, ppath, "port numbers are 1-65535");
      }
      std::string mode = p.Get("mode") ? Text(p.Get("mode")) : "ingress";
      pc->set_mode(mode == "host" ? PortConfig::PUBLISH_HOST : PortConfig::PUBLISH_INGRESS);
      pc->set_host_ip(Text(p.Get("host_ip")));
    }
  }
  if (const Node* deps = n.Get("depends_on"); deps && deps->IsMap()) {
    for (const auto& e : deps->entries) {
      Dependency* d = s->add_depends_on();
      d->set_service(e.key);
      std::string c = Text(e.value->Get("condition"));
      d->set_condition(c == "service_healthy" ? Dependency::SERVICE_HEALTHY
                       : c == "service_completed_successfully"
                           ? Dependency::SERVICE_COMPLETED_SUCCESSFULLY
                           : Dependency::SERVICE_STARTED);
      d->set_restart(Bool(e.value->Get("restart"), path + ".depends_on." + e.key + ".restart"));
      d->set_required(
          Bool(e.value->Get("required"), path + ".depends_on." + e.key + ".required", true));
    }
  }
}

void Converter::Container(const std::string& key, const Node& n, const std::string& path,
                          ContainerSpec* c) {
  if (!n.Get("image") && !n.Get("build")) {
    diags_.Error(n.mark, path,
                 "has no image (set `image`; is this an override file meant to be "
                 "merged with -c over its base?)");
  }
  // Compose names an image it builds "<project>-<service>"; a build-only
  // service runs that image (validate.cc warns that shoal does not build it).
  c->set_image(n.Get("image") ? Text(n.Get("image")) : opts_.stack_name + "-" + key);
  if (const Node* cmd = n.Get("command"); cmd && !cmd->IsNull()) {
    c->set_command_set(true);
    StringList(cmd, c->mutable_command());
  }
  if (const Node* ep = n.Get("entrypoint"); ep && !ep->IsNull()) {
    c->set_entrypoint_set(true);
    StringList(ep, c->mutable_entrypoint());
  }
  StringMap(n.Get("environment"), c->mutable_env());
  StringMap(n.Get("labels"), c->mutable_labels());
  (*c->mutable_labels())[kStackLabel] = opts_.stack_name;
  c->set_user(Text(n.Get("user")));
  c->set_working_dir(Text(n.Get("working_dir")));
  c->set_hostname(Text(n.Get("hostname")));
  StringList(n.Get("dns"), c->mutable_dns()->mutable_nameservers());
  StringList(n.Get("dns_search"), c->mutable_dns()->mutable_search());
  StringList(n.Get("dns_opt"), c->mutable_dns()->mutable_options());
  StringList(n.Get("extra_hosts"), c->mutable_extra_hosts());
  StringList(n.Get("cap_add"), c->mutable_cap_add());
  StringList(n.Get("cap_drop"), c->mutable_cap_drop());
  StringList(n.Get("group_add"), c->mutable_groups());
  StringMap(n.Get("sysctls"), c->mutable_sysctls());
  if (const Node* ul = n.Get("ulimits"); ul && ul->IsMap()) {
    for (const auto& e : ul->entries) {
      Ulimit* u = c->add_ulimits();
      u->set_name(e.key);
      u->set_soft(Int(e.value->Get("soft"), path + ".ulimits." + e.key + ".soft", 0, -1));
      u->set_hard(Int(e.value->Get("hard"), path + ".ulimits." + e.key + ".hard", 0, -1));
    }
  }
  if (const Node* init = n.Get("init"); init && !init->IsNull())
    c->set_init(Bool(init, path + ".init"));
  c->set_tty(Bool(n.Get("tty"), path + ".tty"));
  c->set_stdin_open(Bool(n.Get("stdin_open"), path + ".stdin_open"));
  c->set_read_only(Bool(n.Get("read_only"), path + ".read_only"));
  c->set_stop_signal(Text(n.Get("stop_signal")));
  c->set_stop_grace_period_ns(
      Duration(n.Get("stop_grace_period"), path + ".stop_grace_period", 10 * kSecond));
  if (const Node* hc = n.Get("healthcheck"); hc && hc->IsMap()) {
    std::string hp = path + ".healthcheck";
    HealthCheck* h = c->mutable_healthcheck();
    if (Bool(hc->Get("disable"), hp + ".disable")) {
      h->add_test("NONE");
    } else {
      StringList(hc->Get("test"), h->mutable_test());
      h->set_interval_ns(Duration(hc->Get("interval"), hp + ".interval", 30 * kSecond));
      h->set_timeout_ns(Duration(hc->Get("timeout"), hp + ".timeout", 30 * kSecond));
      h->set_start_period_ns(Duration(hc->Get("start_period"), hp + ".start_period", 0));
      h->set_start_interval_ns(
          Duration(hc->Get("start_interval"), hp + ".start_interval", 5 * kSecond));
      h->set_retries(Int(hc->Get("retries"), hp + ".retries", 3));
    }
  }
  Mounts(n, path, c);
  Files("secrets", n.Get("secrets"), path + ".secrets", c->mutable_secrets());
  Files("configs", n.Get("configs"), path + ".configs", c->mutable_configs());
  if (const Node* lg = n.Get("logging"); lg && lg->IsMap()) {
    c->mutable_logging()->set_driver(Text(lg->Get("driver")));
    StringMap(lg->Get("options"), c->mutable_logging()->mutable_options());
  }
}

void Converter::Mounts(const Node& n, const std::string& path, ContainerSpec* c) {
  if (const Node* vols = n.Get("volumes"); vols && vols->IsSeq()) {
    for (size_t i = 0; i < vols->items.size(); ++i) {
      const Node& v = *vols->items[i];
      std::string vp = IndexPath(path + ".volumes", i);
      Mount* m = c->add_mounts();
      std::string type = Text(v.Get("type"));
      std::string src = Text(v.Get("source"));
      m->set_target(Text(v.Get("target")));
      m->set_read_only(Bool(v.Get("read_only"), vp + ".read_only"));
      m->set_consistency(Text(v.Get("consistency")));
      if (type == "bind") {
        m->set_type(Mount::TYPE_BIND);
        m->set_source(src);
        if (const Node* b = v.Get("bind")) {
          m->set_bind_propagation(Text(b->Get("propagation")));
          m->set_bind_create_host_path(
              Bool(b->Get("create_host_path"), vp + ".bind.create_host_path", true));
        } else {
          m->set_bind_create_host_path(true);
        }
      } else if (type == "tmpfs") {
        m->set_type(Mount::TYPE_TMPFS);
        if (const Node* t = v.Get("tmpfs")) {
          m->set_tmpfs_size_bytes(Bytes(t->Get("size"), vp + ".tmpfs.size"));
          m->set_tmpfs_mode(Mode(t->Get("mode"), vp + ".tmpfs.mode", 0));
        }
      } else if (type == "npipe") {
        m->set_type(Mount::TYPE_NPIPE);
        m->set_source(src);
      } else if (type == "cluster") {
        m->set_type(Mount::TYPE_CLUSTER);
        m->set_source(src);
      } else {
        m->set_type(Mount::TYPE_VOLUME);
        m->set_source(src.empty() ? "" : ObjectName("volumes", src));
        if (const Node* vo = v.Get("volume")) {
          m->set_volume_nocopy(Bool(vo->Get("nocopy"), vp + ".volume.nocopy"));
          m->set_volume_subpath(Text(vo->Get("subpath")));
        }
      }
    }
  }
  // Service-level `tmpfs: [/run, "/tmp:size=64m"]`, which docker ignores silently.
  if (const Node* t = n.Get("tmpfs"); t && t->IsSeq()) {
    for (size_t i = 0; i < t->items.size(); ++i) {
      std::string spec = t->items[i]->ScalarText();
      Mount* m = c->add_mounts();
      m->set_type(Mount::TYPE_TMPFS);
      size_t colon = spec.find(':');
      m->set_target(spec.substr(0, colon));
      if (colon == std::string::npos) continue;
      std::string opts = spec.substr(colon + 1);
      size_t start = 0;
      while (start <= opts.size()) {
        size_t comma = opts.find(',', start);
        std::string opt =
            opts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (opt.rfind("size=", 0) == 0) {
          auto b = ParseBytes(opt.substr(5));
          if (b.ok())
            m->set_tmpfs_size_bytes(*b);
          else
            diags_.Error(t->items[i]->mark, IndexPath(path + ".tmpfs", i), b.error().message());
        } else if (opt.rfind("mode=", 0) == 0) {
          m->set_tmpfs_mode(static_cast<uint32_t>(std::strtoul(opt.c_str() + 5, nullptr, 8)));
        }
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    }
  }
}

void Converter::Files(const char* kind, const Node* n, const std::string& path,
                      google::protobuf::RepeatedPtrField<FileReference>* out) {
  if (!n || !n->IsSeq()) return;
  bool secret = std::string(kind) == "secrets";
  for (size_t i = 0; i < n->items.size(); ++i) {
    const Node& r = *n->items[i];
    std::string rp = IndexPath(path, i);
    FileReference* f = out->Add();
    f->set_source(Text(r.Get("source")));
    f->set_name(ObjectName(kind, f->source()));
    std::string target = r.Get("target") ? Text(r.Get("target")) : f->source();
    // Secrets live under /run/secrets unless the target is absolute; configs at the root.
    if (target.empty() || target[0] != '/') target = (secret ? "/run/secrets/" : "/") + target;
    f->set_target(target);
    f->set_uid(r.Get("uid") ? Text(r.Get("uid")) : "0");
    f->set_gid(r.Get("gid") ? Text(r.Get("gid")) : "0");
    f->set_mode(Mode(r.Get("mode"), rp + ".mode", 0444));
    f->set_version(DataHash(kind, f->source()));
  }
}

void Converter::Update(const Node* n, const std::string& path, UpdateConfig* u) {
  if (!n) {
    // Swarm's defaults.
    u->set_parallelism(1);
    u->set_delay_ns(0);
    u->set_failure_action(UpdateConfig::FAILURE_PAUSE);
    u->set_monitor_ns(5 * kSecond);
    u->set_max_failure_ratio(0);
    u->set_order(UpdateConfig::ORDER_STOP_FIRST);
    return;
  }
  if (!n->IsMap()) return;
  if (const Node* p = n->Get("parallelism")) u->set_parallelism(Int(p, path + ".parallelism", 1));
  if (const Node* d = n->Get("delay")) u->set_delay_ns(Duration(d, path + ".delay", 0));
  if (const Node* m = n->Get("monitor"))
    u->set_monitor_ns(Duration(m, path + ".monitor", 5 * kSecond));
  if (const Node* r = n->Get("max_failure_ratio"))
    u->set_max_failure_ratio(Float(r, path + ".max_failure_ratio"));
  if (const Node* a = n->Get("failure_action")) {
    std::string t = Text(a);
    if (t == "continue")
      u->set_failure_action(UpdateConfig::FAILURE_CONTINUE);
    else if (t == "rollback")
      u->set_failure_action(UpdateConfig::FAILURE_ROLLBACK);
    else if (t == "pause")
      u->set_failure_action(UpdateConfig::FAILURE_PAUSE);
    else
      diags_.Error(a->mark, path + ".failure_action",
                   "expected pause, continue or rollback, got \"" + t + "\"");
  }
  if (const Node* o = n->Get("order")) {
    std::string t = Text(o);
    if (t == "start-first")
      u->set_order(UpdateConfig::ORDER_START_FIRST);
    else if (t == "stop-first")
      u->set_order(UpdateConfig::ORDER_STOP_FIRST);
    else
      diags_.Error(o->mark, path + ".order",
                   "expected stop-first or start-first, got \"" + t + "\"");
  }
}

void Converter::ResourceSetOf(const Node* n, const std::string& path, ResourceSet* r) {
  if (!n || !n->IsMap()) return;
  r->set_nano_cpus(Cpus(n->Get("cpus"), path + ".cpus"));
  r->set_memory_bytes(Bytes(n->Get("memory"), path + ".memory"));
  r->set_pids(Int(n->Get("pids"), path + ".pids", 0));
  if (const Node* g = n->Get("generic_resources"); g && g->IsSeq()) {
    for (const auto& item : g->items) {
      const Node* d = item->Get("discrete_resource_spec");
      if (!d) continue;
      GenericResource* gr = r->add_generic();
      gr->set_kind(Text(d->Get("kind")));
      gr->set_value(Int(d->Get("value"), path + ".generic_resources", 0));
    }
  }
}

void Converter::Deploy(const Node& d, const std::string& path, ServiceSpec* s) {
  std::string mode = d.Get("mode") ? Text(d.Get("mode")) : "replicated";
  if (mode == "global")
    s->set_mode(MODE_GLOBAL);
  else if (mode == "replicated-job")
    s->set_mode(MODE_REPLICATED_JOB);
  else if (mode == "global-job")
    s->set_mode(MODE_GLOBAL_JOB);
  else if (mode != "replicated") {
    diags_.Error(d.Get("mode")->mark, path + ".mode",
                 "expected replicated, global, replicated-job or global-job, got \"" + mode + "\"");
  }
  bool job = s->mode() == MODE_REPLICATED_JOB || s->mode() == MODE_GLOBAL_JOB;
  if (s->mode() == MODE_GLOBAL || s->mode() == MODE_GLOBAL_JOB) {
    s->set_replicas(0);
    if (const Entry* r = d.GetEntry("replicas")) {
      diags_.Error(r->key_mark, path + ".replicas",
                   "replicas cannot be set for a " + mode + " service");
    }
  } else if (const Node* r = d.Get("replicas")) {
    s->set_replicas(Int(r, path + ".replicas", 1));
  }
  StringMap(d.Get("labels"), s->mutable_labels());
  std::string em = Text(d.Get("endpoint_mode"));
  s->mutable_endpoint()->set_mode(em == "dnsrr" ? EndpointSpec::MODE_DNSRR
                                                : EndpointSpec::MODE_VIP);
  if (!em.empty() && em != "vip" && em != "dnsrr") {
    diags_.Error(d.Get("endpoint_mode")->mark, path + ".endpoint_mode",
                 "expected vip or dnsrr, got \"" + em + "\"");
  }
  RestartPolicy* rp = s->mutable_restart_policy();
  // Jobs run to completion: by default a failed job task is retried, a finished one is not.
  if (job) rp->set_condition(RestartPolicy::CONDITION_ON_FAILURE);
  if (const Node* r = d.Get("restart_policy"); r && r->IsMap()) {
    std::string rpp = path + ".restart_policy";
    if (const Node* c = r->Get("condition")) {
      std::string t = Text(c);
      if (t == "none")
        rp->set_condition(RestartPolicy::CONDITION_NONE);
      else if (t == "on-failure")
        rp->set_condition(RestartPolicy::CONDITION_ON_FAILURE);
      else if (t == "any")
        rp->set_condition(RestartPolicy::CONDITION_ANY);
      else
        diags_.Error(c->mark, rpp + ".condition",
                     "expected none, on-failure or any, got \"" + t + "\"");
    }
    rp->set_delay_ns(Duration(r->Get("delay"), rpp + ".delay", rp->delay_ns()));
    rp->set_max_attempts(Int(r->Get("max_attempts"), rpp + ".max_attempts", rp->max_attempts()));
    rp->set_window_ns(Duration(r->Get("window"), rpp + ".window", 0));
  }
  Update(d.Get("update_config"), path + ".update_config", s->mutable_update_config());
  Update(d.Get("rollback_config"), path + ".rollback_config", s->mutable_rollback_config());
  if (const Node* res = d.Get("resources"); res && res->IsMap()) {
    ResourceSetOf(res->Get("limits"), path + ".resources.limits",
                  s->mutable_resources()->mutable_limits());
    ResourceSetOf(res->Get("reservations"), path + ".resources.reservations",
                  s->mutable_resources()->mutable_reservations());
  }
  if (const Node* pl = d.Get("placement"); pl && pl->IsMap()) {
    Placement* p = s->mutable_placement();
    if (const Node* cs = pl->Get("constraints"); cs && cs->IsSeq()) {
      for (const auto& item : cs->items) {
        Constraint c;
        std::string error;
        // Syntax errors were reported by ValidateStack; keep the text as written.
        if (ParseConstraint(item->ScalarText(), &c, &error)) {
          p->add_constraints(c.lhs + " " + c.op + " " + c.rhs);
        } else {
          p->add_constraints(item->ScalarText());
        }
      }
    }
    if (const Node* prefs = pl->Get("preferences"); prefs && prefs->IsSeq()) {
      for (const auto& item : prefs->items) p->add_spread(Text(item->Get("spread")));
    }
    p->set_max_replicas_per_node(
        Int(pl->Get("max_replicas_per_node"), path + ".placement.max_replicas_per_node", 0));
  }
}

template <class Rep, class Less>
void SortRep(Rep* r, Less less) {
  std::stable_sort(r->begin(), r->end(), less);
}

template <class Rep>
void SortStrings(Rep* r) {
  std::sort(r->begin(), r->end());
}

void Converter::SortAll() {
  if (uses_default_network_) {
    std::string name = ObjectName("networks", "default");
    bool declared = false;
    for (const auto& n : out_->networks()) declared = declared || n.name() == name;
    if (!declared) {
      NetworkSpec* n = out_->add_networks();
      n->set_name(name);
      n->set_short_name("default");
      n->set_driver("overlay");
      (*n->mutable_labels())[kStackLabel] = opts_.stack_name;
    }
  }
  auto by_name = [](const auto& a, const auto& b) { return a.name() < b.name(); };
  SortRep(out_->mutable_services(), by_name);
  SortRep(out_->mutable_networks(), by_name);
  SortRep(out_->mutable_volumes(), by_name);
  SortRep(out_->mutable_secrets(), by_name);
  SortRep(out_->mutable_configs(), by_name);
  for (auto& s : *out_->mutable_services()) {
    ContainerSpec* c = s.mutable_container();
    SortStrings(c->mutable_extra_hosts());
    SortStrings(c->mutable_cap_add());
    SortStrings(c->mutable_cap_drop());
    SortRep(c->mutable_ulimits(), by_name);
    auto by_target = [](const auto& a, const auto& b) { return a.target() < b.target(); };
    SortRep(c->mutable_mounts(), by_target);
    SortRep(c->mutable_secrets(), by_target);
    SortRep(c->mutable_configs(), by_target);
    SortStrings(s.mutable_placement()->mutable_constraints());
    SortRep(s.mutable_networks(), by_target);
    for (auto& n : *s.mutable_networks()) SortStrings(n.mutable_aliases());
    SortRep(s.mutable_depends_on(),
            [](const auto& a, const auto& b) { return a.service() < b.service(); });
    SortRep(s.mutable_endpoint()->mutable_ports(), [](const PortConfig& a, const PortConfig& b) {
      return std::make_tuple(a.published(), a.target(), a.protocol()) <
             std::make_tuple(b.published(), b.target(), b.protocol());
    });
  }
}

}  // namespace detail

void ConvertStack(const Node& root, const ConvertOptions& options, shoal::v1::StackSpec* out,
                  Diagnostics& diags) {
  detail::Converter(root, options, out, diags).Run();
}

}  // namespace shoal::stack
