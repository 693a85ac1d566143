#pragma once

// What the benchmarks read of processes from /proc: the load average, a
// process's CPU time, a pid by command line.

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

namespace shoal::bench {

// "0.42 1.10 2.05": the 1, 5 and 15 minute load averages.
inline std::string Load() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

// utime + stime of a process, in seconds; 0 when it is gone.
inline double CpuSeconds(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// Resident memory of a process, in MiB; 0 when it is gone.
inline double RssMiB(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/statm");
  long pages = 0, resident = 0;
  in >> pages >> resident;
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

// The first pid whose command line matches `pattern` (pgrep -f), or 0.
inline int PidOf(const std::string& pattern) {
  std::string cmd = "pgrep -f -- '" + pattern + "'";
  FILE* f = popen(cmd.c_str(), "r");
  int pid = 0;
  if (f) {
    if (fscanf(f, "%d", &pid) != 1) pid = 0;
    pclose(f);
  }
  return pid;
}

}  // namespace shoal::bench
