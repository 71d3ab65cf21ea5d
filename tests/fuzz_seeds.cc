// Writes the seed corpus of purser_fuzz_decoders (tests/fuzz_decoders.cc)
// from the real encoders: a small ledger's records, payloads, cold records and
// checkpoint, and RPC messages. Each file is the decoder's selector byte and
// its input. Run from the project root after a release build:
//   build/bin/purser_fuzz_seeds tests/fuzz_corpus/decoders
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>

#include "ledger/ledger.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/event_log.h"
#include "rpc/rpc_codec.h"

namespace {

using namespace purser;

int written = 0;

void Seed(const std::string& dir, char selector, std::string_view bytes) {
  std::ofstream out(dir + "/seed-" + std::to_string(selector) + "-" + std::to_string(written++), std::ios::binary);
  out.put(selector);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

template <typename Builder>
std::string Flat(capnp::MallocMessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  return std::string(reinterpret_cast<const char*>(words.begin()), words.size() * sizeof(capnp::word));
}

int Run(const std::string& out) {
  std::filesystem::create_directories(out);
  const std::string db = std::filesystem::temp_directory_path() / "purser-fuzz-seeds";
  std::filesystem::remove_all(db);
  {
    LedgerOptions options;
    options.data_dir = db;
    options.checkpoint_every_events = 40;
    Result<std::unique_ptr<Ledger>> ledger = Ledger::Open(options);
    if (!ledger.ok()) return std::cerr << ledger.status().message() << '\n', 1;
    auto call = [&](RequestBody body) { return (*ledger)->Call(Request{Credentials::System(), std::move(body)}); };
    call(cmd::OpenAccount{"org", "", AccountKind::kOrg, "Org", true, {"team"}});
    call(cmd::OpenAccount{"agent", "org", AccountKind::kAgent, "", false, {}});
    call(cmd::Deposit{"d1", "org", 100'000'000, "seed"});
    for (int i = 0; i < 30; ++i) {
      cmd::Reserve reserve;
      reserve.reservation_id = "r" + std::to_string(i);
      reserve.account = "agent";
      reserve.amount_micros = 10'000 + i;
      reserve.tags = {{"team", "a"}};
      call(reserve);
      cmd::Settle settle;
      settle.reservation_id = reserve.reservation_id;
      settle.amount_micros = 5'000 + i;
      call(settle);
      cmd::RecordUsage usage;
      usage.usage_id = "u" + std::to_string(i);
      usage.account = "agent";
      usage.amount_micros = 700;
      call(usage);
    }
    (*ledger)->Stop();
  }
  EventLogOptions options;
  options.path = db;
  options.read_only = true;
  Result<std::unique_ptr<EventLog>> log = EventLog::Open(options);
  if (!log.ok()) return std::cerr << log.status().message() << '\n', 1;
  int records = 0;
  for (auto it = (*log)->NewIterator(1); it->Valid() && records < 12; it->Next(), ++records) {
    Seed(out, 0, std::string(1, static_cast<char>(it->sequence())) + std::string(it->record()));
    Seed(out, 1, it->record().substr(kRecordHeaderBytes));
  }
  int cold = 0;
  Status walked = (*log)->ForEachColdRecord('r', [&](std::string_view, std::string_view value) {
    if (cold++ < 4) Seed(out, 2, value);
    return Status::Ok();
  });
  if (!walked.ok()) return std::cerr << walked.message() << '\n', 1;
  cold = 0;
  walked = (*log)->ForEachColdRecord('u', [&](std::string_view, std::string_view value) {
    if (cold++ < 4) Seed(out, 3, value);
    return Status::Ok();
  });
  if (!walked.ok()) return std::cerr << walked.message() << '\n', 1;
  uint64_t sequence = 0;
  Sha256Digest link;
  std::string state;
  if ((*log)->ReadCheckpoint(&sequence, &link, &state).ok() && sequence > 0) Seed(out, 4, state);
  cmd::Reserve reserve;
  reserve.reservation_id = "r1";
  reserve.account = "agent";
  reserve.estimate = Estimate{"gpt-4o", 1'000, 500};
  reserve.tags = {{"team", "a"}};
  for (const RequestBody& body : {RequestBody(reserve), RequestBody(cmd::Void{"r1", "why"}),
                                  RequestBody(cmd::Deposit{"d", "org", 5, "ref"})}) {
    capnp::MallocMessageBuilder message;
    EncodeRequest(body, message.initRoot<rpc::Command>());
    Seed(out, 5, Flat<rpc::Command>(message));
  }
  for (const RequestBody& body : {RequestBody(query::GetBalance{"agent"}), RequestBody(query::GetStats{})}) {
    capnp::MallocMessageBuilder message;
    EncodeQuery(body, message.initRoot<rpc::Query>());
    Seed(out, 6, Flat<rpc::Query>(message));
  }
  Reply reply;
  reply.body = ReserveResult{"r1", "agent", 10'000, 1'780'000'000'000'000, 5, 42, ""};
  capnp::MallocMessageBuilder message;
  EncodeReply(reply, message.initRoot<rpc::Result>());
  Seed(out, 7, Flat<rpc::Result>(message));
  std::filesystem::remove_all(db);
  std::cout << written << " seeds in " << out << '\n';
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) return std::cerr << "usage: purser_fuzz_seeds DIR\n", 2;
  return Run(argv[1]);
}
