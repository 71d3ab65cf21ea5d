// What a damaged database does at start, while serving and to `verify`: a
// write-ahead log with a flipped byte or truncated, a damaged table file, a
// damaged projection checkpoint. Nothing acknowledged may vanish silently.

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "ledger/log/event_codec.h"
#include "ledger/log/head_file.h"
#include "ops/admin.h"
#include "replay/replay.h"
#include "tests/daemon_util.h"
#include "tests/test_util.h"

namespace purser::testing {
namespace {

namespace fs = std::filesystem;

// The largest file of `dir` whose name ends with `suffix`.
std::string LargestFile(const std::string& dir, const std::string& suffix) {
  std::string best;
  uintmax_t size = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.size() < suffix.size() || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    if (entry.file_size() > size) {
      size = entry.file_size();
      best = entry.path().string();
    }
  }
  return best;
}

void FlipByte(const std::string& path, uintmax_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  file.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x5a);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(&byte, 1);
}

// purserd on `dir` with 3,000 acknowledged reservations, killed with -9 (so
// they are in the write-ahead log, not in table files). Returns the head.
uint64_t WriteAndKill(const std::string& dir) {
  Daemon daemon;
  EXPECT_TRUE(daemon.Start(dir));
  auto admin = daemon.Admin();
  EXPECT_TRUE(admin->Call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "", true, {}}).ok());
  EXPECT_TRUE(admin->Call(cmd::Deposit{"d1", "org", 1'000'000'000, ""}).ok());
  std::vector<RequestBody> batch;
  for (int i = 0; i < 3'000; ++i) batch.push_back(ReserveCommand("r" + std::to_string(i), "org", 10));
  for (const Reply& reply : admin->CallBatch(std::move(batch))) EXPECT_TRUE(reply.ok());
  Reply head = admin->Call(query::GetChainHead{});
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));  // the head mark catches up
  daemon.Kill();
  return std::get<ChainHead>(head.body).sequence;
}

// Starts purserd on `dir` and returns its exit status and output (it exits
// at once when the start is refused; else it is stopped).
std::pair<int, std::string> StartOnce(const std::string& dir, std::vector<std::string> extra = {}) {
  std::string command = std::string(PURSERD_BINARY) + " --data-dir " + dir +
                        " --rpc 127.0.0.1:0 --http 127.0.0.1:0";
  for (const std::string& arg : extra) command += " " + arg;
  command += " 2>&1 & pid=$!; sleep 1.5; kill $pid 2>/dev/null; wait $pid; echo \"exit=$?\"";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  size_t at = out.rfind("exit=");
  int status = at == std::string::npos ? -1 : std::stoi(out.substr(at + 5));
  return {status, out};
}

TEST(Damage, AFlippedByteInTheMiddleOfTheWriteAheadLogStopsTheStart) {
  TempDir dir;
  WriteAndKill(dir.Sub("data"));
  std::string wal = LargestFile(dir.Sub("data"), ".log");
  ASSERT_FALSE(wal.empty());
  ASSERT_GT(fs::file_size(wal), 10'000u);
  FlipByte(wal, fs::file_size(wal) / 2);
  auto [status, out] = StartOnce(dir.Sub("data"));
  EXPECT_NE(status, 0) << out;
  EXPECT_NE(out.find("orrupt"), std::string::npos) << out;
  EXPECT_EQ(out.find("serving"), std::string::npos) << "it must not serve: " << out;
}

TEST(Damage, ALogTruncatedToHalfOrToZeroIsRefusedUntilTheOperatorSalvagesIt) {
  for (bool to_zero : {false, true}) {
    TempDir dir;
    uint64_t head = WriteAndKill(dir.Sub("data"));
    std::string wal = LargestFile(dir.Sub("data"), ".log");
    ASSERT_FALSE(wal.empty());
    fs::resize_file(wal, to_zero ? 0 : fs::file_size(wal) / 2);
    auto [status, out] = StartOnce(dir.Sub("data"));
    EXPECT_NE(status, 0) << out;
    EXPECT_NE(out.find("acknowledged events are missing"), std::string::npos) << out;
    EXPECT_NE(out.find(std::to_string(head)), std::string::npos) << out;
    VerifyReport report;
    Status verified = Verify(VerifyOptions{dir.Sub("data"), std::nullopt, std::nullopt, nullptr}, &report);
    EXPECT_FALSE(verified.ok()) << "plain verify sees it too";
    EXPECT_TRUE(verified.IsCorruption()) << "damage, not an I/O error";
    EXPECT_NE(verified.message().find("missing"), std::string::npos) << verified.message();
    // The operator's explicit decision, then the service starts.
    std::ostringstream salvaged;
    ASSERT_TRUE(Salvage(dir.Sub("data"), salvaged).ok());
    EXPECT_NE(salvaged.str().find("are lost"), std::string::npos) << salvaged.str();
    auto [after, log] = StartOnce(dir.Sub("data"));
    EXPECT_EQ(after, 0) << log;
  }
}

TEST(Damage, AcceptingATruncatedLogIsAnExplicitLoggedFlag) {
  TempDir dir;
  WriteAndKill(dir.Sub("data"));
  std::string wal = LargestFile(dir.Sub("data"), ".log");
  fs::resize_file(wal, fs::file_size(wal) / 3);
  auto [status, out] = StartOnce(dir.Sub("data"), {"--accept-truncated-log"});
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("accepted by the operator"), std::string::npos) << out;
}

TEST(Damage, ADamagedTableFileIsFoundByTheScrubAndTheStopIsNotClean) {
  TempDir dir;
  {
    auto sequencer = OpenSequencer(dir.Sub("data"));
    OpenTree(*sequencer, 2, 50'000'000);
    for (int i = 0; i < 2'000; ++i) {
      ASSERT_TRUE(Call(*sequencer, ReserveCommand("r" + std::to_string(i), "agent-0", 1)).ok());
    }
    ASSERT_TRUE(sequencer->log()->FlushAll().ok());
  }
  std::string table = LargestFile(dir.Sub("data"), ".sst");
  ASSERT_FALSE(table.empty());
  FlipByte(table, fs::file_size(table) / 3);
  Daemon daemon;
  ASSERT_TRUE(daemon.Start(dir.Sub("data")));
  std::this_thread::sleep_for(std::chrono::milliseconds(1'000));  // the scrub at start
  std::string health;
  {
    std::string command = "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:" +
                          std::to_string(daemon.http_port()) + "/healthz";
    FILE* pipe = popen(command.c_str(), "r");
    char buffer[64] = {};
    size_t n = fread(buffer, 1, sizeof buffer - 1, pipe);
    pclose(pipe);
    health.assign(buffer, n);
  }
  EXPECT_EQ(health, "503") << "/healthz reports the corruption";
  EXPECT_EQ(daemon.Stop(), 3) << "a damaged database never stops cleanly";
}

TEST(Damage, ADamagedProjectionCheckpointFallsBackToReplayingTheLog) {
  TempDir dir;
  Sha256Digest live;
  {
    auto sequencer = OpenSequencer(dir.Sub("data"));
    OpenTree(*sequencer, 2, 50'000'000);
    for (int i = 0; i < 50; ++i) {
      ASSERT_TRUE(Call(*sequencer, ReserveCommand("r" + std::to_string(i), "agent-1", 10)).ok());
    }
    live = LiveDigest(*sequencer);
  }  // the stop writes a checkpoint
  {
    // Damage the checkpoint's state: its first chunk, with RocksDB's checksums intact.
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"events", {}}, {"ids", {}}, {"checkpoint", {}},
        {"records", {}}, {"listing", {}}, {"notify", {}}, {"merkle", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.Sub("data"), families, &handles, &db).ok());
    std::string chunk;  // the first chunk key (docs/FORMAT.md)
    {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[3]));
      it->Seek("chunk");
      ASSERT_TRUE(it->Valid() && it->key().starts_with("chunk"));
      chunk = it->key().ToString();
    }
    std::string value;
    ASSERT_TRUE(db->Get({}, handles[3], chunk, &value).ok());
    value[value.size() / 2] ^= 0x20;
    value.resize(value.size() - 7);
    ASSERT_TRUE(db->Put({}, handles[3], chunk, value).ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    delete db;
  }
  VerifyReport report;
  Status verified = Verify(VerifyOptions{dir.Sub("data"), std::nullopt, std::nullopt, nullptr}, &report);
  EXPECT_FALSE(verified.ok());
  EXPECT_NE(verified.message().find("projection checkpoint"), std::string::npos) << verified.message();
  EXPECT_EQ(report.bad_sequence, 0u) << "no event is bad";
  auto sequencer = OpenSequencer(dir.Sub("data"));
  ASSERT_NE(sequencer, nullptr) << "the service starts from the log";
  EXPECT_EQ(LiveDigest(*sequencer), live);
}

