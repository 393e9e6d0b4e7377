#include "tests/testing/local_process_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "httplib.h"
#include "tests/testing/subprocess.h"

extern char** environ;

namespace fleet::test {
namespace {

using Clock = std::chrono::steady_clock;

// Where util-linux keeps setpriv on Debian; used to give children a
// parent-death signal, which posix_spawn cannot set by itself.
constexpr const char* kSetpriv = "/usr/bin/setpriv";

constexpr std::chrono::milliseconds kPollInterval(20);
constexpr std::chrono::seconds kHttpConnectTimeout(2);
constexpr std::chrono::seconds kHttpReadTimeout(10);
// After SIGKILL a process exits at once; this only bounds a wedged kernel.
constexpr std::chrono::milliseconds kKillReapTimeout(10'000);

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "wait status " + std::to_string(status);
}

std::string DefaultBinDir() {
  if (const char* env = std::getenv("FLEET_BIN_DIR"); env != nullptr && *env != '\0') return env;
#ifdef FLEET_BIN_DIR
  return FLEET_BIN_DIR;
#else
  return "";
#endif
}

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/fleet-it-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) return "";
  return pattern;
}

}  // namespace

bool PollUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
               std::chrono::milliseconds interval) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    const auto now = Clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(std::min<Clock::duration>(interval, deadline - now));
  }
}

LocalProcessCluster::LocalProcessCluster(ClusterOptions options) : options_(std::move(options)) {}

LocalProcessCluster::~LocalProcessCluster() {
  Stop();
  if (temp_dir_.empty()) return;
  if (::testing::Test::HasFailure()) {
    if (logs_reported_) {
      std::fprintf(stderr, "fleet daemons' logs kept in %s\n", temp_dir_.c_str());
      return;
    }
    std::fprintf(stderr, "\n==== fleet daemons' logs (kept in %s) ====\n%s\n", temp_dir_.c_str(),
                 Logs().c_str());
    std::fflush(stderr);
  } else if (const char* keep = std::getenv("FLEET_TEST_KEEP_LOGS");
             keep != nullptr && *keep != '\0') {
    std::fprintf(stderr, "fleet daemons' logs kept in %s\n", temp_dir_.c_str());
  } else {
    std::error_code ignored;
    std::filesystem::remove_all(temp_dir_, ignored);
  }
}

::testing::AssertionResult LocalProcessCluster::Fail(const std::string& what) const {
  logs_reported_ = true;
  return ::testing::AssertionFailure()
         << what << "\n==== fleet daemons' logs (" << temp_dir_ << ") ====\n"
         << Logs();
}

::testing::AssertionResult LocalProcessCluster::Start() {
  if (started_ || scheduler_.pid > 0) return ::testing::AssertionFailure() << "Start called twice";
  bin_dir_ = options_.bin_dir.empty() ? DefaultBinDir() : options_.bin_dir;
  if (bin_dir_.empty()) {
    return ::testing::AssertionFailure()
           << "no directory for fleet-scheduler and fleet-worker: set ClusterOptions::bin_dir "
              "or $FLEET_BIN_DIR";
  }
  temp_dir_ = MakeTempDir();
  if (temp_dir_.empty()) {
    return ::testing::AssertionFailure() << "mkdtemp failed: " << std::strerror(errno);
  }
  const auto deadline = Clock::now() + options_.start_timeout;
  auto left = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
        std::max(Clock::duration::zero(), deadline - Clock::now()));
  };

  // The scheduler, then its port files.
  const std::string port_file = temp_dir_ + "/scheduler.port";
  const std::string http_port_file = temp_dir_ + "/scheduler.http_port";
  scheduler_.name = "scheduler";
  scheduler_.log_path = temp_dir_ + "/scheduler.log";
  std::string error;
  std::vector<std::string> scheduler_args = {
      "--host=127.0.0.1", "--port=0", "--http_port=0", "--port_file=" + port_file,
      "--http_port_file=" + http_port_file, "--log_level=" + options_.log_level};
  scheduler_args.insert(scheduler_args.end(), options_.scheduler_flags.begin(),
                        options_.scheduler_flags.end());
  scheduler_flags_ = {"--host=127.0.0.1", "--log_level=" + options_.log_level};
  scheduler_flags_.insert(scheduler_flags_.end(), options_.scheduler_flags.begin(),
                          options_.scheduler_flags.end());
  if (!Spawn(scheduler_, bin_dir_ + "/fleet-scheduler", scheduler_args,
             &error)) {
    return Fail(error);
  }
  bool scheduler_died = false;
  PollUntil(
      [&] {
        if (!CheckAlive(scheduler_)) return scheduler_died = true;
        port_ = std::atoi(ReadPortFile(port_file).c_str());
        http_port_ = std::atoi(ReadPortFile(http_port_file).c_str());
        return port_ > 0 && http_port_ > 0;
      },
      left(), kPollInterval);
  if (scheduler_died) {
    return Fail("fleet-scheduler " + DescribeWaitStatus(*scheduler_.exit_status) +
                " before writing its port files");
  }
  if (port_ <= 0 || http_port_ <= 0) {
    return Fail("fleet-scheduler did not write " + port_file + " and " + http_port_file +
                " within " + std::to_string(options_.start_timeout.count()) + " ms");
  }

  // The workers, then /status listing all of them.
  for (int i = 0; i < options_.workers; ++i) {
    if (!SpawnWorker(&error)) return Fail(error);
  }
  std::string died;
  nlohmann::json last;
  const bool all_joined = PollUntil(
      [&] {
        for (Process& p : workers_) {
          if (!CheckAlive(p)) died = p.name + " " + DescribeWaitStatus(*p.exit_status);
        }
        if (!CheckAlive(scheduler_)) {
          died = "scheduler " + DescribeWaitStatus(*scheduler_.exit_status);
        }
        if (!died.empty()) return true;
        std::optional<nlohmann::json> status = TryStatus();
        if (!status) return false;
        last = std::move(*status);
        if (!last.contains("workers") || last["workers"].size() != workers_.size()) return false;
        // Every worker in /status must be one of ours.
        for (const nlohmann::json& w : last["workers"]) {
          const pid_t pid = w.value("pid", 0);
          bool ours = false;
          for (const Process& p : workers_) ours = ours || p.pid == pid;
          if (!ours) return false;
        }
        return true;
      },
      left(), kPollInterval);
  if (!died.empty()) return Fail("fleet daemon ended during start: " + died);
  if (!all_joined) {
    return Fail("/status did not list " + std::to_string(workers_.size()) + " workers within " +
                std::to_string(options_.start_timeout.count()) +
                " ms; last /status: " + last.dump());
  }
  started_ = true;
  return ::testing::AssertionSuccess();
}

