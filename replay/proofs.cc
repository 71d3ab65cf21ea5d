// The proof commands of purser-replay (SPEC section 9): build proofs from a
// database, verify them and signed checkpoints offline with the log's
// public key alone, and check that every signed checkpoint is the log's.

#include <fstream>
#include <iostream>
#include <sstream>

#include "http/proof_json.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/signed_note.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/merkle_store.h"
#include "ledger/log/recovery.h"
#include "ledger/wire/event_json.h"
#include "replay/replay.h"
#include "replay/replay_internal.h"

namespace purser {

namespace {

Status ReadTextFile(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound("cannot read " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  return Status::Ok();
}

}  // namespace

Result<NoteVerifier> LoadVerifier(const std::string& pub_path) {
  std::string text;
  if (Status status = ReadTextFile(pub_path, &text); !status.ok()) return status;
  Result<NoteVerifier> verifier = NoteVerifier::FromVerifierKey(text);
  if (!verifier.ok()) return verifier.status().WithContext(pub_path + ": ");
  return verifier;
}

Status OpenCheckpoint(const NoteVerifier& verifier, std::string_view note, LogCheckpoint* checkpoint) {
  Result<std::string> text = verifier.Open(note);
  if (!text.ok()) return text.status();
  if (Status status = ParseCheckpointText(*text, checkpoint); !status.ok()) return status;
  if (checkpoint->origin != verifier.name()) {
    return Status::Corruption("the checkpoint's origin " + checkpoint->origin + " is not the key's log " +
                              verifier.name());
  }
  return Status::Ok();
}

void MerkleCheck::Observe(uint64_t sequence, std::string_view record) {
  if (frontier_.size() + 1 != sequence) return;  // the replay reports gaps itself
  frontier_.Append(MerkleLeafHash(record), &completed_);
  completed_.clear();
  while (next_ != signed_roots_.end() && next_->first == frontier_.size()) {
    if (next_->second != frontier_.Root() && problem_.empty()) {
      problem_ = "the signed checkpoint of " + std::to_string(next_->first) +
                 " events does not match the log's records (its root differs)";
    }
    ++checked_;
    ++next_;
  }
}

Status MerkleCheck::LoadSignedRoots(EventLog* log, const NoteVerifier* verifier) {
  Status problem;
  Status status = log->ForEachSignedCheckpoint(0, [&](uint64_t size, std::string_view note) {
    LogCheckpoint checkpoint;
    if (verifier != nullptr) {
      problem = OpenCheckpoint(*verifier, note, &checkpoint);
    } else {
      problem = ParseSignedCheckpoint(note, &checkpoint);
    }
    if (!problem.ok()) {
      problem = problem.WithContext("the signed checkpoint of " + std::to_string(size) + " events: ");
      return false;
    }
    if (checkpoint.tree_size != size) {
      problem = Status::Corruption("the signed checkpoint stored under " + std::to_string(size) +
                                   " events is of " + std::to_string(checkpoint.tree_size));
      return false;
    }
    if (!signed_roots_.empty() && checkpoint.time_us < last_time_us_) {
      problem = Status::Corruption("the signed checkpoint of " + std::to_string(size) +
                                   " events is older than the one before it");
      return false;
    }
    last_time_us_ = checkpoint.time_us;
    signed_roots_.emplace_back(size, checkpoint.root);
    return true;
  });
  next_ = signed_roots_.begin();
  return status.ok() ? problem : status;
}

Status MerkleCheck::Finish(EventLog* log) {
  if (!problem_.empty()) return Status::Corruption(problem_);
  if (next_ != signed_roots_.end()) {
    return Status::Corruption("a signed checkpoint covers " + std::to_string(next_->first) +
                              " events and the log holds " + std::to_string(frontier_.size()) +
                              ": signed events are missing");
  }
  // The stored tree, which proofs are built from, against the records.
  const uint64_t stored = log->merkle_durable_size();
  if (stored == 0) return Status::Ok();  // an older build's database: no tree yet
  if (stored != frontier_.size()) {
    return Status::Corruption("the Merkle tree covers " + std::to_string(stored) + " events, the log " +
                              std::to_string(frontier_.size()));
  }
  Result<Sha256Digest> root = MerkleRoot(log, stored);
  if (!root.ok()) return root.status();
  if (*root != frontier_.Root()) {
    return Status::Corruption("the stored Merkle tree differs from the log's records");
  }
  return Status::Ok();
}

Status VerifyCheckpoints(const std::string& data_dir, const NoteVerifier& verifier,
                         std::ostream* progress, CheckpointsReport* report) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(data_dir);
  if (!log.ok()) return log.status();
  MerkleCheck check;
  if (Status status = check.LoadSignedRoots(log->get(), &verifier); !status.ok()) return status;
  // Each root against the log's own records.
  State state;
  Sha256Digest link{};
  ReplayOptions replay;
  replay.apply = false;
  replay.progress = ProgressPrinter(progress, "verify-checkpoints");
  replay.on_event = [&](const Event& event, std::string_view record) { check.Observe(event.sequence, record); };
  if (Status status = ReplayLog(log->get(), &state, &link, replay); !status.ok()) return status;
  if (Status status = check.Finish(log->get()); !status.ok()) return status;
  // Each checkpoint extends the one before: a consistency proof from the
  // stored tree, verified as a client would.
  const auto& roots = check.signed_roots();
  for (size_t i = 1; i < roots.size(); ++i) {
    ConsistencyProof proof;
    if (Status status = BuildConsistencyProof(log->get(), roots[i - 1].first, roots[i].first, &proof);
        !status.ok()) {
      return status;
    }
    if (!VerifyConsistency(proof.from, proof.to, roots[i - 1].second, roots[i].second, proof.path)) {
      return Status::Corruption("the signed checkpoint of " + std::to_string(roots[i].first) +
                                " events does not extend the one of " + std::to_string(roots[i - 1].first));
    }
  }
  report->checkpoints = roots.size();
  report->last_size = roots.empty() ? 0 : roots.back().first;
  report->events = state.last_sequence;
  return Status::Ok();
}

Status VerifyProof(const NoteVerifier& verifier, std::string_view checkpoint_note, std::string_view proof_json,
                   std::optional<std::string_view> old_checkpoint_note, std::string* event_json) {
  LogCheckpoint checkpoint;
  if (Status status = OpenCheckpoint(verifier, checkpoint_note, &checkpoint); !status.ok()) {
    return status.WithContext("the checkpoint: ");
  }
  std::string error;
  if (proof_json.find("\"leaf_index\"") != std::string_view::npos) {
    InclusionProof proof;
    if (!ParseInclusionProofJson(proof_json, &proof, &error)) return Status::InvalidArgument(error);
    if (proof.tree_size != checkpoint.tree_size) {
      return Status::InvalidArgument("the proof is for a tree of " + std::to_string(proof.tree_size) +
                                     " events, the checkpoint of " + std::to_string(checkpoint.tree_size));
    }
    if (!proof.record.empty()) {
      if (MerkleLeafHash(proof.record) != proof.leaf_hash) {
        return Status::Corruption("the record does not hash to the proof's leaf");
      }
      RecordView view;
      Event event;
      Status decoded = DecodeRecord(proof.leaf_index + 1, proof.record, &view);
      if (decoded.ok()) decoded = DecodePayload(view.payload, &event);
      if (!decoded.ok()) return decoded.WithContext("the record: ");
      event.sequence = proof.leaf_index + 1;
      JsonWriter writer;
      WriteEventJson(event, &writer);
      *event_json = writer.Take();
    }
    if (!VerifyInclusion(proof.leaf_index, proof.tree_size, proof.leaf_hash, proof.path, checkpoint.root)) {
      return Status::Corruption("the inclusion proof does not lead to the checkpoint's root");
    }
    return Status::Ok();
  }
  ConsistencyProof proof;
  if (!ParseConsistencyProofJson(proof_json, &proof, &error)) return Status::InvalidArgument(error);
  if (!old_checkpoint_note) return Status::InvalidArgument("a consistency proof needs --old-checkpoint");
  LogCheckpoint old_checkpoint;
  if (Status status = OpenCheckpoint(verifier, *old_checkpoint_note, &old_checkpoint); !status.ok()) {
    return status.WithContext("the old checkpoint: ");
  }
  if (proof.from != old_checkpoint.tree_size || proof.to != checkpoint.tree_size) {
    return Status::InvalidArgument("the proof goes from " + std::to_string(proof.from) + " to " +
                                   std::to_string(proof.to) + " events, the checkpoints from " +
                                   std::to_string(old_checkpoint.tree_size) + " to " +
                                   std::to_string(checkpoint.tree_size));
  }
  if (!VerifyConsistency(proof.from, proof.to, old_checkpoint.root, checkpoint.root, proof.path)) {
    return Status::Corruption("the consistency proof does not join the two checkpoints' roots");
  }
  return Status::Ok();
}

Status Prove(const ProveOptions& options, std::string* json) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(options.data_dir);
  if (!log.ok()) return log.status();
  if ((*log)->merkle_durable_size() == 0) {
    return Status::NotFound("this database has no Merkle tree yet (start purserd on it once)");
  }
  if (options.sequence != 0) {
    uint64_t size = options.tree_size;
    if (size == 0) {
      std::string note;
      if (Status status = (*log)->LatestSignedCheckpoint(&size, &note); !status.ok()) return status;
      if (size == 0) return Status::NotFound("no checkpoint is signed yet: give --tree-size");
    }
    InclusionProof proof;
    if (Status status = BuildInclusionProof(log->get(), options.sequence, size, &proof); !status.ok()) {
      return status;
    }
    *json = InclusionProofJson(proof);
    return Status::Ok();
  }
  ConsistencyProof proof;
  if (Status status = BuildConsistencyProof(log->get(), options.from_size, options.to_size, &proof);
      !status.ok()) {
    return status;
  }
  *json = ConsistencyProofJson(proof);
  return Status::Ok();
}

Status SignedCheckpointNote(const std::string& data_dir, uint64_t tree_size, std::string* note) {
  Result<std::unique_ptr<EventLog>> log = OpenReadOnly(data_dir);
  if (!log.ok()) return log.status();
  uint64_t size = 0;
  if (tree_size == 0) {
    if (Status status = (*log)->LatestSignedCheckpoint(&size, note); !status.ok()) return status;
  } else {
    Status status = (*log)->ForEachSignedCheckpoint(tree_size, [&](uint64_t found, std::string_view text) {
      if (found == tree_size) {
        size = found;
        note->assign(text);
      }
      return false;
    });
    if (!status.ok()) return status;
  }
  if (size == 0) {
    return Status::NotFound(tree_size == 0 ? std::string("no checkpoint is signed yet")
                                           : "no checkpoint is signed at " + std::to_string(tree_size) + " events");
  }
  return Status::Ok();
}

}  // namespace purser
