// The C++ enums and their Cap'n Proto twins (schema/events.capnp,
// schema/purser.capnp) are converted by value in the codecs; these checks
// stop the build when one side gains, loses or renumbers a value.

#include "events.capnp.h"
#include "ledger/base/result_code.h"
#include "ledger/base/types.h"
#include "ledger/machine/commands.h"
#include "purser.capnp.h"

namespace purser {
namespace {

template <typename A, typename B>
constexpr bool Same(A a, B b) {
  return static_cast<uint32_t>(a) == static_cast<uint32_t>(b);
}

namespace s = ::purser::schema;
namespace r = ::purser::rpc;

static_assert(Same(AccountKind::kOrg, s::AccountKind::ORG) && Same(AccountKind::kTeam, s::AccountKind::TEAM) &&
              Same(AccountKind::kAgent, s::AccountKind::AGENT) &&
              Same(AccountKind::kWorkflow, s::AccountKind::WORKFLOW));
static_assert(Same(OnExpiry::kInherit, s::OnExpiry::INHERIT) && Same(OnExpiry::kRelease, s::OnExpiry::RELEASE) &&
              Same(OnExpiry::kCharge, s::OnExpiry::CHARGE));
static_assert(Same(RunawayAction::kInherit, s::RunawayAction::INHERIT) &&
              Same(RunawayAction::kAlert, s::RunawayAction::ALERT) &&
              Same(RunawayAction::kFreeze, s::RunawayAction::FREEZE));
static_assert(Same(Outcome::kNone, s::Outcome::NONE) && Same(Outcome::kSuccess, s::Outcome::SUCCESS) &&
              Same(Outcome::kError, s::Outcome::ERROR) && Same(Outcome::kCancelled, s::Outcome::CANCELLED));
static_assert(Same(Role::kReader, s::Role::READER) && Same(Role::kWriter, s::Role::WRITER) &&
              Same(Role::kAdmin, s::Role::ADMIN));
static_assert(Same(AlertType::kBudgetThreshold, s::AlertType::BUDGET_THRESHOLD) &&
              Same(AlertType::kOverrun, s::AlertType::OVERRUN) && Same(AlertType::kAnomaly, s::AlertType::ANOMALY) &&
              Same(AlertType::kRunaway, s::AlertType::RUNAWAY));
static_assert(Same(CapWindow::kNone, s::CapWindow::NONE) && Same(CapWindow::kDaily, s::CapWindow::DAILY) &&
              Same(CapWindow::kMonthly, s::CapWindow::MONTHLY) && Same(CapWindow::kLifetime, s::CapWindow::LIFETIME));
static_assert(Same(ChargeKind::kReservation, s::ChargeKind::RESERVATION) &&
              Same(ChargeKind::kUsage, s::ChargeKind::USAGE));
static_assert(Same(LeaderboardMetric::kSpend, r::LeaderboardMetric::SPEND) &&
              Same(LeaderboardMetric::kEfficiency, r::LeaderboardMetric::EFFICIENCY) &&
              Same(LeaderboardMetric::kWaste, r::LeaderboardMetric::WASTE));
static_assert(Same(GroupBy::kNone, r::GroupBy::NONE) && Same(GroupBy::kModel, r::GroupBy::MODEL) &&
              Same(GroupBy::kAction, r::GroupBy::ACTION) && Same(GroupBy::kWaste, r::GroupBy::WASTE) &&
              Same(GroupBy::kChild, r::GroupBy::CHILD) && Same(GroupBy::kDay, r::GroupBy::DAY) &&
              Same(GroupBy::kTag, r::GroupBy::TAG) && Same(GroupBy::kOutcome, r::GroupBy::OUTCOME) &&
              Same(GroupBy::kRun, r::GroupBy::RUN));
static_assert(Same(ResultCode::kOk, r::ResultCode::OK) &&
              Same(ResultCode::kInvalidArgument, r::ResultCode::INVALID_ARGUMENT) &&
              Same(ResultCode::kNotFound, r::ResultCode::NOT_FOUND) &&
              Same(ResultCode::kAlreadyExists, r::ResultCode::ALREADY_EXISTS) &&
              Same(ResultCode::kIdempotencyConflict, r::ResultCode::IDEMPOTENCY_CONFLICT) &&
              Same(ResultCode::kPermissionDenied, r::ResultCode::PERMISSION_DENIED) &&
              Same(ResultCode::kAccountFrozen, r::ResultCode::ACCOUNT_FROZEN) &&
              Same(ResultCode::kInsufficientFunds, r::ResultCode::INSUFFICIENT_FUNDS) &&
              Same(ResultCode::kDailyCapExceeded, r::ResultCode::DAILY_CAP_EXCEEDED) &&
              Same(ResultCode::kMonthlyCapExceeded, r::ResultCode::MONTHLY_CAP_EXCEEDED) &&
              Same(ResultCode::kHardLimitExceeded, r::ResultCode::HARD_LIMIT_EXCEEDED) &&
              Same(ResultCode::kInflightLimitReached, r::ResultCode::INFLIGHT_LIMIT_REACHED) &&
              Same(ResultCode::kReservationNotPending, r::ResultCode::RESERVATION_NOT_PENDING) &&
              Same(ResultCode::kRefundExceedsCharged, r::ResultCode::REFUND_EXCEEDS_CHARGED) &&
              Same(ResultCode::kUnauthenticated, r::ResultCode::UNAUTHENTICATED) &&
              Same(ResultCode::kUnavailable, r::ResultCode::UNAVAILABLE) &&
              Same(ResultCode::kNotImplemented, r::ResultCode::NOT_IMPLEMENTED) &&
              Same(ResultCode::kRateLimited, r::ResultCode::RATE_LIMITED) &&
              Same(ResultCode::kNotLeader, r::ResultCode::NOT_LEADER));
// A code added in C++ without its twin (and its check above) fails here;
// one added to the schema alone is refused by the RPC decoder's range check.
static_assert(kResultCodeCount == static_cast<uint32_t>(r::ResultCode::NOT_LEADER) + 1,
              "a result code was added: add it on both sides and to the checks above");

}  // namespace
}  // namespace purser