bool LocalProcessCluster::SpawnWorker(std::string* error) {
  Process& worker = workers_.emplace_back();
  worker.name = "worker-" + std::to_string(workers_.size() - 1);
  worker.log_path = temp_dir_ + "/" + worker.name + ".log";
  std::vector<std::string> args = {"--scheduler=" + scheduler_address(),
                                   "--slots=" + std::to_string(options_.slots_per_worker),
                                   "--host=127.0.0.1", "--port=0",
                                   "--log_level=" + options_.log_level};
  for (const std::string& lib : options_.task_libraries) args.push_back("--task_lib=" + lib);
  args.insert(args.end(), options_.worker_flags.begin(), options_.worker_flags.end());
  return Spawn(worker, bin_dir_ + "/fleet-worker", args, error);
}

::testing::AssertionResult LocalProcessCluster::AddWorker() {
  if (!started_) return ::testing::AssertionFailure() << "AddWorker before a successful Start";
  std::string error;
  if (!SpawnWorker(&error)) return Fail(error);
  Process& worker = workers_.back();
  bool died = false;
  nlohmann::json last;
  const bool joined = PollUntil(
      [&] {
        if (!CheckAlive(worker)) return died = true;
        std::optional<nlohmann::json> status = TryStatus();
        if (!status) return false;
        last = std::move(*status);
        for (const nlohmann::json& w : last["workers"]) {
          if (w.value("pid", 0) == worker.pid) return true;
        }
        return false;
      },
      options_.start_timeout, kPollInterval);
  if (died) {
    return Fail(worker.name + " " + DescribeWaitStatus(*worker.exit_status) + " during start");
  }
  if (!joined) {
    return Fail("/status did not list " + worker.name + " (pid " + std::to_string(worker.pid) +
                ") within " + std::to_string(options_.start_timeout.count()) +
                " ms; last /status: " + last.dump());
  }
  return ::testing::AssertionSuccess();
}

std::string LocalProcessCluster::scheduler_address() const {
  return "127.0.0.1:" + std::to_string(port_);
}

pid_t LocalProcessCluster::worker_pid(int i) const {
  return i >= 0 && i < num_workers() ? workers_[i].pid : -1;
}

int LocalProcessCluster::HttpGet(const std::string& path, std::string* body) const {
  if (http_port_ <= 0) return -1;
  httplib::Client client("127.0.0.1", http_port_);
  client.set_connection_timeout(kHttpConnectTimeout);
  client.set_read_timeout(kHttpReadTimeout);
  auto result = client.Get(path);
  if (!result) {
    if (body != nullptr) *body = httplib::to_string(result.error());
    return -1;
  }
  if (body != nullptr) *body = result->body;
  return result->status;
}

