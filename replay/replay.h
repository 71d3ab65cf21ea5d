// The replay tools: verify a log, rebuild every projection from it, export
// it as JSON lines. They read the log through ledger/recovery.h, the same
// checks and State::Apply the live service uses, so a rebuild's digest equals
// the live digest at the same sequence.
//
// They open the database read-only and are meant to run on a consistent copy
// (`purser checkpoint DIR` / POST /v1/admin/checkpoint) of a live service.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <map>
#include <memory>
#include <vector>
#include <optional>
#include <string>

#include "ledger/base/signed_note.h"
#include "ledger/base/status.h"
#include "ledger/base/types.h"
#include "ledger/machine/commands.h"

namespace purser {

class State;

struct VerifyOptions {
  std::string data_dir;
  // Also require the log to reach this head (detects a truncated log).
  std::optional<uint64_t> expect_sequence;
  std::optional<Sha256Digest> expect_hash;
  // Where progress lines go (nullptr: nowhere).
  std::ostream* progress = nullptr;
  // Like the service, move finished records out of memory (into a scratch
  // database under the system's temp directory) whenever it holds this many
  // reservations and usage records, so that memory does not grow with the
  // log (about 0.5 KiB each). 0: keep everything in memory. Default: 1M,
  // which keeps verify under 1 GiB on any log (0.85 GB on 12M events);
  // rebuild's default is 4M, for speed.
  uint64_t max_records_in_memory = 1'000'000;
  // Without expect_*: check the log against the head mark kept beside it
  // (ledger/head_file.h), which catches a log that lost acknowledged
  // events. Default: true.
  bool use_head_mark = true;
};

struct VerifyReport {
  uint64_t events = 0;
  uint64_t last_sequence = 0;
  Sha256Digest head{};
  uint64_t wallets_checked = 0;
  bool checkpoint_checked = false;
  bool head_mark_checked = false;
  bool merkle_tree_checked = false;  // false: an older build's database, no tree
  uint64_t signed_checkpoints_checked = 0;
  // The first bad event, 0 when the problem is not one event.
  uint64_t bad_sequence = 0;
};

// Checks every record's checksum, the hash chain, sequence continuity, the
// conservation law of every wallet (balance = deposits + adjustments +
// refunds - charges, summed independently from the events), the projection
// checkpoint against a rebuild at its sequence, and the expected head.
Status Verify(const VerifyOptions& options, VerifyReport* report);

struct QueryOptions {
  std::string data_dir;
  // The moment: after this event (inclusive), or the last event at or before
  // this time. Default: the end of the log.
  uint64_t until_sequence = UINT64_MAX;
  int64_t until_time_us = INT64_MAX;
  uint64_t max_records_in_memory = 4'000'000;  // as VerifyOptions
  std::ostream* progress = nullptr;
};

struct QueryReport {
  Reply reply;              // the read's answer, as the service gives it
  uint64_t sequence = 0;    // the last event applied
  int64_t now_us = 0;       // the moment the read was answered as of
};

// `purser-replay query --as-of`: a read of API.md (a query, never a
// command) answered by the same state machine on the state as it stood at
// the moment: the log replayed up to it, the records the read needs loaded
// as the service's prefetch loads them, "now" being the --as-of time (or the
// last event's time for a sequence).
Status QueryAsOf(const QueryOptions& options, const RequestBody& read, QueryReport* report);
// The moment QueryAsOf answers as of, from the log's records alone (for the
// default date ranges of a read written on a command line).
Result<int64_t> QueryMoment(const QueryOptions& options);

// Spend and calls under one key (a model, an action, a run).
struct ExplainTally {
  int64_t micros = 0;
  uint64_t calls = 0;
};

struct ExplainOptions {
  std::string data_dir;
  std::string account;  // the subtree's root
  int64_t from_us = 0;  // inclusive
  int64_t to_us = 0;    // inclusive
  std::ostream* progress = nullptr;  // progress lines (nullptr: none)
};

// `purser-replay explain`: what happened in a subtree over a window, from
// the events alone (one pass over the log, nothing applied). Spend counts
// settles, usage records and expiry charges at the time their events were
// written; refunds are not subtracted.
struct ExplainReport {
  struct Call {
    std::string id;  // reservation or usage id
    std::string account;
    std::string model;
    int64_t micros = 0;
    int64_t time_us = 0;
  };
  struct Note {
    int64_t time_us = 0;
    std::string account;
    std::string kind;  // an alert type, "frozen", "unfrozen"
    std::string text;
  };
  bool account_found = false;
  int64_t spend_micros = 0;
  uint64_t calls = 0;
  uint64_t expiries = 0;
  int64_t expiry_charged_micros = 0;
  std::map<int64_t, int64_t> per_minute;  // minute since the epoch -> spend
  std::map<std::string, ExplainTally> models, actions, runs;
  std::vector<Call> largest;  // the ten largest, largest first
  std::vector<Note> alerts;
  std::vector<Note> freezes;
  std::map<std::string, uint64_t> rejections;  // result code name -> count
};

Status Explain(const ExplainOptions& options, ExplainReport* report);
void WriteExplainText(const ExplainOptions& options, const ExplainReport& report, std::ostream& out);
std::string ExplainJson(const ExplainOptions& options, const ExplainReport& report);
// Spend per minute over the window as an SVG bar chart.
std::string ExplainSvg(const ExplainOptions& options, const ExplainReport& report);

struct WhatIfOptions {
  std::string data_dir;
  std::string account;  // the subtree's root, whose caps change
  int64_t from_us = 0;  // inclusive: the caps change at the window's first event
  int64_t to_us = 0;    // inclusive: the replay stops after it
  CapsPatch caps;       // the hypothetical caps of `account` (as `purser budget set`)
  uint64_t max_records_in_memory = 4'000'000;  // as VerifyOptions
  std::ostream* progress = nullptr;
};

// `purser-replay what-if`: the log replayed through the same state machine
// with other caps on a subtree. Inside the subtree and the window, the
// commands the events record (reserve, settle, void, extend, usage) are
// executed again, so admission, alerts and the runaway policy decide anew;
// everything else is applied as it was. A refused reservation's later
// settle, void, expiry and refunds are dropped: its call is assumed not made.
struct WhatIfReport {
  struct Refused {
    std::string id;       // reservation or usage id
    std::string account;  // the account that asked
    int64_t time_us = 0;
    std::string code;     // the refusal's result code
    std::string message;  // names the account and cap that refused
    int64_t avoided_micros = 0;  // what its call cost in the log, within the window
  };
  struct Day {
    int64_t actual_micros = 0;
    int64_t hypothetical_micros = 0;
  };
  bool account_found = false;
  uint64_t reservations = 0;  // reserves of the subtree in the window
  uint64_t usages = 0;        // usage records of the subtree in the window
  uint64_t refused_reservations = 0;
  uint64_t refused_usages = 0;   // refused only while frozen (the runaway policy)
  std::vector<Refused> refused;  // both, in log order
  std::map<std::string, uint64_t> refused_by_code;
  int64_t avoided_micros = 0;  // spend of the refused calls in the log
  int64_t actual_micros = 0;
  int64_t hypothetical_micros = 0;
  // The first refusal after the last admitted reserve: from then to the end
  // of the window no reserve passed. 0 when the money never stopped.
  int64_t stopped_at_us = 0;
  std::map<int64_t, Day> per_day;  // day since the epoch -> spend
  std::vector<std::string> hypothetical_alerts;  // alerts raised in the subtree, as messages
  uint64_t actual_alerts = 0;
};

Status WhatIf(const WhatIfOptions& options, WhatIfReport* report);
void WriteWhatIfText(const WhatIfOptions& options, const WhatIfReport& report, std::ostream& out);
std::string WhatIfJson(const WhatIfOptions& options, const WhatIfReport& report);

// Proofs (SPEC section 9). `purser-replay prove`: an inclusion proof of
// event `sequence` (tree_size 0: the newest signed checkpoint's), or,
// without a sequence, a consistency proof from `from_size` to `to_size`;
// in API.md's JSON.
struct ProveOptions {
  std::string data_dir;
  uint64_t sequence = 0;
  uint64_t tree_size = 0;
  uint64_t from_size = 0;
  uint64_t to_size = 0;
};
Status Prove(const ProveOptions& options, std::string* json);
// The stored signed checkpoint of `tree_size` events (0: the newest).
Status SignedCheckpointNote(const std::string& data_dir, uint64_t tree_size, std::string* note);

// The log's public key (log.pub, as the service wrote it).
Result<NoteVerifier> LoadVerifier(const std::string& pub_path);
// `purser-replay verify-proof`, offline with the public key alone: the
// checkpoint's signature, then an inclusion proof against its root (and the
// record against the leaf: *event_json receives the event), or a
// consistency proof from `old_checkpoint_note` to it.
Status VerifyProof(const NoteVerifier& verifier, std::string_view checkpoint_note, std::string_view proof_json,
                   std::optional<std::string_view> old_checkpoint_note, std::string* event_json);

struct CheckpointsReport {
  uint64_t checkpoints = 0;
  uint64_t last_size = 0;
  uint64_t events = 0;
};
// `purser-replay verify-checkpoints`: every stored checkpoint's signature
// with the given key (not the one in the data directory), each one
// consistent with the one before (proofs from the stored tree, verified),
// and each root equal to the root of the log's own records at its size.
Status VerifyCheckpoints(const std::string& data_dir, const NoteVerifier& verifier,
                         std::ostream* progress, CheckpointsReport* report);

// `purser-replay salvage`: the operator accepts a log that lost acknowledged
// events (after a damaged disk, a restored copy). The log must still verify
// on its own; the head mark then moves to its head, and what was lost is
// printed on `out`.
Status Salvage(const std::string& data_dir, std::ostream& out);

struct RebuildOptions {
  std::string data_dir;
  // A new directory that receives the events up to the stop point and a
  // projection checkpoint there (usable by purserd). Empty: digest only.
  std::string out_dir;
  uint64_t until_sequence = UINT64_MAX;
  int64_t until_time_us = INT64_MAX;
  std::ostream* progress = nullptr;
  // As VerifyOptions::max_records_in_memory; with out_dir, the new
  // database holds the moved records as its cold store.
  uint64_t max_records_in_memory = 4'000'000;
  // Hand the rebuilt state to the caller (RebuildReport::state) instead of
  // freeing it here: freeing millions of records one by one took 8-10% of a
  // rebuild, and a process about to end need not pay it.
  bool keep_state = false;
};

struct RebuildReport {
  uint64_t sequence = 0;
  Sha256Digest digest{};
  uint64_t events = 0;
  double seconds = 0;
  double digest_seconds = 0;  // of `seconds`, the canonical state digest at the end
  std::shared_ptr<State> state;  // with RebuildOptions::keep_state
};

Status Rebuild(const RebuildOptions& options, RebuildReport* report);

struct ExportOptions {
  std::string data_dir;
  std::string account;  // empty = all; otherwise the account and its subtree
  int64_t from_us = INT64_MIN;
  int64_t to_us = INT64_MAX;
};

// Writes one JSON object per line for each matching event. No secrets.
Status Export(const ExportOptions& options, std::ostream& out, uint64_t* exported);

// `purser-replay verify|rebuild|export ...`; returns the process exit code.
int ReplayMain(int argc, char** argv);

}  // namespace purser
