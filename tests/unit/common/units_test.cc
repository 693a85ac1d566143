#include "shoal/common/units.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>

using shoal::Code;

namespace {

constexpr int64_t kSec = 1'000'000'000;

// The error message of a failed parse, or "" if it succeeded.
template <class R>
std::string ErrorOf(const R& r) {
  return r.ok() ? "" : r.error().message();
}

}  // namespace

TEST_CASE("ParseDuration accepts Go duration syntax") {
  struct Case {
    const char* in;
    int64_t ns;
  } cases[] = {
      {"0", 0},
      {"+0", 0},
      {"-0", 0},
      {"0s", 0},
      {"10s", 10 * kSec},
      {"1m30s", 90 * kSec},
      {"1.5h", 5400 * kSec},
      {"500ms", 500'000'000},
      {"1us", 1000},
      {"1\xC2\xB5s", 1000},
      {"7ns", 7},
      {"1h2m3s4ms5us6ns", 3723 * kSec + 4'005'006},
      {".5s", 500'000'000},
      {"1.s", kSec},
      {"+5s", 5 * kSec},
      {"0.000000001s", 1},
      {"1.0000000019s", kSec + 1},  // truncated, not rounded, as Go does
      {"2562047h47m16.854775807s", std::numeric_limits<int64_t>::max()},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    auto r = shoal::ParseDuration(c.in);
    REQUIRE(r.ok());
    CHECK(*r == c.ns);
  }
}

TEST_CASE("ParseDuration refuses malformed, negative and out-of-range input") {
  auto r = shoal::ParseDuration("1x");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Code::kInvalidArgument);
  CHECK(r.error().message() ==
        "invalid duration \"1x\": unknown unit \"x\" (use ns, us, ms, s, m, h)");

  CHECK_THAT(ErrorOf(shoal::ParseDuration("10")), Catch::Contains("missing unit"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("")), Catch::Contains("empty"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("s")), Catch::Contains("expected a number"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration(".s")), Catch::Contains("expected a number"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("-")), Catch::Contains("expected a number"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("-5s")), Catch::Contains("must not be negative"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("1m 30s")), Catch::Contains("unknown unit \"m \""));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("2562047h47m16.854775808s")),
             Catch::Contains("out of range"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("99999999999999999999h")),
             Catch::Contains("out of range"));
  CHECK_THAT(ErrorOf(shoal::ParseDuration("3000000h")), Catch::Contains("out of range"));
}

TEST_CASE("FormatDuration matches Go's Duration.String") {
  CHECK(shoal::FormatDuration(0) == "0s");
  CHECK(shoal::FormatDuration(1) == "1ns");
  CHECK(shoal::FormatDuration(1500) == "1.5us");
  CHECK(shoal::FormatDuration(2000) == "2us");
  CHECK(shoal::FormatDuration(500'000'000) == "500ms");
  CHECK(shoal::FormatDuration(1'500'000) == "1.5ms");
  CHECK(shoal::FormatDuration(kSec) == "1s");
  CHECK(shoal::FormatDuration(1'500'000'000) == "1.5s");
  CHECK(shoal::FormatDuration(90 * kSec) == "1m30s");
  CHECK(shoal::FormatDuration(3600 * kSec) == "1h0m0s");
  CHECK(shoal::FormatDuration(5400 * kSec) == "1h30m0s");
  CHECK(shoal::FormatDuration(-90 * kSec) == "-1m30s");
  CHECK(shoal::FormatDuration(std::numeric_limits<int64_t>::max()) == "2562047h47m16.854775807s");
  CHECK(shoal::FormatDuration(std::numeric_limits<int64_t>::min()) == "-2562047h47m16.854775808s");
}

TEST_CASE("durations round-trip through Format and Parse") {
  for (int64_t ns : {int64_t{0}, int64_t{1}, int64_t{999}, int64_t{1001}, int64_t{123456789}, kSec,
                     61 * kSec + 5, 3601 * kSec, std::numeric_limits<int64_t>::max()}) {
    INFO(ns);
    auto r = shoal::ParseDuration(shoal::FormatDuration(ns));
    REQUIRE(r.ok());
    CHECK(*r == ns);
  }
}

TEST_CASE("ParseBytes follows docker's RAMInBytes") {
  struct Case {
    const char* in;
    int64_t bytes;
  } cases[] = {
      {"0", 0},
      {"1000", 1000},
      {"32", 32},
      {"32b", 32},
      {"32B", 32},
      {"32k", 32 * 1024},
      {"32K", 32 * 1024},
      {"32kb", 32 * 1024},
      {"32Kb", 32 * 1024},
      {"32KiB", 32 * 1024},
      {"32Mb", 32 << 20},
      {"512m", 512 << 20},
      {"32Gb", int64_t{32} << 30},
      {"32Tb", int64_t{32} << 40},
      {"32Pb", int64_t{32} << 50},
      {"32PB", int64_t{32} << 50},
      {"32P", int64_t{32} << 50},
      {"1.5g", int64_t{3} << 29},
      {"0.5k", 512},
      {"32.3", 32},  // docker truncates a fraction of a byte
      {"32 mb", 32 << 20},
      {"  32\tmb ", 32 << 20},
      {"1.5", 1},
  };
  for (const auto& c : cases) {
    INFO(c.in);
    auto r = shoal::ParseBytes(c.in);
    REQUIRE(r.ok());
    CHECK(*r == c.bytes);
  }
}

TEST_CASE("ParseBytes names the value and the allowed suffixes on error") {
  auto r = shoal::ParseBytes("12QB");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Code::kInvalidArgument);
  CHECK(r.error().message() ==
        "invalid size \"12QB\": unknown suffix \"QB\" (use b, k, kb, m, mb, g, gb, t, tb, p, pb)");
  CHECK_THAT(ErrorOf(shoal::ParseBytes("-1m")), Catch::Contains("\"-1m\""));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("-1m")), Catch::Contains("negative"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("")), Catch::Contains("use b, k, kb"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("m")), Catch::Contains("expected a number"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("32bb")), Catch::Contains("unknown suffix \"bb\""));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("32kbb")), Catch::Contains("unknown suffix"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("32mx")), Catch::Contains("unknown suffix"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("1 2k")), Catch::Contains("unknown suffix"));
  CHECK_THAT(ErrorOf(shoal::ParseBytes("9000000pb")), Catch::Contains("out of range"));
}