std::optional<nlohmann::json> LocalProcessCluster::TryStatus() const {
  std::string body;
  if (HttpGet("/status", &body) != 200) return std::nullopt;
  nlohmann::json status = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded()) return std::nullopt;
  return status;
}

nlohmann::json LocalProcessCluster::Status() const {
  std::string body;
  const int code = HttpGet("/status", &body);
  if (code != 200) {
    throw std::runtime_error("GET /status on 127.0.0.1:" + std::to_string(http_port_) +
                             " answered " + std::to_string(code) + ": " + body);
  }
  nlohmann::json status = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (status.is_discarded()) throw std::runtime_error("GET /status returned no JSON: " + body);
  return status;
}

bool LocalProcessCluster::WaitForStatus(const std::function<bool(const nlohmann::json&)>& condition,
                                        std::chrono::milliseconds timeout,
                                        nlohmann::json* last) const {
  nlohmann::json seen;
  const bool held = PollUntil(
      [&] {
        std::optional<nlohmann::json> status = TryStatus();
        if (!status) return false;
        seen = std::move(*status);
        return condition(seen);
      },
      timeout, kPollInterval);
  if (last != nullptr) *last = std::move(seen);
  return held;
}

void LocalProcessCluster::KillWorker(int i) {
  if (i < 0 || i >= num_workers()) return;
  Process& worker = workers_[i];
  if (worker.pid <= 0) return;
  kill(worker.pid, SIGKILL);
  int status = 0;
  if (waitpid(worker.pid, &status, 0) == worker.pid) worker.exit_status = status;
  worker.pid = -1;
}

std::optional<int> LocalProcessCluster::TerminateWorker(int i, std::chrono::milliseconds timeout) {
  if (i < 0 || i >= num_workers()) return std::nullopt;
  return Terminate(workers_[i], timeout);
}

std::optional<int> LocalProcessCluster::TerminateScheduler(std::chrono::milliseconds timeout) {
  return Terminate(scheduler_, timeout);
}

::testing::AssertionResult LocalProcessCluster::KillAndRestartScheduler() {
  if (!started_) return ::testing::AssertionFailure() << "the cluster was not started";
  if (scheduler_.pid > 0) {
    kill(scheduler_.pid, SIGKILL);
    int status = 0;
    if (waitpid(scheduler_.pid, &status, 0) == scheduler_.pid) scheduler_.exit_status = status;
    scheduler_.pid = -1;
  }
  std::vector<std::string> args = scheduler_flags_;
  args.push_back("--port=" + std::to_string(port_));
  args.push_back("--http_port=" + std::to_string(http_port_));
  // The new process appends to the same log, after a marker.
  std::string error;
  if (!Spawn(scheduler_, bin_dir_ + "/fleet-scheduler", args, &error)) return Fail(error);
  bool died = false;
  const bool answering = PollUntil(
      [&] {
        if (!CheckAlive(scheduler_)) return died = true;
        return TryStatus().has_value();
      },
      options_.start_timeout, kPollInterval);
  if (died) return Fail("the restarted fleet-scheduler " + DescribeWaitStatus(*scheduler_.exit_status));
  if (!answering) return Fail("the restarted fleet-scheduler did not answer /status in time");
  return ::testing::AssertionSuccess();
}

std::optional<int> LocalProcessCluster::WaitForWorkerExit(int i,
                                                          std::chrono::milliseconds timeout) {
  if (i < 0 || i >= num_workers()) return std::nullopt;
  Process& worker = workers_[i];
  if (!PollUntil([&] { return !CheckAlive(worker); }, timeout, std::chrono::milliseconds(10))) {
    return std::nullopt;
  }
  return worker.exit_status;
}

std::string LocalProcessCluster::DescribeExit(int wait_status) {
  return DescribeWaitStatus(wait_status);
}

std::optional<int> LocalProcessCluster::Terminate(Process& process,
                                                  std::chrono::milliseconds timeout) {
  if (process.pid <= 0) return process.exit_status;
  kill(process.pid, SIGTERM);
  if (PollUntil([&] { return !CheckAlive(process); }, timeout, std::chrono::milliseconds(10))) {
    return process.exit_status;
  }
  kill(process.pid, SIGKILL);
  PollUntil([&] { return !CheckAlive(process); }, kKillReapTimeout, std::chrono::milliseconds(10));
  return std::nullopt;
}

