// Crash recovery: a child process running the sequencer under concurrent load
// is killed with SIGKILL at a random moment, again and again. Every command
// it acknowledged must be there after the restart, and the recovered state
// must equal a rebuild of the log.

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <sstream>

#include "replay/replay.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

struct ChildOutput {
  std::vector<std::string> reserved;
  std::map<std::string, int64_t> settled;
};

// Runs the child until it printed READY and then for `run_ms`, kills it with
// SIGKILL and collects everything it printed.
ChildOutput RunAndKill(const std::string& dir, int round, int run_ms) {
  int pipe_fds[2];
  EXPECT_EQ(pipe(pipe_fds), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::string round_text = std::to_string(round);
    execl(PURSER_CRASH_CHILD, PURSER_CRASH_CHILD, dir.c_str(), round_text.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string output;
  char buffer[65536];
  // Wait for READY, then let it run.
  while (output.find("READY\n") == std::string::npos) {
    ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(run_ms);
  fcntl(pipe_fds[0], F_SETFL, O_NONBLOCK);
  while (std::chrono::steady_clock::now() < deadline) {
    ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
    if (n > 0) output.append(buffer, static_cast<size_t>(n));
    else std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status)) << "the child should still have been running";
  fcntl(pipe_fds[0], F_SETFL, 0);
  while (true) {
    ssize_t n = read(pipe_fds[0], buffer, sizeof buffer);
    if (n <= 0) break;
    output.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  ChildOutput result;
  std::istringstream lines(output);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("R ", 0) == 0) result.reserved.push_back(line.substr(2));
    if (line.rfind("S ", 0) == 0) {
      size_t space = line.find(' ', 2);
      result.settled[line.substr(2, space - 2)] = std::stoll(line.substr(space + 1));
    }
  }
  return result;
}

TEST(Crash, KilledWhileCommittingLosesNothingAcknowledgedAndEqualsARebuild) {
  TempDir dir;
  std::mt19937 random(20261123);
  size_t acknowledged = 0;
  bool saw_tail_recovery = false;
  for (int round = 0; round < 6; ++round) {
    int run_ms = std::uniform_int_distribution<int>(50, 400)(random);
    ChildOutput output = RunAndKill(dir.path(), round, run_ms);
    ASSERT_FALSE(output.reserved.empty()) << "round " << round << " acknowledged nothing";
    acknowledged += output.reserved.size() + output.settled.size();
    // The database as the crash left it (as a copy of a running service
    // would be): records finished after its last checkpoint are in the cold
    // store, and it verifies.
    VerifyReport crashed;
    Status as_left = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &crashed);
    EXPECT_TRUE(as_left.ok()) << "round " << round << ": " << as_left.message();

    Sha256Digest recovered;
    uint64_t sequence = 0;
    {
      auto sequencer = OpenSequencer(dir.path());
      ASSERT_NE(sequencer, nullptr);
      saw_tail_recovery = saw_tail_recovery || sequencer->recovered_tail_events() > 0;
      for (const std::string& id : output.reserved) {
        Reply reply = Call(*sequencer, query::GetReservation{id});
        ASSERT_TRUE(reply.ok()) << "acknowledged reservation " << id << " was lost";
      }
      for (const auto& [id, cost] : output.settled) {
        Reply reply = Call(*sequencer, query::GetReservation{id});
        ASSERT_TRUE(reply.ok());
        const auto& view = std::get<ReservationView>(reply.body);
        EXPECT_EQ(view.status, ReservationStatus::kSettled) << id;
        EXPECT_EQ(view.cost_micros, cost) << id;
      }
      recovered = LiveDigest(*sequencer, &sequence);
    }
    RebuildReport rebuilt;
    ASSERT_TRUE(Rebuild(RebuildOptions{dir.path(), "", sequence, INT64_MAX, nullptr}, &rebuilt).ok());
    EXPECT_EQ(rebuilt.digest, recovered) << "round " << round;
    VerifyReport verified;
    Status status = Verify(VerifyOptions{dir.path(), std::nullopt, std::nullopt, nullptr}, &verified);
    EXPECT_TRUE(status.ok()) << status.message();
  }
  EXPECT_GT(acknowledged, 100u);
  EXPECT_TRUE(saw_tail_recovery) << "some round should have recovered a tail after a checkpoint";
}

}  // namespace
}  // namespace purser::testing
