// shoal_docker_bench: the engine-side half of the head-to-head benchmark
// (head_to_head.sh). It watches the engine itself, so that shoal and Swarm
// are timed by the same clock and the same condition, and it measures the
// engine's own floor: containers created and started straight through the
// API, with no orchestrator.
//
//   shoal_docker_bench HOST floor N CONCURRENCY IMAGE [pre=P] [net=1] [rm=1]
//   shoal_docker_bench HOST until "CMD" running|gone LABEL=VALUE [LABEL2=VALUE2] COUNT
//   shoal_docker_bench HOST kill-until LABEL=VALUE KILL COUNT
//
// `floor` prints the seconds the engine takes to create and start N
// containers from CONCURRENCY threads (POST /containers/create, then
// /start), with no orchestrator. pre=P: P containers are created and started
// first, untimed (the floor of a scale from P to P+N). net=1: on a bridge
// network of their own with a DNS alias, as shoal's stack networks are.
// rm=1: the N containers are created and started untimed, and what is timed
// is stopping (POST /stop, grace 10 s; the command exits on SIGTERM) and
// deleting them (the floor of a stack removal). Everything it made is
// removed before it exits.
//
// `until` runs CMD (sh -c) and prints the seconds from its start until the
// engine shows COUNT running containers with all the labels (running), or
// none at all in any state (gone; COUNT ignored). `kill-until` SIGKILLs KILL
// running containers with the label (all at once, one thread each) and
// prints the seconds until COUNT run again. Polls the engine every 20 ms.
// Exits 1 after 300 s.
//
// With SHOAL_BENCH_TRACE=FILE, `until` and `kill-until` also follow the
// engine's /events and write one line per container or network event to
// FILE: the milliseconds from the start (the engine's own nanosecond times),
// the action (network ones as net:ACTION) and the container's or network's
// name; and a summary per action to stderr
// (count, first, last). This is how the timelines in docs/performance.md
// were taken.

#include <rapidjson/document.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
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

// Runs fn(i) for i in [0, n) from `conc` threads.
void Parallel(int n, int conc, const std::function<void(int)>& fn) {
  std::atomic<int> next{0};
  std::vector<std::thread> ts;
  for (int w = 0; w < std::max(1, conc); ++w) {
    ts.emplace_back([&] {
      for (int i = next++; i < n; i = next++) fn(i);
    });
  }
  for (auto& t : ts) t.join();
}

struct FloorOptions {
  int pre = 0;       // started first, untimed
  bool net = false;  // on a bridge network of their own, with an alias
  bool rm = false;   // time the stop and delete instead of the create and start
};

constexpr char kFloorNet[] = "shoal-bench-floor";

// Creates and starts one container; its id, "" on failure.
std::string CreateStart(const EngineClient& c, const std::string& body) {
  auto r = c.Call("POST", "/containers/create", body);
  rapidjson::Document d;
  if (!r.ok() || r->status != 201 || d.Parse(r->body.c_str()).HasParseError() ||
      !d.HasMember("Id")) {
    return "";
  }
  std::string id = d["Id"].GetString();
  auto s = c.Call("POST", "/containers/" + id + "/start");
  if (!s.ok() || s->status != 204) return "";
  return id;
}

int Floor(const EngineClient& c, int n, int conc, const std::string& image, const FloorOptions& o) {
  std::string body = R"({"Image":")" + image +
                     R"(","Cmd":["sh","-c","trap 'exit 0' TERM; sleep 3600 & wait"],)"
                     R"("Labels":{"shoal.bench":"floor"})";
  // A name of its own for each run: Engine 20.10 sometimes keeps a network
  // after its containers were deleted ("has active endpoints"), and a fixed
  // name then refused every later floor-net of the run.
  const std::string net = std::string(kFloorNet) + "-" + std::to_string(getpid());
  if (o.net) {
    auto r = c.Call(
        "POST", "/networks/create",
        R"({"Name":")" + net +
            R"(","Driver":"bridge","CheckDuplicate":true,"Labels":{"shoal.bench":"floor"}})");
    if (!r.ok() || r->status != 201) {
      std::fprintf(stderr, "floor: cannot create network %s: %s\n", net.c_str(),
                   r.ok() ? EngineMessage(*r).c_str() : r.error().message().c_str());
      return 1;
    }
    body += R"(,"HostConfig":{"NetworkMode":")" + net +
            R"("},"NetworkingConfig":{"EndpointsConfig":{")" + net + R"(":{"Aliases":["floor"]}}})";
  }
  body += "}";
  std::atomic<int> failed{0};
  const int pre = o.rm ? n : o.pre;
  std::vector<std::string> ids(static_cast<size_t>(pre + (o.rm ? 0 : n)));
  auto make = [&](int i) {
    ids[static_cast<size_t>(i)] = CreateStart(c, body);
    if (ids[static_cast<size_t>(i)].empty()) ++failed;
  };
  Parallel(pre, conc, make);
  auto t0 = Clock::now();
  if (o.rm) {
    Parallel(n, conc, [&](int i) {
      const std::string& id = ids[static_cast<size_t>(i)];
      if (id.empty()) return;
      auto s = c.Call("POST", "/containers/" + id + "/stop?t=10");
      auto d = c.Call("DELETE", "/containers/" + id);
      if (!s.ok() || !d.ok() || d->status != 204) ++failed;
      ids[static_cast<size_t>(i)].clear();
    });
  } else {
    Parallel(n, conc, [&](int i) { make(pre + i); });
  }
  const double took = Since(t0);
  // What is left is removed with the same concurrency, untimed.
  Parallel(static_cast<int>(ids.size()), conc, [&](int i) {
    if (!ids[static_cast<size_t>(i)].empty()) {
      (void)c.Call("DELETE", "/containers/" + ids[static_cast<size_t>(i)] + "?force=1");
    }
  });
  if (o.net) (void)c.Call("DELETE", "/networks/" + net);
  if (failed) {
    // No figure: a floor with failed calls would be too low.
    std::fprintf(stderr, "floor: %d engine calls failed\n", failed.load());
    return 1;
  }
  std::printf("%.3f\n", took);
  return 0;
}