void LocalProcessCluster::Stop() {
  std::vector<Process*> all;
  for (Process& w : workers_) all.push_back(&w);
  all.push_back(&scheduler_);
  for (Process* p : all) {
    if (p->pid > 0) kill(p->pid, SIGTERM);
  }
  if (ReapAll(options_.stop_timeout)) return;
  for (Process* p : all) {
    if (p->pid > 0) {
      std::fprintf(stderr, "fleet test cluster: %s (pid %d) ignored SIGTERM for %lld ms; killing\n",
                   p->name.c_str(), static_cast<int>(p->pid),
                   static_cast<long long>(options_.stop_timeout.count()));
      DumpStacks(*p);
      kill(p->pid, SIGKILL);
    }
  }
  if (!ReapAll(kKillReapTimeout)) {
    std::fprintf(stderr, "fleet test cluster: some daemons did not exit after SIGKILL\n");
  }
}

void DumpThreadStacks(pid_t pid, const std::string& name) {
  // Where it hangs is what the failure needs to say; gdb may be missing.
  if (access("/usr/bin/gdb", X_OK) != 0) return;
  const std::string command = "/usr/bin/gdb -p " + std::to_string(pid) +
                              " -batch -ex 'thread apply all bt' >&2 2>/dev/null";
  std::fprintf(stderr, "fleet test cluster: the threads of %s:\n", name.c_str());
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "fleet test cluster: gdb could not attach to %s\n", name.c_str());
  }
}

void DumpStacksOnTerminate() {
  std::set_terminate([] {
    std::fprintf(stderr, "fleet test: std::terminate called%s\n",
                 std::current_exception() ? " with an exception in flight" : "");
    DumpThreadStacks(getpid(), "this test process");
    std::abort();
  });
}

void LocalProcessCluster::DumpStacks(const Process& process) const {
  DumpThreadStacks(process.pid, process.name);
}

bool LocalProcessCluster::ReapAll(std::chrono::milliseconds timeout) {
  return PollUntil(
      [&] {
        bool all_gone = !CheckAlive(scheduler_);
        for (Process& w : workers_) all_gone = !CheckAlive(w) && all_gone;
        return all_gone;
      },
      timeout, std::chrono::milliseconds(10));
}

bool LocalProcessCluster::CheckAlive(Process& process) {
  if (process.pid <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(process.pid, &status, WNOHANG);
  if (r == 0) return true;
  if (r == process.pid) process.exit_status = status;
  process.pid = -1;  // reaped, or not our child any more (ECHILD)
  if (!process.exit_status) process.exit_status = -1;
  return false;
}

bool LocalProcessCluster::Spawn(Process& process, const std::string& binary,
                                const std::vector<std::string>& args, std::string* error) {
  if (access(binary.c_str(), X_OK) != 0) {
    *error = "cannot execute " + binary + ": " + std::strerror(errno);
    return false;
  }
  std::vector<std::string> argv_strings;
  std::string program = binary;
  if (access(kSetpriv, X_OK) == 0) {
    // The child dies with the thread that started it (the test's main
    // thread), even when the test process is SIGKILLed.
    program = kSetpriv;
    argv_strings = {kSetpriv, "--pdeathsig", "KILL", "--", binary};
  } else {
    argv_strings = {binary};
  }
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& s : argv_strings) argv.push_back(s.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, process.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);

  const CleanSignalsSpawnAttributes attributes;

  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, program.c_str(), &actions, attributes.get(), argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    *error = "posix_spawn of " + binary + " failed: " + std::strerror(rc);
    return false;
  }
  process.pid = pid;
  process.exit_status.reset();
  return true;
}

std::string LocalProcessCluster::ReadPortFile(const std::string& path) const {
  std::ifstream in(path);
  std::string line;
  if (!in || !std::getline(in, line)) return "";
  return line;
}

std::string LocalProcessCluster::Logs(std::size_t max_bytes_each) const {
  std::ostringstream out;
  std::vector<const Process*> all = {&scheduler_};
  for (const Process& w : workers_) all.push_back(&w);
  for (const Process* p : all) {
    if (p->log_path.empty()) continue;
    out << "---- " << p->name << " (" << p->log_path << ")";
    if (p->exit_status) out << ", " << DescribeWaitStatus(*p->exit_status);
    out << " ----\n";
    std::ifstream in(p->log_path, std::ios::binary);
    if (!in) {
      out << "(no log file)\n";
      continue;
    }
    in.seekg(0, std::ios::end);
    const std::streamoff size = in.tellg();
    const std::streamoff skip =
        size > static_cast<std::streamoff>(max_bytes_each) ? size - max_bytes_each : 0;
    in.seekg(skip);
    if (skip > 0) out << "(... first " << skip << " bytes left out)\n";
    // Streaming an empty rdbuf would set failbit on `out`.
    if (size > skip) out << in.rdbuf();
    out << "\n";
  }
  return out.str();
}

}  // namespace fleet::test
