// Runs a command as a child process under a time and a resident-memory bound, for the hostile-input
// tests: a hang or an unbounded allocation is a failed test, never a stuck or swapping CI run.
// RSS (not address space) is what is bounded, so it works under AddressSanitizer too.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace swiglu::test {

struct BoundedResult {
  int exit_code = -1;      // the child's exit status; -1 when it was killed or died by a signal
  int signal = 0;          // the signal that ended it, if any
  bool timed_out = false;  // killed at the time bound
  bool over_memory = false;  // killed at the memory bound
  long max_rss_kib = 0;    // peak resident set
  double seconds = 0;
  std::string output;      // stdout and stderr together

  // No signal, no bound hit: the exit code is the program's own.
  bool ended_by_itself() const { return !timed_out && !over_memory && signal == 0; }

  std::string describe() const {
    std::ostringstream s;
    s << "exit " << exit_code << (signal ? " signal " + std::to_string(signal) : "")
      << (timed_out ? " TIMED OUT" : "") << (over_memory ? " OVER MEMORY" : "") << ", "
      << seconds << " s, peak RSS " << max_rss_kib / 1024 << " MiB; output:\n" << output;
    return s.str();
  }
};

inline long current_rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/statm");
  long size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Runs argv[0] with argv (no shell), with stdin from /dev/null, in `cwd` when not empty.
inline BoundedResult run_bounded(const std::vector<std::string>& argv, double max_seconds,
                                 long max_rss_mib, const std::string& cwd = {}) {
  BoundedResult r;
  char tmpl[] = "/tmp/swiglu-bounded-XXXXXX";
  const int out_fd = mkstemp(tmpl);
  if (out_fd < 0) {
    r.output = "mkstemp failed";
    return r;
  }
  unlink(tmpl);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    const int in_fd = open("/dev/null", O_RDONLY);
    dup2(in_fd, 0);
    dup2(out_fd, 1);
    dup2(out_fd, 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  rusage usage{};
  for (;;) {
    const pid_t w = wait4(pid, &status, WNOHANG, &usage);
    if (w == pid) break;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const long rss = current_rss_kib(pid);
    if (rss > r.max_rss_kib) r.max_rss_kib = rss;
    if (r.seconds > max_seconds || rss > max_rss_mib * 1024) {
      (r.seconds > max_seconds ? r.timed_out : r.over_memory) = true;
      kill(pid, SIGKILL);
      wait4(pid, &status, 0, &usage);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (usage.ru_maxrss > r.max_rss_kib) r.max_rss_kib = usage.ru_maxrss;
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
  lseek(out_fd, 0, SEEK_SET);
  char buf[4096];
  for (ssize_t n; (n = read(out_fd, buf, sizeof buf)) > 0 && r.output.size() < (1u << 20);)
    r.output.append(buf, static_cast<size_t>(n));
  close(out_fd);
  return r;
}

}  // namespace swiglu::test
