#include "shoal/executor/task_util.h"

#include <catch2/catch.hpp>
#include <csignal>

#include "shoal/executor/signals.h"

using namespace shoal::executor;
using shoal::Code;

TEST_CASE("ParseSignal accepts names with or without SIG, any case, and numbers", "[executor]") {
  CHECK(*ParseSignal("SIGTERM") == SIGTERM);
  CHECK(*ParseSignal("TERM") == SIGTERM);
  CHECK(*ParseSignal("sigterm") == SIGTERM);
  CHECK(*ParseSignal("Term") == SIGTERM);
  CHECK(*ParseSignal("15") == 15);
  CHECK(*ParseSignal("SIGINT") == SIGINT);
  CHECK(*ParseSignal("kill") == SIGKILL);
  CHECK(*ParseSignal("SIGUSR1") == SIGUSR1);
  CHECK(*ParseSignal("SIGRTMIN+2") == SIGRTMIN + 2);
  CHECK(*ParseSignal("64") == 64);
  for (const char* bad : {"", "SIG", "SIGFOO", "0", "65", "-1", "15x", "1000", " 15", "TERM "}) {
    auto r = ParseSignal(bad);
    INFO(bad);
    REQUIRE(!r.ok());
    CHECK(r.error().code() == Code::kInvalidArgument);
    CHECK(r.error().message().find(std::string("\"") + bad + "\"") != std::string::npos);
  }
}

TEST_CASE("SignalName names signals for messages", "[executor]") {
  CHECK(SignalName(SIGKILL) == "SIGKILL");
  CHECK(SignalName(SIGTERM) == "SIGTERM");
  CHECK(SignalName(SIGRTMIN + 1) == "SIGRTMIN+1");
  CHECK(SignalName(99) == "signal 99");
}

TEST_CASE("task helpers", "[executor]") {
  CHECK(ValidateTaskId("abc-123_x.y").ok());
  CHECK(!ValidateTaskId("").ok());
  CHECK(!ValidateTaskId(".hidden").ok());
  CHECK(!ValidateTaskId("a/b").ok());
  CHECK(!ValidateTaskId("..").ok());
  CHECK(!ValidateTaskId(std::string(129, 'a')).ok());

  shoal::v1::ContainerSpec spec;
  CHECK(TaskArgv(spec).empty());
  spec.add_entrypoint("/bin/sh");
  spec.add_command("-c");
  spec.add_command("true");
  CHECK(TaskArgv(spec) == std::vector<std::string>{"/bin/sh", "-c", "true"});

  CHECK(IsTerminal(shoal::v1::TASK_COMPLETE));
  CHECK(IsTerminal(shoal::v1::TASK_REJECTED));
  CHECK(!IsTerminal(shoal::v1::TASK_RUNNING));
  CHECK(ExitMessage(3) == "exit 3");
  CHECK(SignalMessage(9) == "killed by signal 9");

  CHECK(*FileTargetRelativePath("/run/secrets/db") == "run/secrets/db");
  CHECK(*FileTargetRelativePath("run//secrets/./db") == "run/secrets/db");
  CHECK(*FileTargetRelativePath("app.conf") == "app.conf");
  CHECK(!FileTargetRelativePath("").ok());
  CHECK(!FileTargetRelativePath("/").ok());
  CHECK(!FileTargetRelativePath("/run/").ok());
  CHECK(!FileTargetRelativePath("/run/../etc/passwd").ok());
  CHECK(!FileTargetRelativePath("..").ok());
}
