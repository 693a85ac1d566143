#pragma once

// Signal names as stack files and `docker` spell them (stop_signal: SIGTERM).

#include <string>
#include <string_view>

#include "shoal/common/status.h"

namespace shoal::executor {

// The signal number for "SIGTERM", "TERM", "sigterm" or "15" (names are
// case-insensitive; numbers must be a valid signal, 1..64). InvalidArgument
// naming the value otherwise, so that a bad stop_signal rejects the task
// instead of falling back to a signal the user did not ask for.
Result<int> ParseSignal(std::string_view text);

// "SIGTERM" for 15; "SIGRTMIN+3" for real-time signals; "signal 99" when the
// number has no name. For messages only.
std::string SignalName(int signal);

}  // namespace shoal::executor
