// Runs the real purserd binary as a child process on an ephemeral loopback
// port, the way a client meets it.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <purser/client.h>

namespace purser::testing {

class Daemon {
 public:
  // Starts purserd on `data_dir`; returns false (with a test failure) when it
  // does not come up.
  // `descriptors_max` > 0 sets the child's RLIMIT_NOFILE (soft and hard).
  bool Start(const std::string& data_dir, std::vector<std::string> extra = {},
             int descriptors_max = 0) {
    data_dir_ = data_dir;
    int out[2];
    if (pipe(out) != 0) return false;
    pid_ = fork();
    if (pid_ == 0) {
      if (descriptors_max > 0) {
        rlimit limit{static_cast<rlim_t>(descriptors_max), static_cast<rlim_t>(descriptors_max)};
        setrlimit(RLIMIT_NOFILE, &limit);
      }
      dup2(out[1], STDOUT_FILENO);
      int devnull = open("/dev/null", O_WRONLY);
      if (!stderr_path.empty()) {
        int log = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(log, STDERR_FILENO);
      } else if (getenv("PURSER_TEST_VERBOSE") == nullptr) {
        dup2(devnull, STDERR_FILENO);
      }
      close(out[0]);
      close(out[1]);
      std::vector<std::string> args = {PURSERD_BINARY, "--data-dir", data_dir, "--rpc",
                                       "127.0.0.1:0", "--http", "127.0.0.1:0"};
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      execv(PURSERD_BINARY, argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string line;
    char c;
    while (read(out[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    close(out[0]);
    size_t at = line.find("port=");
    if (at == std::string::npos) {
      ADD_FAILURE() << "purserd did not start: '" << line << "'";
      return false;
    }
    port_ = std::stoi(line.substr(at + 5));
    size_t http_at = line.find("http_port=");
    if (http_at != std::string::npos) http_port_ = std::stoi(line.substr(http_at + 10));
    std::ifstream key_file(data_dir + "/admin.key");
    std::getline(key_file, admin_key_);
    return true;
  }

  // SIGTERM and wait: the exit status (0 = clean).
  int Stop() { return Signal(SIGTERM); }
  // SIGKILL: no chance to finish anything.
  void Kill() { Signal(SIGKILL); }

  int Signal(int signal_number) {
    if (pid_ <= 0) return -1;
    kill(pid_, signal_number);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  ~Daemon() {
    if (pid_ > 0) Kill();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& admin_key() const { return admin_key_; }
  int port() const { return port_; }
  int http_port() const { return http_port_; }
  pid_t pid() const { return pid_; }

  std::unique_ptr<Client> Connect(const std::string& key) const {
    ClientOptions options;
    options.address = address();
    options.api_key = key;
    Result<std::unique_ptr<Client>> client = Client::Connect(options);
    if (!client.ok()) return nullptr;
    return std::move(*client);
  }
  std::unique_ptr<Client> Admin() const { return Connect(admin_key_); }

  // When set before Start, the daemon's log (stderr) is appended here.
  std::string stderr_path;

 private:
  std::string data_dir_;
  pid_t pid_ = -1;
  int port_ = 0;
  int http_port_ = 0;
  std::string admin_key_;
};

}  // namespace purser::testing
