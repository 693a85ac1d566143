// shoal_docker_bench: the engine-side half of the head-to-head benchmark
// (head_to_head.sh). It watches the engine itself, so that shoal and Swarm
// are timed by the same clock and the same condition, and it measures the
// engine's own floor: containers created and started straight through the
// API, with no orchestrator.
//
//   shoal_docker_bench HOST floor N CONCURRENCY IMAGE
//   shoal_docker_bench HOST until "CMD" running|gone LABEL=VALUE [LABEL2=VALUE2] COUNT
//   shoal_docker_bench HOST kill-until LABEL=VALUE KILL COUNT
//
// `until` runs CMD (sh -c) and prints the seconds from its start until the
// engine shows COUNT running containers with all the labels (running), or
// none at all in any state (gone; COUNT ignored). `kill-until` SIGKILLs KILL
// running containers with the label and prints the seconds until COUNT run
// again. Polls the engine every 20 ms. Exits 1 after 300 s.

#include <rapidjson/document.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "engine.h"

using namespace shoal::executor::docker;
using Clock = std::chrono::steady_clock;

namespace {

double Since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Ids of containers with every label in `labels`; running only or all.
std::vector<std::string> List(const EngineClient& c, const std::vector<std::string>& labels,
                              bool running) {
  std::string f = R"({"label":[)";
  for (size_t i = 0; i < labels.size(); ++i) f += (i ? ",\"" : "\"") + labels[i] + "\"";
  f += "]";
  if (running) f += R"(,"status":["running"])";
  f += "}";
  std::vector<std::string> ids;
  auto r = c.Call("GET", std::string("/containers/json?all=") + (running ? "0" : "1") +
                             "&filters=" + UrlEncode(f));
  if (!r.ok() || r->status != 200) return {"?"};  // counts as not done
  rapidjson::Document d;
  d.Parse(r->body.c_str());
  if (d.HasParseError() || !d.IsArray()) return {"?"};
  for (const auto& v : d.GetArray()) ids.push_back(v["Id"].GetString());
  return ids;
}

int Floor(const EngineClient& c, int n, int conc, const std::string& image) {
  std::atomic<int> next{0}, failed{0};
  std::vector<std::string> ids(static_cast<size_t>(n));
  const std::string body = R"({"Image":")" + image +
                           R"(","Cmd":["sh","-c","trap 'exit 0' TERM; sleep 3600 & wait"],)"
                           R"("Labels":{"shoal.bench":"floor"}})";
  auto t0 = Clock::now();
  std::vector<std::thread> ts;
  for (int w = 0; w < conc; ++w) {
    ts.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        auto r = c.Call("POST", "/containers/create", body);
        rapidjson::Document d;
        if (!r.ok() || r->status != 201 || d.Parse(r->body.c_str()).HasParseError()) {
          ++failed;
          continue;
        }
        ids[static_cast<size_t>(i)] = d["Id"].GetString();
        auto s = c.Call("POST", "/containers/" + ids[static_cast<size_t>(i)] + "/start");
        if (!s.ok() || s->status != 204) ++failed;
      }
    });
  }
  for (auto& t : ts) t.join();
  double took = Since(t0);
  std::printf("%.3f\n", took);
  // Removed with the same concurrency, untimed.
  next = 0;
  ts.clear();
  for (int w = 0; w < conc; ++w) {
    ts.emplace_back([&] {
      for (int i = next++; i < n; i = next++) {
        if (!ids[static_cast<size_t>(i)].empty()) {
          (void)c.Call("DELETE", "/containers/" + ids[static_cast<size_t>(i)] + "?force=1");
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  if (failed) std::fprintf(stderr, "floor: %d creates or starts failed\n", failed.load());
  return failed ? 1 : 0;
}

bool Poll(const std::function<bool()>& done) {
  const auto deadline = Clock::now() + std::chrono::seconds(300);
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: see the comment at the top of docker_bench.cc\n");
    return 2;
  }
  auto client = EngineClient::Make(argv[1]);
  if (!client.ok()) {
    std::fprintf(stderr, "%s\n", client.error().message().c_str());
    return 2;
  }
  const EngineClient& c = *client;
  const std::string cmd = argv[2];
  if (cmd == "floor" && argc == 6) return Floor(c, std::stoi(argv[3]), std::stoi(argv[4]), argv[5]);
  if (cmd == "until" && argc >= 6) {
    const std::string shell = argv[3];
    const bool gone = std::string(argv[4]) == "gone";
    std::vector<std::string> labels;
    for (int i = 5; i < argc - 1; ++i) labels.push_back(argv[i]);
    const size_t count = static_cast<size_t>(std::stoi(argv[argc - 1]));
    auto t0 = Clock::now();
    std::thread runner([&] {
      int rc = std::system(shell.c_str());
      if (rc != 0) std::fprintf(stderr, "until: \"%s\" exited %d\n", shell.c_str(), rc);
    });
    bool ok = Poll([&] {
      if (gone) return List(c, labels, false).empty();
      auto ids = List(c, labels, true);
      return ids.size() == count && (ids.empty() || ids[0] != "?");
    });
    double took = Since(t0);
    runner.join();
    if (!ok) {
      std::fprintf(stderr, "until: timed out\n");
      return 1;
    }
    std::printf("%.3f\n", took);
    return 0;
  }
  if (cmd == "kill-until" && argc == 6) {
    std::vector<std::string> labels = {argv[3]};
    const int kill = std::stoi(argv[4]);
    const size_t count = static_cast<size_t>(std::stoi(argv[5]));
    auto ids = List(c, labels, true);
    if (ids.size() < static_cast<size_t>(kill)) {
      std::fprintf(stderr, "kill-until: only %zu running\n", ids.size());
      return 1;
    }
    auto t0 = Clock::now();
    for (int i = 0; i < kill; ++i) (void)c.Call("POST", "/containers/" + ids[i] + "/kill");
    // First every victim is seen dead, then the count is back.
    bool ok = Poll([&] {
      auto now = List(c, labels, true);
      if (now.size() != count || (!now.empty() && now[0] == "?")) return false;
      for (int i = 0; i < kill; ++i) {
        if (std::find(now.begin(), now.end(), ids[i]) != now.end()) return false;
      }
      return true;
    });
    if (!ok) {
      std::fprintf(stderr, "kill-until: timed out\n");
      return 1;
    }
    std::printf("%.3f\n", Since(t0));
    return 0;
  }
  std::fprintf(stderr, "unknown command or arguments\n");
  return 2;
}
