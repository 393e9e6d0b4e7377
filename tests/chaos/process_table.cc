#include "tests/chaos/process_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

namespace fleet_chaos {
namespace {

// The name fleet-worker gives the executors it starts (comm of fleet-executor).
constexpr const char* kExecutorComm = "fleet-executor";

// What can be read of `path`; "" when it cannot be opened. With read(2),
// not an ifstream: a /proc file of a process that exits while it is read
// fails with ESRCH, which libstdc++'s filebuf turns into an exception
// whatever the stream's exception mask (seen once in a chaos run).
std::string ReadWholeFile(const std::string& path) {
  std::string content;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return content;
  char buffer[4096];
  ssize_t n = 0;
  while ((n = read(fd, buffer, sizeof(buffer))) > 0) {
    content.append(buffer, static_cast<std::size_t>(n));
  }
  close(fd);
  return content;
}

}  // namespace

std::string ProcessInfo::Describe() const {
  std::ostringstream out;
  out << "pid " << pid << " (" << comm << ", state " << state << ", parent " << parent
      << "): " << cmdline;
  return out.str();
}

std::optional<ProcessInfo> ReadProcess(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so
  // it ends at the last ')'.
  const std::string stat = ReadWholeFile(dir + "/stat");
  const std::size_t open = stat.find('(');
  const std::size_t close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 4 >= stat.size()) {
    return std::nullopt;
  }
  ProcessInfo info;
  info.pid = pid;
  info.comm = stat.substr(open + 1, close - open - 1);
  std::istringstream rest(stat.substr(close + 2));
  if (!(rest >> info.state >> info.parent)) return std::nullopt;
  info.cmdline = ReadWholeFile(dir + "/cmdline");
  for (char& c : info.cmdline) {
    if (c == '\0') c = ' ';
  }
  return info;
}

std::vector<ProcessInfo> ListProcesses() {
  std::vector<ProcessInfo> processes;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::optional<ProcessInfo> info = ReadProcess(std::atoi(name.c_str()))) {
      processes.push_back(std::move(*info));
    }
  }
  return processes;
}

std::vector<ProcessInfo> ExecutorsOf(pid_t worker_pid) {
  std::vector<ProcessInfo> executors;
  for (ProcessInfo& p : ListProcesses()) {
    if (p.parent == worker_pid && p.comm == kExecutorComm) executors.push_back(std::move(p));
  }
  return executors;
}

bool IsRunning(pid_t pid) {
  std::optional<ProcessInfo> info = ReadProcess(pid);
  return info.has_value() && !info->zombie();
}

}  // namespace fleet_chaos
