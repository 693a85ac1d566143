#include "shoal/executor/signals.h"

#include <csignal>
#include <cstring>

namespace shoal::executor {
namespace {

struct NamedSignal {
  const char* name;  // without the SIG prefix
  int number;
};

// The signals Linux defines (signal(7)); SIGIOT, SIGPOLL and SIGPWR spellings
// are accepted because Docker accepts them.
constexpr NamedSignal kSignals[] = {
    {"HUP", SIGHUP},       {"INT", SIGINT},   {"QUIT", SIGQUIT},     {"ILL", SIGILL},
    {"TRAP", SIGTRAP},     {"ABRT", SIGABRT}, {"IOT", SIGIOT},       {"BUS", SIGBUS},
    {"FPE", SIGFPE},       {"KILL", SIGKILL}, {"USR1", SIGUSR1},     {"SEGV", SIGSEGV},
    {"USR2", SIGUSR2},     {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},     {"TERM", SIGTERM},
    {"STKFLT", SIGSTKFLT}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT},     {"STOP", SIGSTOP},
    {"TSTP", SIGTSTP},     {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
    {"XCPU", SIGXCPU},     {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
    {"WINCH", SIGWINCH},   {"IO", SIGIO},     {"POLL", SIGPOLL},     {"PWR", SIGPWR},
    {"SYS", SIGSYS},
};

constexpr int kMaxSignal = 64;  // SIGRTMAX on Linux

char Upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string ToUpper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Upper(c);
  return out;
}

// Parses a decimal number without sign or spaces; -1 when it is not one.
int ParseSmallNumber(std::string_view s) {
  if (s.empty() || s.size() > 3) return -1;
  int n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  return n;
}

}  // namespace

Result<int> ParseSignal(std::string_view text) {
  const auto invalid = [&] {
    return InvalidArgument("invalid signal \"" + std::string(text) +
                           "\": use a name such as SIGTERM or TERM, or a number from 1 to " +
                           std::to_string(kMaxSignal));
  };
  if (text.empty()) return invalid();
  if (text[0] >= '0' && text[0] <= '9') {
    int n = ParseSmallNumber(text);
    if (n < 1 || n > kMaxSignal) return invalid();
    return n;
  }
  std::string name = ToUpper(text);
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (const NamedSignal& s : kSignals) {
    if (name == s.name) return s.number;
  }
  // Real-time signals: RTMIN, RTMIN+n, RTMAX, RTMAX-n.
  const int rtmin = SIGRTMIN;
  const int rtmax = SIGRTMAX;
  if (name == "RTMIN") return rtmin;
  if (name == "RTMAX") return rtmax;
  if (name.rfind("RTMIN+", 0) == 0) {
    int n = ParseSmallNumber(std::string_view(name).substr(6));
    if (n >= 0 && rtmin + n <= rtmax) return rtmin + n;
  }
  if (name.rfind("RTMAX-", 0) == 0) {
    int n = ParseSmallNumber(std::string_view(name).substr(6));
    if (n >= 0 && rtmax - n >= rtmin) return rtmax - n;
  }
  return invalid();
}

std::string SignalName(int signal) {
  for (const NamedSignal& s : kSignals) {
    // SIGIOT and SIGPOLL are aliases; the first spelling in the table wins.
    if (s.number == signal) return std::string("SIG") + s.name;
  }
  const int rtmin = SIGRTMIN;
  const int rtmax = SIGRTMAX;
  if (signal == rtmin) return "SIGRTMIN";
  if (signal > rtmin && signal <= rtmax) return "SIGRTMIN+" + std::to_string(signal - rtmin);
  return "signal " + std::to_string(signal);
}

}  // namespace shoal::executor