TEST(Damage, VerifyChecksTheIdIndexAgainstTheLog) {
  TempDir dir;
  {
    auto sequencer = OpenSequencer(dir.Sub("data"));
    OpenTree(*sequencer, 1, 50'000'000);
    ASSERT_TRUE(Call(*sequencer, ReserveCommand("kept", "agent-0", 10)).ok());
  }
  VerifyReport report;
  Status intact = Verify(VerifyOptions{dir.Sub("data"), std::nullopt, std::nullopt, nullptr}, &report);
  ASSERT_TRUE(intact.ok()) << intact.message();
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> families = {
        {rocksdb::kDefaultColumnFamilyName, {}}, {"events", {}}, {"ids", {}}, {"checkpoint", {}},
        {"records", {}}, {"listing", {}}, {"notify", {}}, {"merkle", {}}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), dir.Sub("data"), families, &handles, &db).ok());
    ASSERT_TRUE(db->Delete({}, handles[2], "rkept").ok());
    for (auto* handle : handles) db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    delete db;
  }
  Status verified = Verify(VerifyOptions{dir.Sub("data"), std::nullopt, std::nullopt, nullptr}, &report);
  EXPECT_FALSE(verified.ok());
  EXPECT_NE(verified.message().find("id index"), std::string::npos) << verified.message();
  EXPECT_TRUE(verified.IsCorruption());
}

