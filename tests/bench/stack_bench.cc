// Benchmark of the stack-file engine (not a test): generates a stack of N
// services, times load + validate + convert, and the plan diff of two such
// stacks that differ in 10% of their services. Prints what it measured.
//
//   shoal_stack_bench [--compact] [--services N] [--runs R] [--write DIR]
//
// --write DIR leaves the generated files in DIR (for timing `shoal config`
// against `docker stack config` on the same file).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "shoal/plan/plan.h"
#include "shoal/stack/loader.h"

namespace fs = std::filesystem;

namespace {

bool g_compact = false;

// A compact service, as most stack files write them: image, a few env vars,
// one port, replicas.
std::string CompactService(int i, bool changed) {
  std::string s;
  s += "  svc" + std::to_string(i) + ":\n";
  s += "    image: registry.local/app" + std::to_string(i % 50) + ":" + (changed ? "2.0" : "1.0") +
       "\n";
  s += "    environment:\n      MODE: production\n      PORT: \"8080\"\n      NAME: svc" +
       std::to_string(i) + "\n";
  s += "    ports: [\"" + std::to_string(10000 + i) + ":8080\"]\n";
  s += "    deploy: {replicas: " + std::to_string(1 + i % 5) + "}\n";
  return s;
}

// One realistic service: image, env, labels, ports, volumes, deploy section.
std::string Service(int i, bool changed) {
  if (g_compact) return CompactService(i, changed);
  std::string s;
  s += "  svc" + std::to_string(i) + ":\n";
  s += "    image: registry.local/app" + std::to_string(i % 50) + ":" + (changed ? "2.0" : "1.0") +
       "\n";
  s += "    command: [\"/bin/app\", \"--port\", \"8080\", \"--name\", \"svc" + std::to_string(i) +
       "\"]\n";
  s += "    environment:\n";
  for (int e = 0; e < 10; ++e) {
    s += "      VAR_" + std::to_string(e) + ": \"${VALUE_" + std::to_string(e % 3) + ":-v" +
         std::to_string(e) + "}\"\n";
  }
  s += "    labels:\n      team: core\n      tier: \"" + std::to_string(i % 3) + "\"\n";
  s += "    ports:\n      - \"" + std::to_string(10000 + i) + ":8080\"\n";
  s += "      - target: 9090\n        published: " + std::to_string(20000 + i) +
       "\n        mode: host\n";
  s += "    volumes:\n      - data" + std::to_string(i % 20) +
       ":/data\n      - type: tmpfs\n        target: /tmp\n";
  s += "    networks: [front, back]\n";
  s += "    healthcheck:\n      test: [\"CMD\", \"/bin/app\", \"health\"]\n      interval: 10s\n   "
       "   retries: 3\n";
  s += "    deploy:\n      replicas: " + std::to_string(1 + i % 5) + "\n";
  s += "      placement:\n        constraints: [\"node.labels.zone == z" + std::to_string(i % 4) +
       "\", \"node.role == worker\"]\n";
  s += "      resources:\n        limits: {cpus: \"0.5\", memory: 256M}\n";
  s += "      update_config: {parallelism: 2, delay: 10s, order: start-first}\n";
  return s;
}

std::string Stack(int n, int changed_every) {
  std::string s = "version: \"3.8\"\nservices:\n";
  for (int i = 0; i < n; ++i) s += Service(i, changed_every > 0 && i % changed_every == 0);
  s += "networks:\n  front: {}\n  back: {driver: overlay}\nvolumes:\n";
  for (int v = 0; v < 20; ++v) s += "  data" + std::to_string(v) + ": {}\n";
  return s;
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

struct Stats {
  double best, median;
};

Stats Summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

}  // namespace

int main(int argc, char** argv) {
  int n = 1000, runs = 20;
  std::string write_dir;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--compact") g_compact = true;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--compact") {
      --i;
      continue;
    }
    if (a == "--services") n = std::stoi(argv[i + 1]);
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--write") write_dir = argv[i + 1];
  }
  fs::path dir =
      write_dir.empty() ? fs::temp_directory_path() / "shoal-stack-bench" : fs::path(write_dir);
  fs::create_directories(dir);
  fs::path a = dir / "stack-a.yml", b = dir / "stack-b.yml";
  std::ofstream(a) << Stack(n, 0);
  std::ofstream(b) << Stack(n, 10);  // every 10th service changes image: 10%

  auto load = [&](const fs::path& p) {
    shoal::stack::LoadOptions o;
    o.files = {p.string()};
    o.environment = {{"HOME", "/root"}};
    o.stack_name = "bench";
    return shoal::stack::Load(o);
  };
  std::vector<double> load_ms, diff_ms;
  shoal::v1::StackSpec sa, sb;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto ra = load(a);
    auto t1 = std::chrono::steady_clock::now();
    if (!ra.ok()) {
      std::fprintf(stderr, "load failed:\n%s", ra.error().ToString().c_str());
      return 1;
    }
    load_ms.push_back(Ms(t1 - t0));
    sa = ra->spec;
  }
  auto rb = load(b);
  if (!rb.ok()) return 1;
  sb = rb->spec;
  size_t changed = 0;
  for (int r = 0; r < runs; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto p = shoal::plan::Diff(&sa, sb);
    auto t1 = std::chrono::steady_clock::now();
    if (!p.ok()) return 1;
    changed = p->Summarize().update;
    diff_ms.push_back(Ms(t1 - t0));
  }
  auto l = Summarize(load_ms), d = Summarize(diff_ms);
  std::printf("stack of %d %s services, %zu bytes, %d runs\n", n,
              g_compact ? "compact" : "realistic", static_cast<size_t>(fs::file_size(a)), runs);
  std::printf("load+validate+convert: best %.1f ms, median %.1f ms\n", l.best, l.median);
  std::printf("plan diff (%zu services changed): best %.2f ms, median %.2f ms\n", changed, d.best,
              d.median);
  if (write_dir.empty()) fs::remove_all(dir);
  return 0;
}
