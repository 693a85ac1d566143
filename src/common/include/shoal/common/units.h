#pragma once

// Parsing and printing of the quantities a stack file spells as text: durations,
// byte sizes, CPU counts and file modes. The syntaxes are the ones compose users
// already know (Go's time.ParseDuration, docker's units.RAMInBytes, `--cpus`), so
// that a value copied from a docker-compose.yml means the same thing here.
//
// All functions are pure and thread-safe. Parsers never throw; they return
// InvalidArgument with a message that quotes the input and says what is allowed.
// Formatters are total and round-trip: Parse(Format(x)) == x for every x >= 0.

#include <cstdint>
#include <string>
#include <string_view>

#include "shoal/common/status.h"

namespace shoal {

// Parses a Go-style duration into nanoseconds: one or more decimal numbers, each
// with an optional fraction and a unit suffix (ns, us, µs, ms, s, m, h), e.g.
// "1m30s", "1.5h", "500ms". "0" is the only number accepted without a unit.
// A leading "+" is accepted; a negative duration is refused because no duration
// in a stack file may be negative. Fails with InvalidArgument on malformed
// input or when the result does not fit an int64.
Result<int64_t> ParseDuration(std::string_view text);

// Formats nanoseconds as Go's Duration.String() does ("1m30s", "500ms",
// "1h0m0s", "0s", "1.5s"), except that microseconds are spelled "us" so that
// output stays ASCII. Negative values get a leading "-".
std::string FormatDuration(int64_t ns);

// Parses a byte size with docker's units.RAMInBytes rules: a non-negative decimal
// number (a fraction is allowed), optional whitespace, then an optional
// case-insensitive suffix b, k, kb, kib, m, mb, mib, g, gb, gib, t, tb, tib, p, pb,
// pib. Multiples are binary (1k = 1024). A fractional result is truncated to
// whole bytes, as docker does. Fails with InvalidArgument on malformed input, a
// negative number, an unknown suffix, or overflow.
Result<int64_t> ParseBytes(std::string_view text);

// Formats bytes in the largest binary unit that divides the value exactly
// ("512MiB", "1GiB", "1536KiB"), else in bytes ("1000B", "0B").
std::string FormatBytes(int64_t bytes);

// Parses a decimal CPU count ("0.5", "2", ".25") into nano CPUs (1e-9 CPU).
// Fails with InvalidArgument if the text is not a non-negative decimal number,
// if it is more precise than a nano CPU (non-zero digits past the 9th decimal),
// or if the result overflows.
Result<int64_t> ParseNanoCpus(std::string_view text);

// Formats nano CPUs as the shortest exact decimal ("0.5", "2", "0.25").
std::string FormatNanoCpus(int64_t nano_cpus);

// Formats permission bits in octal with a leading zero and at least four digits
// ("0440", "0755", "01777").
std::string FormatFileMode(uint32_t mode);

}  // namespace shoal
