#pragma once

// Small builders of normalised specs for the plan tests.

#include <stdexcept>
#include <string>
#include <utility>

#include "shoal/plan/plan.h"
#include "shoal/v1/specs.pb.h"

namespace shoal::plan::testing {

constexpr int64_t kSecond = 1'000'000'000;

inline v1::ServiceSpec Service(const std::string& stack, const std::string& name,
                               const std::string& image, uint64_t replicas = 3) {
  v1::ServiceSpec s;
  s.set_name(stack + "_" + name);
  s.set_stack(stack);
  s.set_short_name(name);
  s.set_mode(v1::MODE_REPLICATED);
  s.set_replicas(replicas);
  s.mutable_container()->set_image(image);
  auto* env = s.mutable_container()->mutable_env();
  (*env)["LOG_LEVEL"] = "info";
  (*env)["PORT"] = "8080";
  auto* mount = s.mutable_container()->add_mounts();
  mount->set_type(v1::Mount::TYPE_VOLUME);
  mount->set_source(stack + "_data");
  mount->set_target("/data");
  auto* port = s.mutable_endpoint()->add_ports();
  port->set_protocol("tcp");
  port->set_target(80);
  port->set_published(8080);
  s.mutable_update_config()->set_parallelism(1);
  s.mutable_update_config()->set_delay_ns(10 * kSecond);
  s.mutable_placement()->add_constraints("node.role == worker");
  return s;
}

// A stack "demo" with two services, a network, a volume, a secret and a config.
inline v1::StackSpec DemoStack() {
  v1::StackSpec st;
  st.set_name("demo");
  *st.add_services() = Service("demo", "api", "example/api:1.0");
  *st.add_services() = Service("demo", "web", "nginx:1.25", 2);
  auto* net = st.add_networks();
  net->set_name("demo_default");
  net->set_short_name("default");
  net->set_driver("overlay");
  auto* vol = st.add_volumes();
  vol->set_name("demo_data");
  vol->set_short_name("data");
  vol->set_driver("local");
  auto* secret = st.add_secrets();
  secret->set_name("demo_db_password");
  secret->set_short_name("db_password");
  secret->set_file("./db_password.txt");
  secret->set_data("old-password-value");
  secret->set_data_hash("aaaa1111");
  auto* config = st.add_configs();
  config->set_name("demo_nginx_conf");
  config->set_short_name("nginx_conf");
  config->set_file("./nginx.conf");
  config->set_data("server { listen 80; }");
  config->set_data_hash("cccc3333");
  return st;
}

inline v1::ServiceSpec* FindService(v1::StackSpec& st, const std::string& name) {
  for (auto& s : *st.mutable_services()) {
    if (s.name() == name) return &s;
  }
  return nullptr;
}

inline const ObjectChange* FindChange(const Plan& plan, const std::string& name) {
  for (const auto& c : plan.changes) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

inline const FieldChange* FindField(const ObjectChange& c, const std::string& path) {
  for (const auto& f : c.fields) {
    if (f.path == path) return &f;
  }
  return nullptr;
}

// Diffs and requires success.
inline Plan MustDiff(const v1::StackSpec* current, const v1::StackSpec& desired) {
  auto r = Diff(current, desired);
  if (!r.ok()) throw std::runtime_error(r.error().ToString());
  return std::move(r).value();
}

}  // namespace shoal::plan::testing
