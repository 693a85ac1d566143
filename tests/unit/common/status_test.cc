#include "shoal/common/status.h"

#include <catch2/catch.hpp>

using shoal::Code;
using shoal::Result;
using shoal::Status;

TEST_CASE("Status carries a code and a message") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.ToString() == "ok");
  Status bad = shoal::InvalidArgument("replicas must be >= 0");
  CHECK_FALSE(bad.ok());
  CHECK(bad.code() == Code::kInvalidArgument);
  CHECK(bad.ToString() == "invalid argument: replicas must be >= 0");
}

TEST_CASE("Result holds a value or an error") {
  Result<int> v = 42;
  REQUIRE(v.ok());
  CHECK(*v == 42);
  Result<int> e = shoal::NotFound("no such stack");
  REQUIRE_FALSE(e.ok());
  CHECK(e.error().code() == Code::kNotFound);
}