// Follows the engine's container events from construction until Finish(),
// writing them to SHOAL_BENCH_TRACE (nothing when it is unset).
class Trace {
 public:
  explicit Trace(const EngineClient& c) {
    const char* path = std::getenv("SHOAL_BENCH_TRACE");
    if (path == nullptr || *path == '\0') return;
    out_ = std::fopen(path, "w");
    if (out_ == nullptr) return;
    t0_ns_ = std::chrono::duration_cast<std::chrono::nanoseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    const std::string f = R"({"type":["container","network"]})";
    if (!stream_
             .Open(c, "/events?since=" + std::to_string(t0_ns_ / 1'000'000'000 - 1) +
                          "&filters=" + UrlEncode(f))
             .ok()) {
      std::fclose(out_);
      out_ = nullptr;
      return;
    }
    thread_ = std::thread([this] { Loop(); });
  }
  // Stops following (after a moment for the last events to arrive) and
  // prints the summary.
  void Finish() {
    if (out_ == nullptr) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stream_.Interrupt();
    thread_.join();
    std::fclose(out_);
    out_ = nullptr;
    for (const auto& [action, s] : summary_) {
      std::fprintf(stderr, "trace: %-14s n=%-3d first=%7.1f ms last=%7.1f ms\n", action.c_str(),
                   s.n, s.first, s.last);
    }
  }
  ~Trace() { Finish(); }

 private:
  struct Sum {
    int n = 0;
    double first = 0, last = 0;
  };
  void Loop() {
    while (true) {
      auto line = stream_.Next();
      if (!line.ok()) return;
      rapidjson::Document d;
      if (d.Parse(line->c_str()).HasParseError() || !d.IsObject() || !d.HasMember("timeNano") ||
          !d.HasMember("Action") || !d["Action"].IsString() || !d["timeNano"].IsInt64()) {
        continue;
      }
      const double ms = static_cast<double>(d["timeNano"].GetInt64() - t0_ns_) / 1e6;
      if (ms < 0) continue;
      std::string action = d["Action"].GetString();
      if (action.starts_with("exec_")) continue;  // probes
      if (d.HasMember("Type") && d["Type"].IsString() &&
          d["Type"].GetString() == std::string("network")) {
        action = "net:" + action;
      }
      std::string name;
      if (d.HasMember("Actor") && d["Actor"].HasMember("Attributes") &&
          d["Actor"]["Attributes"].HasMember("name")) {
        name = d["Actor"]["Attributes"]["name"].GetString();
      }
      std::fprintf(out_, "%.1f %s %s\n", ms, action.c_str(), name.c_str());
      Sum& s = summary_[action];
      if (s.n++ == 0) s.first = ms;
      s.last = ms;
    }
  }
  std::FILE* out_ = nullptr;
  int64_t t0_ns_ = 0;
  LineStream stream_;
  std::thread thread_;
  std::map<std::string, Sum> summary_;
};

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
  if (cmd == "floor" && argc >= 6) {
    FloorOptions o;
    for (int i = 6; i < argc; ++i) {
      const std::string a = argv[i];
      if (a.starts_with("pre=")) {
        o.pre = std::stoi(a.substr(4));
      } else if (a == "net=1") {
        o.net = true;
      } else if (a == "rm=1") {
        o.rm = true;
      } else {
        std::fprintf(stderr, "floor: unknown option %s\n", a.c_str());
        return 2;
      }
    }
    return Floor(c, std::stoi(argv[3]), std::stoi(argv[4]), argv[5], o);
  }
  if (cmd == "until" && argc >= 6) {
    const std::string shell = argv[3];
    const bool gone = std::string(argv[4]) == "gone";
    std::vector<std::string> labels;
    for (int i = 5; i < argc - 1; ++i) labels.push_back(argv[i]);
    const size_t count = static_cast<size_t>(std::stoi(argv[argc - 1]));
    Trace trace(c);
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
    trace.Finish();
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
    Trace trace(c);
    auto t0 = Clock::now();
    // All at once, from one thread each: killed one after the other, the
    // later kills queue behind the engine's work on the first replacements
    // (under load they took 2.5 s in all), which timed the kills, not the
    // replacement.
    Parallel(kill, kill, [&](int i) {
      (void)c.Call("POST", "/containers/" + ids[static_cast<size_t>(i)] + "/kill");
    });
    // First every victim is seen dead, then the count is back.
    bool ok = Poll([&] {
      auto now = List(c, labels, true);
      if (now.size() != count || (!now.empty() && now[0] == "?")) return false;
      for (int i = 0; i < kill; ++i) {
        if (std::find(now.begin(), now.end(), ids[i]) != now.end()) return false;
      }
      return true;
    });
    const double took = Since(t0);
    trace.Finish();
    if (!ok) {
      std::fprintf(stderr, "kill-until: timed out\n");
      return 1;
    }
    std::printf("%.3f\n", took);
    return 0;
  }
  std::fprintf(stderr, "unknown command or arguments\n");
  return 2;
}
