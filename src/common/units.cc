#include "shoal/common/units.h"

#include <cctype>
#include <cstdio>
#include <limits>

namespace shoal {
namespace {

constexpr int64_t kMaxInt64 = std::numeric_limits<int64_t>::max();

// Fraction digits past this many change a result by less than one unit (every
// multiplier here is below 1e16: a PiB in bytes, an hour in ns), so they are
// dropped, as Go's ParseDuration drops them.
constexpr int kMaxFractionDigits = 18;

// A decimal number as written: the integer part exactly (or an overflow mark)
// and the fraction digits as text, so that callers can scale without floating
// point error.
struct Decimal {
  uint64_t int_part = 0;
  bool int_overflow = false;
  std::string_view fraction;  // digits after the '.', possibly empty
  bool has_digits = false;    // at least one digit before or after the '.'
};

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Consumes [0-9]*(\.[0-9]*)? from the front of `s`.
Decimal ConsumeDecimal(std::string_view& s) {
  Decimal d;
  size_t i = 0;
  for (; i < s.size() && IsDigit(s[i]); ++i) {
    d.has_digits = true;
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (d.int_part > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      d.int_overflow = true;
    } else {
      d.int_part = d.int_part * 10 + digit;
    }
  }
  if (i < s.size() && s[i] == '.') {
    size_t start = ++i;
    for (; i < s.size() && IsDigit(s[i]); ++i) d.has_digits = true;
    d.fraction = s.substr(start, i - start);
  }
  s.remove_prefix(i);
  return d;
}

// d * multiplier, truncated toward zero; false if it exceeds int64.
bool Scale(const Decimal& d, uint64_t multiplier, int64_t* out) {
  if (d.int_overflow) return false;
  unsigned __int128 whole = static_cast<unsigned __int128>(d.int_part) * multiplier;
  unsigned __int128 frac = 0, scale = 1;
  for (size_t i = 0; i < d.fraction.size() && i < kMaxFractionDigits; ++i) {
    frac = frac * 10 + static_cast<unsigned>(d.fraction[i] - '0');
    scale *= 10;
  }
  unsigned __int128 total = whole + frac * multiplier / scale;
  if (total > static_cast<unsigned __int128>(kMaxInt64)) return false;
  *out = static_cast<int64_t>(total);
  return true;
}

std::string Quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view TrimSpace(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// ---- durations ----

constexpr int64_t kNanosecond = 1;
constexpr int64_t kMicrosecond = 1000 * kNanosecond;
constexpr int64_t kMillisecond = 1000 * kMicrosecond;
constexpr int64_t kSecond = 1000 * kMillisecond;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;

constexpr const char* kDurationUnits = "use ns, us, ms, s, m, h";

// 0 if `unit` is not a duration unit.
int64_t DurationUnit(std::string_view unit) {
  if (unit == "ns") return kNanosecond;
  // Go accepts the micro sign (U+00B5) and the Greek mu (U+03BC) as well as "us".
  if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") return kMicrosecond;
  if (unit == "ms") return kMillisecond;
  if (unit == "s") return kSecond;
  if (unit == "m") return kMinute;
  if (unit == "h") return kHour;
  return 0;
}

// Writes the last `prec` digits of v as ".ddd" without trailing zeros (nothing if
// they are all zero) and returns v with those digits removed.
uint64_t AppendFraction(std::string& out, uint64_t v, int prec) {
  char digits[20];
  bool print = false;
  int n = 0;
  for (int i = 0; i < prec; ++i) {
    char digit = static_cast<char>('0' + v % 10);
    print = print || digit != '0';
    if (print) digits[n++] = digit;
    v /= 10;
  }
  if (print) {
    out += '.';
    while (n > 0) out += digits[--n];
  }
  return v;
}

// ---- bytes ----

constexpr const char* kByteSuffixes = "use b, k, kb, m, mb, g, gb, t, tb, p, pb";

// 0 if `suffix` (lowercase) is not a size suffix.
uint64_t ByteMultiplier(std::string_view suffix) {
  if (suffix.empty() || suffix == "b") return 1;
  uint64_t mul = 0;
  switch (suffix[0]) {
    case 'k':
      mul = 1ULL << 10;
      break;
    case 'm':
      mul = 1ULL << 20;
      break;
    case 'g':
      mul = 1ULL << 30;
      break;
    case 't':
      mul = 1ULL << 40;
      break;
    case 'p':
      mul = 1ULL << 50;
      break;
    default:
      return 0;
  }
  std::string_view rest = suffix.substr(1);
  // Docker also accepts the IEC spelling ("KiB"), with the same binary meaning.
  if (rest.empty() || rest == "b" || rest == "ib") return mul;
  return 0;
}

}  // namespace

Result<int64_t> ParseDuration(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return InvalidArgument("invalid duration " + Quote(text) + ": " + std::string(why));
  };
  std::string_view s = text;
  if (s.empty()) return fail("empty (use a number with a unit, e.g. \"10s\" or \"1m30s\")");
  bool negative = false;
  if (s[0] == '+' || s[0] == '-') {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return int64_t{0};
  if (s.empty()) return fail("expected a number");

  int64_t total = 0;
  while (!s.empty()) {
    if (!IsDigit(s[0]) && s[0] != '.') return fail("expected a number at " + Quote(s));
    Decimal d = ConsumeDecimal(s);
    if (!d.has_digits) return fail("expected a number at " + Quote(s));
    size_t unit_len = 0;
    while (unit_len < s.size() && !IsDigit(s[unit_len]) && s[unit_len] != '.') ++unit_len;
    std::string_view unit = s.substr(0, unit_len);
    s.remove_prefix(unit_len);
    if (unit.empty()) return fail(std::string("missing unit (") + kDurationUnits + ")");
    int64_t mul = DurationUnit(unit);
    if (mul == 0) {
      return fail("unknown unit " + Quote(unit) + " (" + kDurationUnits + ")");
    }
    int64_t part = 0;
    if (!Scale(d, static_cast<uint64_t>(mul), &part) || part > kMaxInt64 - total) {
      return fail("out of range (the largest duration is " + FormatDuration(kMaxInt64) + ")");
    }
    total += part;
  }
  if (negative && total != 0) return fail("durations must not be negative");
  return total;
}

std::string FormatDuration(int64_t ns) {
  // Mirrors Go's time.Duration.String so that users see the form they wrote.
  bool negative = ns < 0;
  uint64_t u = negative ? 0 - static_cast<uint64_t>(ns) : static_cast<uint64_t>(ns);
  std::string out;
  if (u < static_cast<uint64_t>(kSecond)) {
    if (u == 0) return "0s";
    const char* unit;
    int prec;
    if (u < static_cast<uint64_t>(kMicrosecond)) {
      unit = "ns";
      prec = 0;
    } else if (u < static_cast<uint64_t>(kMillisecond)) {
      unit = "us";
      prec = 3;
    } else {
      unit = "ms";
      prec = 6;
    }
    std::string frac;
    u = AppendFraction(frac, u, prec);
    out = std::to_string(u) + frac + unit;
  } else {
    std::string frac;
    u = AppendFraction(frac, u, 9);
    out = std::to_string(u % 60) + frac + "s";
    u /= 60;
    if (u > 0) {
      out = std::to_string(u % 60) + "m" + out;
      u /= 60;
      if (u > 0) out = std::to_string(u) + "h" + out;
    }
  }
  return negative ? "-" + out : out;
}

Result<int64_t> ParseBytes(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return InvalidArgument("invalid size " + Quote(text) + ": " + std::string(why));
  };
  std::string_view s = TrimSpace(text);
  if (s.empty())
    return fail(std::string("empty (use a number with a suffix: ") + kByteSuffixes + ")");
  if (s[0] == '-') return fail("sizes must not be negative");
  Decimal d = ConsumeDecimal(s);
  if (!d.has_digits) {
    return fail(std::string("expected a number, optionally followed by a suffix (") +
                kByteSuffixes + ")");
  }
  std::string_view suffix = TrimSpace(s);
  uint64_t mul = ByteMultiplier(ToLower(suffix));
  if (mul == 0) return fail("unknown suffix " + Quote(suffix) + " (" + kByteSuffixes + ")");
  int64_t bytes = 0;
  if (!Scale(d, mul, &bytes)) return fail("out of range");
  return bytes;
}

std::string FormatBytes(int64_t bytes) {
  if (bytes == 0) return "0B";
  static constexpr struct {
    int shift;
    const char* name;
  } kUnits[] = {{50, "PiB"}, {40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}};
  for (const auto& unit : kUnits) {
    int64_t mul = int64_t{1} << unit.shift;
    if (bytes % mul == 0) return std::to_string(bytes / mul) + unit.name;
  }
  return std::to_string(bytes) + "B";
}

Result<int64_t> ParseNanoCpus(std::string_view text) {
  auto fail = [&](std::string_view why) {
    return InvalidArgument("cpus " + std::string(why) + ", got " + Quote(text));
  };
  std::string_view s = text;
  Decimal d = ConsumeDecimal(s);
  if (!d.has_digits || !s.empty()) return fail("must be a non-negative number");
  // A value finer than a nano CPU would be silently rounded; refuse it as docker does.
  for (size_t i = 9; i < d.fraction.size(); ++i) {
    if (d.fraction[i] != '0') return fail("must have at most 9 decimal places");
  }
  int64_t nano = 0;
  if (!Scale(d, 1'000'000'000, &nano)) return fail("is out of range");
  return nano;
}

std::string FormatNanoCpus(int64_t nano_cpus) {
  bool negative = nano_cpus < 0;
  uint64_t u = negative ? 0 - static_cast<uint64_t>(nano_cpus) : static_cast<uint64_t>(nano_cpus);
  std::string frac;
  u = AppendFraction(frac, u, 9);
  return (negative ? "-" : "") + std::to_string(u) + frac;
}

std::string FormatFileMode(uint32_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "0%03o", mode);
  return buf;
}

}  // namespace shoal
