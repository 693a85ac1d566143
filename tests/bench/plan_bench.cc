// Times plan::Diff on two stacks of 1000 realistic services that differ in 10% of
// them (an image or an env change). Not a test: it prints the best and median of
// 20 runs, and the size of the resulting plan, so that regressions show as numbers.
//
//   shoal_plan_bench [services] [runs]

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "shoal/plan/plan.h"
#include "shoal/plan/render.h"

namespace v1 = shoal::v1;

namespace {

// CPU time of this thread in ms: unlike wall time, it does not count the time
// other processes on a shared machine hold the core.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

v1::ServiceSpec MakeService(int i) {
  const std::string short_name = "svc" + std::to_string(i);
  v1::ServiceSpec s;
  s.set_name("bench_" + short_name);
  s.set_stack("bench");
  s.set_short_name(short_name);
  (*s.mutable_labels())["com.example.team"] = "team" + std::to_string(i % 7);
  (*s.mutable_labels())["com.example.tier"] = i % 2 ? "backend" : "frontend";
  s.set_mode(v1::MODE_REPLICATED);
  s.set_replicas(1 + i % 5);

  v1::ContainerSpec* c = s.mutable_container();
  c->set_image("registry.example.com/app/" + short_name + ":1." + std::to_string(i % 10));
  c->add_command("/usr/bin/app");
  c->add_command("--config=/etc/app/config.yml");
  c->set_command_set(true);
  for (int k = 0; k < 10; ++k) {
    (*c->mutable_env())["APP_VAR_" + std::to_string(k)] = "value-" + std::to_string(i * 10 + k);
  }
  (*c->mutable_labels())["com.example.service"] = short_name;
  c->set_stop_grace_period_ns(10'000'000'000);
  v1::HealthCheck* hc = c->mutable_healthcheck();
  hc->add_test("CMD-SHELL");
  hc->add_test("curl -fsS http://localhost:8080/health || exit 1");
  hc->set_interval_ns(30'000'000'000);
  hc->set_timeout_ns(5'000'000'000);
  hc->set_retries(3);
  for (const char* target : {"/data", "/var/log/app"}) {
    v1::Mount* m = c->add_mounts();
    m->set_type(v1::Mount::TYPE_VOLUME);
    m->set_source("bench_" + short_name + (target[1] == 'd' ? "_data" : "_logs"));
    m->set_target(target);
  }
  v1::Logging* log = c->mutable_logging();
  log->set_driver("json-file");
  (*log->mutable_options())["max-size"] = "10m";

  s.mutable_placement()->add_constraints("node.labels.zone == eu-" + std::to_string(i % 3));
  s.mutable_placement()->add_constraints("node.role == worker");
  v1::Resources* r = s.mutable_resources();
  r->mutable_limits()->set_nano_cpus(500'000'000);
  r->mutable_limits()->set_memory_bytes(int64_t{512} << 20);
  r->mutable_reservations()->set_nano_cpus(250'000'000);
  r->mutable_reservations()->set_memory_bytes(int64_t{256} << 20);
  s.mutable_restart_policy()->set_condition(v1::RestartPolicy::CONDITION_ON_FAILURE);
  s.mutable_restart_policy()->set_delay_ns(5'000'000'000);
  s.mutable_update_config()->set_parallelism(1);
  s.mutable_update_config()->set_delay_ns(10'000'000'000);
  s.mutable_update_config()->set_order(v1::UpdateConfig::ORDER_START_FIRST);
  for (int p = 0; p < 2; ++p) {
    v1::PortConfig* port = s.mutable_endpoint()->add_ports();
    port->set_protocol("tcp");
    port->set_target(8080 + p);
    port->set_published(static_cast<uint32_t>(20000 + i * 2 + p));
  }
  s.add_networks()->set_target("bench_default");
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  const int services = argc > 1 ? std::atoi(argv[1]) : 1000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 20;

  v1::StackSpec current, desired;
  current.set_name("bench");
  desired.set_name("bench");
  for (int i = 0; i < services; ++i) {
    *current.add_services() = MakeService(i);
    v1::ServiceSpec* s = desired.add_services();
    *s = MakeService(i);
    // 10% of the services change: half an image, half one env var.
    if (i % 20 == 0) s->mutable_container()->set_image(s->container().image() + "-patch1");
    if (i % 20 == 10) (*s->mutable_container()->mutable_env())["APP_VAR_3"] = "changed";
  }
  for (const char* n : {"bench_default", "bench_backend"}) current.add_networks()->set_name(n);
  *desired.mutable_networks() = current.networks();

  auto time_diff = [&](const char* label, const v1::StackSpec& want) {
    std::vector<double> ms, cpu;
    int changed = 0;
    for (int run = 0; run < runs; ++run) {
      // Fresh copies: reflection caches a list view of each map on first use, and a
      // real plan diffs specs that were just parsed, so no run may reuse that work.
      v1::StackSpec cur = current, des = want;
      double cpu_start = ThreadCpuMs();
      auto start = std::chrono::steady_clock::now();
      auto plan = shoal::plan::Diff(&cur, des);
      auto end = std::chrono::steady_clock::now();
      cpu.push_back(ThreadCpuMs() - cpu_start);
      if (!plan.ok()) {
        std::fprintf(stderr, "diff failed: %s\n", plan.error().ToString().c_str());
        std::exit(1);
      }
      changed = plan->Summarize().update;
      ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::sort(cpu.begin(), cpu.end());
    std::printf(
        "plan::Diff %s: %d services, %d changed: best %.2f ms, median %.2f ms wall; "
        "best %.2f ms, median %.2f ms CPU (%d runs)\n",
        label, services, changed, ms.front(), ms[ms.size() / 2], cpu.front(), cpu[cpu.size() / 2],
        runs);
  };
  time_diff("10% changed", desired);

  // The worst case for the reflection walk: every service differs.
  v1::StackSpec all_changed = current;
  for (auto& s : *all_changed.mutable_services()) {
    s.mutable_container()->set_image(s.container().image() + "-patch2");
  }
  time_diff("all changed", all_changed);

  auto plan = shoal::plan::Diff(&current, desired);
  auto start = std::chrono::steady_clock::now();
  std::string text = shoal::plan::RenderText(*plan, {});
  std::string json = shoal::plan::RenderJson(*plan);
  auto end = std::chrono::steady_clock::now();
  std::printf("RenderText + RenderJson: %.2f ms (%zu + %zu bytes)\n",
              std::chrono::duration<double, std::milli>(end - start).count(), text.size(),
              json.size());
  return 0;
}