TEST(Damage, StatusCodesTellDamageFromBadInputAndMapToResultCodes) {
  RecordView view;
  Status short_record = DecodeRecord(1, "short", &view);
  EXPECT_TRUE(short_record.IsCorruption()) << short_record.message();
  TempDir dir;
  VerifyReport report;
  Status missing = Verify(VerifyOptions{dir.Sub("nothing"), std::nullopt, std::nullopt, nullptr}, &report);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.message();
  // The admin checkpoint's path checks come before any I/O.
  Status relative = CreateCheckpointAt(nullptr, "relative/dir");
  EXPECT_EQ(relative.code(), StatusCode::kInvalidArgument) << relative.message();
  EXPECT_EQ(CreateCheckpointAt(nullptr, dir.path()).code(), StatusCode::kInvalidArgument)
      << "an existing directory";
  EXPECT_EQ(ToResultCode(relative), ResultCode::kInvalidArgument);
  EXPECT_EQ(ToResultCode(missing), ResultCode::kNotFound);
  EXPECT_EQ(ToResultCode(short_record), ResultCode::kUnavailable);
  EXPECT_EQ(ToResultCode(Status::IOError("disk full")), ResultCode::kUnavailable);
  EXPECT_EQ(Status::IOError("x").WithContext("copy: ").code(), StatusCode::kIOError);
  EXPECT_EQ(Status::IOError("x").WithContext("copy: ").message(), "copy: x");
}

}  // namespace
}  // namespace purser::testing
