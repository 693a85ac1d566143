// Autolock on a real daemon (issue 8, points 4 and 7): a restarted locked
// manager refuses every control call with a clear "locked" error until it is
// given its unlock key; a wrong key is refused; with the right one it serves
// again and its sealed secrets open.

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "shoal_cluster.h"

namespace shoal::testing {
namespace {

using std::chrono::seconds;

// The SHOAL-KEY-1-... printed by `update --autolock=true` / `unlock-key`.
std::string UnlockKeyFrom(const std::string& out) {
  size_t pos = out.find("SHOAL-KEY-1-");
  if (pos == std::string::npos) return "";
  size_t end = out.find_first_of(" \n", pos);
  return out.substr(pos, end - pos);
}

// Files under /dev/shm (the process executor's tmpfs for secrets) that hold `value`.
int TmpfsFilesWith(const std::string& value) {
  int n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/dev/shm", ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (ss.str().find(value) != std::string::npos) ++n;
  }
  return n;
}

// Removes, at the end of a test, the /dev/shm dirs of tasks that held `value`
// (tasks killed with their daemon leave them behind).
struct TmpfsCleanup {
  std::string value;
  ~TmpfsCleanup() {
    std::error_code ec;
    for (auto it = fs::directory_iterator("/dev/shm", ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      if (it->path().filename().string().rfind("shoal-", 0) != 0) continue;
      bool holds = false;
      for (auto f = fs::recursive_directory_iterator(it->path(), ec);
           !ec && f != fs::recursive_directory_iterator(); f.increment(ec)) {
        std::ifstream in(f->path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        holds = holds || ss.str().find(value) != std::string::npos;
      }
      if (holds) fs::remove_all(it->path(), ec);
    }
  }
};

// A one-service stack whose task holds `value` as its secret `db`; the
// stack file's path.
std::string SecretStack(ShoalCluster& c, const std::string& value) {
  std::ofstream(c.dir() / "db.txt") << value;
  return c.WriteStack("stack.yml",
                      "services:\n  app:\n    image: busybox\n    command: [\"/bin/sh\", \"-c\", "
                      "\"sleep 3600; echo " +
                          c.marker() +
                          "\"]\n    secrets: [db]\nsecrets:\n  db:\n    file: ./db.txt\n");
}

}  // namespace

TEST_CASE("autolock: a restarted locked manager serves nothing until unlocked with its key") {
  ShoalCluster c;
  int port = c.Start("n1");
  REQUIRE(port != 0);
  REQUIRE(c.Cli("n1", {"cluster", "init", "--advertise-addr", c.addr("n1")}).code == 0);
  std::string value = "autolock-canary-" + std::to_string(std::random_device{}());
  TmpfsCleanup cleanup{value};
  std::string file = SecretStack(c, value);
  CliResult dep = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(dep.out);
  REQUIRE(dep.code == 0);
  CHECK(Eventually([&] { return TmpfsFilesWith(value) == 1; }, seconds(10)));

  // Off: no unlock key to show.
  CliResult none = c.Cli("n1", {"cluster", "unlock-key"});
  CHECK(none.code == 1);
  CHECK(none.out.find("autolock is off") != std::string::npos);

  CliResult on = c.Cli("n1", {"cluster", "update", "--autolock=true"});
  INFO(on.out);
  REQUIRE(on.code == 0);
  std::string key = UnlockKeyFrom(on.out);
  REQUIRE(key.size() == std::string("SHOAL-KEY-1-").size() + 64);
  CHECK(UnlockKeyFrom(c.Cli("n1", {"cluster", "unlock-key", "-q"}).out) == key);
  // Turning it on again keeps the key (and does not show it again).
  CliResult again = c.Cli("n1", {"cluster", "update", "--autolock=true"});
  CHECK(again.code == 0);
  CHECK(again.out.find("already on") != std::string::npos);
  CHECK(UnlockKeyFrom(again.out).empty());

  c.Kill("n1");
  REQUIRE(c.Start("n1", {}, port) == port);
  // Locked: every control call is refused with the same clear error.
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"service", "ls"}, std::vector<std::string>{"stack", "ls"},
        std::vector<std::string>{"node", "ls"},
        std::vector<std::string>{"deploy", "-c", file, "--timeout", "5", "demo"}}) {
    CliResult r = c.Cli("n1", args);
    INFO(args[0] << " " << args[1] << ": " << r.out);
    CHECK(r.code != 0);
    CHECK(r.out.find("locked") != std::string::npos);
    CHECK(r.out.find("shoal cluster unlock") != std::string::npos);
  }
  CliResult info = c.Cli("n1", {"cluster", "info"});
  INFO(info.out);
  CHECK(info.code == 0);
  CHECK(info.out.find("Locked:    yes") != std::string::npos);
  CliResult locked_key = c.Cli("n1", {"cluster", "unlock-key"});
  CHECK(locked_key.code == 1);
  CHECK(locked_key.out.find("locked") != std::string::npos);

  // A wrong key, and a malformed one, are refused without echoing them.
  std::string wrong = "SHOAL-KEY-1-" + std::string(64, '0');
  CliResult bad = c.Cli("n1", {"cluster", "unlock", "--key", wrong});
  INFO(bad.out);
  CHECK(bad.code == 1);
  CHECK(bad.out.find("wrong unlock key") != std::string::npos);
  CHECK(bad.out.find(wrong) == std::string::npos);
  CliResult malformed = c.Cli("n1", {"cluster", "unlock", "--key", "nonsense"});
  CHECK(malformed.code == 1);
  CHECK(malformed.out.find("malformed unlock key") != std::string::npos);
  CHECK(c.Cli("n1", {"service", "ls"}).out.find("locked") != std::string::npos);

  // The right key, from stdin.
  CliResult ok = c.Cli("n1", {"cluster", "unlock"}, "echo '" + key + "' |");
  INFO(ok.out);
  REQUIRE(ok.code == 0);
  CliResult ls;
  CHECK(Eventually(
      [&] {
        ls = c.Cli("n1", {"service", "ls"});
        return ls.code == 0 && ls.out.find("demo_app") != std::string::npos;
      },
      seconds(20)));
  INFO(ls.out);
  // The sealed secret opens: an unchanged deploy is a no-op, and a new task
  // gets the value from the dispatcher.
  CliResult same = c.Cli("n1", {"deploy", "-c", file, "--timeout", "60", "demo"});
  INFO(same.out);
  CHECK(same.code == 0);
  CHECK(same.out.find("up to date") != std::string::npos);
  REQUIRE(c.Cli("n1", {"service", "scale", "demo_app=2"}).code == 0);
  CHECK(Eventually([&] { return TmpfsFilesWith(value) == 2; }, seconds(20)));
  CHECK(c.Cli("n1", {"cluster", "unlock", "--key", key}).out.find("not locked") !=
        std::string::npos);

  // Rotation retires the old key; turning autolock off needs no key at restart.
  CliResult rotated = c.Cli("n1", {"cluster", "unlock-key", "--rotate"});
  REQUIRE(rotated.code == 0);
  std::string key2 = UnlockKeyFrom(rotated.out);
  CHECK(!key2.empty());
  CHECK(key2 != key);
  c.Kill("n1");
  REQUIRE(c.Start("n1", {}, port) == port);
  CHECK(c.Cli("n1", {"cluster", "unlock", "--key", key}).out.find("wrong unlock key") !=
        std::string::npos);
  REQUIRE(c.Cli("n1", {"cluster", "unlock", "--key", key2}).code == 0);
  CHECK(Eventually([&] { return c.Cli("n1", {"service", "ls"}).code == 0; }, seconds(20)));
  CliResult off = c.Cli("n1", {"cluster", "update", "--autolock=false"});
  INFO(off.out);
  CHECK(off.code == 0);
  c.Kill("n1");
  REQUIRE(c.Start("n1", {}, port) == port);
  CHECK(Eventually([&] { return c.Cli("n1", {"service", "ls"}).code == 0; }, seconds(20)));
}

