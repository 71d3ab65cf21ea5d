// Audit proofs over HTTP (API.md, Operations; SPEC section 9): signed
// checkpoints, inclusion and consistency proofs. Who may ask is checked by
// the ledger first (a read of the event's account for an inclusion proof,
// the global admin's chain-head read otherwise); the answer is then read
// from the stored tree on the API's background thread.

#include "http/http_internal.h"
#include "http/proof_json.h"
#include "http/work_queue.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/signed_note.h"

namespace purser {

using Plan = HttpApi::Plan;

namespace {

HttpResponse FromStatus(const Status& status) {
  ResultCode code = status.code() == StatusCode::kInvalidArgument ? ResultCode::kInvalidArgument
                    : status.code() == StatusCode::kNotFound      ? ResultCode::kNotFound
                                                                  : ToResultCode(status);
  return Refuse(code, status.message());
}

// `checks` run first with the caller's key; when one of them passes,
// `answer` runs on the background thread.
Plan AfterChecks(const RouteContext& c, std::vector<RequestBody> checks,
                 std::function<HttpResponse()> answer) {
  Plan plan;
  plan.bodies = std::move(checks);
  WorkQueue* work = c.work;
  plan.async_format = [work, answer = std::move(answer)](std::vector<Reply>& replies,
                                                         std::function<void(HttpResponse&&)> respond) {
    bool allowed = false;
    for (const Reply& reply : replies) allowed = allowed || reply.ok();
    if (!allowed) {
      respond(ErrorResponse(replies[0]));
      return;
    }
    auto shared = std::make_shared<std::function<void(HttpResponse&&)>>(std::move(respond));
    if (!work->Post([answer, shared] {
          try {
            (*shared)(answer());
          } catch (const std::exception& e) {
            (*shared)(InternalError(e.what()));
          }
        })) {
      (*shared)(Refuse(ResultCode::kUnavailable, "too many audit requests are waiting"));
    }
  };
  return plan;
}

std::vector<RequestBody> GlobalAdminCheck() { return {query::GetChainHead{}}; }

Plan LatestCheckpointRoute(const RouteContext& c) {
  Ledger* ledger = c.sequencer;
  return AfterChecks(c, GlobalAdminCheck(), [ledger] {
    std::string note;
    if (Status status = ledger->LatestSignedCheckpoint(&note); !status.ok()) return FromStatus(status);
    HttpResponse response;
    response.body = std::move(note);
    response.content_type = "text/plain; charset=utf-8";
    return response;
  });
}

Plan CheckpointListRoute(const RouteContext& c) {
  int64_t since = 0;
  if (c.Has("since")) {
    std::optional<int64_t> parsed = ParseTimestamp(c.Param("since"));
    if (!parsed) return Invalid400("since must be RFC 3339 UTC");
    since = *parsed;
  }
  int64_t limit = 0;
  if (!IntParam(c, "limit", 100, 1, 1000, &limit)) return Invalid400("limit must be in 1..1000");
  Ledger* ledger = c.sequencer;
  return AfterChecks(c, GlobalAdminCheck(), [ledger, since, limit] {
    std::vector<std::string> notes;
    if (Status status = ledger->SignedCheckpoints(since, static_cast<size_t>(limit), &notes);
        !status.ok()) {
      return FromStatus(status);
    }
    JsonWriter w;
    w.BeginObject().Key("checkpoints").BeginArray();
    for (const std::string& note : notes) {
      LogCheckpoint checkpoint;
      if (!ParseSignedCheckpoint(note, &checkpoint).ok()) continue;
      w.BeginObject().Field("tree_size", checkpoint.tree_size);
      w.Field("time", FormatTimestamp(checkpoint.time_us)).Field("root", HexEncode(checkpoint.root));
      w.Field("note", note).EndObject();
    }
    w.EndArray().EndObject();
    return Json(200, w.Take());
  });
}

Plan InclusionRoute(const RouteContext& c) {
  int64_t sequence = 0;
  int64_t tree_size = 0;
  if (!c.Has("seq") || !IntParam(c, "seq", 0, 1, INT64_MAX, &sequence)) {
    return Invalid400("seq must be an event's sequence number (1 or more)");
  }
  if (!IntParam(c, "tree_size", 0, 1, INT64_MAX, &tree_size)) {
    return Invalid400("tree_size must be 1 or more (default: the newest signed checkpoint's)");
  }
  // Whose event it is decides who may have its proof: a key that sees one
  // of its accounts; the service's own events, the global admin.
  std::vector<std::string> accounts;
  if (Status status = c.sequencer->EventAccounts(static_cast<uint64_t>(sequence), &accounts);
      !status.ok()) {
    return Plan::Now(FromStatus(status));
  }
  std::vector<RequestBody> checks;
  for (const std::string& account : accounts) checks.push_back(query::GetAccount{account});
  if (checks.empty()) checks = GlobalAdminCheck();
  Ledger* ledger = c.sequencer;
  return AfterChecks(c, std::move(checks), [ledger, sequence, tree_size] {
    InclusionProof proof;
    if (Status status = ledger->ProveInclusion(static_cast<uint64_t>(sequence),
                                               static_cast<uint64_t>(tree_size), &proof);
        !status.ok()) {
      return FromStatus(status);
    }
    return Json(200, InclusionProofJson(proof));
  });
}

Plan ConsistencyRoute(const RouteContext& c) {
  int64_t from = 0;
  int64_t to = 0;
  if (!c.Has("from") || !c.Has("to") || !IntParam(c, "from", 0, 1, INT64_MAX, &from) ||
      !IntParam(c, "to", 0, 1, INT64_MAX, &to) || from > to) {
    return Invalid400("from and to must be tree sizes with 1 <= from <= to");
  }
  Ledger* ledger = c.sequencer;
  return AfterChecks(c, GlobalAdminCheck(), [ledger, from, to] {
    ConsistencyProof proof;
    if (Status status = ledger->ProveConsistency(static_cast<uint64_t>(from), static_cast<uint64_t>(to), &proof);
        !status.ok()) {
      return FromStatus(status);
    }
    return Json(200, ConsistencyProofJson(proof));
  });
}

}  // namespace

std::vector<Route> ProofRoutes() {
  return {
      {"GET", {"v1", "admin", "checkpoints", "latest"}, LatestCheckpointRoute},
      {"GET", {"v1", "admin", "checkpoints"}, CheckpointListRoute},
      {"GET", {"v1", "proofs", "inclusion"}, InclusionRoute},
      {"GET", {"v1", "admin", "proofs", "consistency"}, ConsistencyRoute},
  };
}

}  // namespace purser