TEST_CASE("FormatBytes uses exact binary units") {
  CHECK(shoal::FormatBytes(0) == "0B");
  CHECK(shoal::FormatBytes(1000) == "1000B");
  CHECK(shoal::FormatBytes(1024) == "1KiB");
  CHECK(shoal::FormatBytes(1536 * 1024) == "1536KiB");
  CHECK(shoal::FormatBytes(512 << 20) == "512MiB");
  CHECK(shoal::FormatBytes(int64_t{1} << 30) == "1GiB");
  CHECK(shoal::FormatBytes(int64_t{3} << 40) == "3TiB");
  CHECK(shoal::FormatBytes(int64_t{2048} << 50) == "2048PiB");
  CHECK(shoal::FormatBytes(-1024) == "-1KiB");
  for (int64_t b :
       {int64_t{0}, int64_t{1}, int64_t{1023}, int64_t{1} << 20, int64_t{12345} << 10}) {
    auto r = shoal::ParseBytes(shoal::FormatBytes(b));
    REQUIRE(r.ok());
    CHECK(*r == b);
  }
}

TEST_CASE("ParseNanoCpus reads decimal CPUs") {
  CHECK(*shoal::ParseNanoCpus("0.5") == 500'000'000);
  CHECK(*shoal::ParseNanoCpus("2") == 2'000'000'000);
  CHECK(*shoal::ParseNanoCpus(".25") == 250'000'000);
  CHECK(*shoal::ParseNanoCpus("0") == 0);
  CHECK(*shoal::ParseNanoCpus("1.") == 1'000'000'000);
  CHECK(*shoal::ParseNanoCpus("0.000000001") == 1);
  CHECK(*shoal::ParseNanoCpus("0.5000000000") == 500'000'000);  // trailing zeros lose nothing

  auto r = shoal::ParseNanoCpus("-1");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code() == Code::kInvalidArgument);
  CHECK(r.error().message() == "cpus must be a non-negative number, got \"-1\"");
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus("")), Catch::Contains("non-negative number"));
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus(".")), Catch::Contains("non-negative number"));
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus("1.5x")), Catch::Contains("non-negative number"));
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus("1e3")), Catch::Contains("non-negative number"));
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus("0.0000000001")), Catch::Contains("9 decimal places"));
  CHECK_THAT(ErrorOf(shoal::ParseNanoCpus("10000000000")), Catch::Contains("out of range"));
}

TEST_CASE("FormatNanoCpus prints the shortest exact decimal") {
  CHECK(shoal::FormatNanoCpus(500'000'000) == "0.5");
  CHECK(shoal::FormatNanoCpus(2'000'000'000) == "2");
  CHECK(shoal::FormatNanoCpus(250'000'000) == "0.25");
  CHECK(shoal::FormatNanoCpus(0) == "0");
  CHECK(shoal::FormatNanoCpus(1) == "0.000000001");
  CHECK(shoal::FormatNanoCpus(1'500'000'001) == "1.500000001");
}

TEST_CASE("FormatFileMode prints octal with a leading zero") {
  CHECK(shoal::FormatFileMode(0440) == "0440");
  CHECK(shoal::FormatFileMode(0755) == "0755");
  CHECK(shoal::FormatFileMode(0) == "0000");
  CHECK(shoal::FormatFileMode(01777) == "01777");
}