TEST_CASE("autolock: the verbs are refused over TCP and on a node that is not a manager") {
  ShoalCluster c;
  REQUIRE(c.Start("n1") != 0);
  // Not in a cluster: no data key.
  CliResult r = c.Cli("n1", {"cluster", "update", "--autolock=true"});
  CHECK(r.code == 1);
  CHECK(r.out.find("not a manager") != std::string::npos);
  // The CLI refuses a TCP host before it sends the key anywhere.
  std::string cmd =
      std::string(SHOAL_BINARY) + " --host tcp://" + c.addr("n1") + " cluster unlock --key x 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  REQUIRE(f);
  std::string out;
  char buf[512];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  CHECK(pclose(f) != 0);
  CHECK(out.find("local socket only") != std::string::npos);
}

TEST_CASE("data key: a manager that joins gets the cluster's key and opens its secrets") {
  ShoalCluster c;
  REQUIRE(c.Start("m1") != 0);
  REQUIRE(c.Start("m2") != 0);
  CliResult init = c.Cli("m1", {"cluster", "init", "--advertise-addr", c.addr("m1")});
  INFO(init.out);
  REQUIRE(init.code == 0);
  std::string value = "join-canary-" + std::to_string(std::random_device{}());
  TmpfsCleanup cleanup{value};
  std::string file = SecretStack(c, value);
  REQUIRE(c.Cli("m1", {"deploy", "-c", file, "--timeout", "60", "demo"}).code == 0);
  CliResult join = c.Cli("m2", {"cluster", "join", "--token", TokenFrom(init.out, "manager"),
                                "--advertise-addr", c.addr("m2"), c.addr("m1")});
  INFO(join.out);
  REQUIRE(join.code == 0);
  // Both managers hold one data key.
  std::ifstream k1(c.Data("m1") + "/keys/datakey"), k2(c.Data("m2") + "/keys/datakey");
  std::stringstream s1, s2;
  s1 << k1.rdbuf();
  s2 << k2.rdbuf();
  CHECK(!s1.str().empty());
  CHECK(s1.str() == s2.str());
  // m2 plans against the state m1 sealed: it opens the value, so nothing changed.
  CliResult same;
  CHECK(Eventually(
      [&] {
        same = c.Cli("m2", {"deploy", "-c", file, "--timeout", "60", "demo"});
        return same.code == 0;
      },
      seconds(20)));
  INFO(same.out);
  CHECK(same.out.find("up to date") != std::string::npos);

  // Autolock is a cluster setting: turned on at m1, m2 seals its file under
  // the same key, so a restarted m2 waits for it.
  CliResult on = c.Cli("m1", {"cluster", "update", "--autolock=true"});
  INFO(on.out);
  REQUIRE(on.code == 0);
  std::string key = UnlockKeyFrom(on.out);
  REQUIRE(!key.empty());
  CHECK(Eventually(
      [&] {
        return UnlockKeyFrom(c.Cli("m2", {"cluster", "unlock-key", "-q"}).out) == key;
      },
      seconds(10)));
  CHECK(c.Cli("m2", {"cluster", "info"}).out.find("Autolock:  on") != std::string::npos);
  int port2 = c.port("m2");
  c.Kill("m2");
  REQUIRE(c.Start("m2", {}, port2) == port2);
  CHECK(c.Cli("m2", {"cluster", "info"}).out.find("Locked:    yes") != std::string::npos);
  REQUIRE(c.Cli("m2", {"cluster", "unlock", "--key", key}).code == 0);
  CHECK(Eventually([&] { return c.Cli("m2", {"node", "ls"}).code == 0; }, seconds(20)));
  // Rotated from m2, followed by m1; turned off from m1, followed by m2.
  CliResult rotated = c.Cli("m2", {"cluster", "unlock-key", "--rotate"});
  INFO(rotated.out);
  REQUIRE(rotated.code == 0);
  std::string key2 = UnlockKeyFrom(rotated.out);
  CHECK(key2 != key);
  CHECK(Eventually(
      [&] {
        return UnlockKeyFrom(c.Cli("m1", {"cluster", "unlock-key", "-q"}).out) == key2;
      },
      seconds(10)));
  REQUIRE(c.Cli("m1", {"cluster", "update", "--autolock=false"}).code == 0);
  CHECK(Eventually(
      [&] {
        return c.Cli("m2", {"cluster", "unlock-key"}).out.find("autolock is off") !=
               std::string::npos;
      },
      seconds(10)));
}

}  // namespace shoal::testing
