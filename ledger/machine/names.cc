// Names of request and event types, for logs, metrics and exports.
#include <array>
#include <type_traits>
#include <utility>

#include "ledger/machine/commands.h"
#include "ledger/machine/events.h"

namespace purser {

namespace {

template <typename T>
constexpr const char* RequestName() {
  if constexpr (std::is_same_v<T, cmd::OpenAccount>) return "open_account";
  else if constexpr (std::is_same_v<T, cmd::SetCaps>) return "set_caps";
  else if constexpr (std::is_same_v<T, cmd::Freeze>) return "freeze";
  else if constexpr (std::is_same_v<T, cmd::Unfreeze>) return "unfreeze";
  else if constexpr (std::is_same_v<T, cmd::Deposit>) return "deposit";
  else if constexpr (std::is_same_v<T, cmd::Reserve>) return "reserve";
  else if constexpr (std::is_same_v<T, cmd::Settle>) return "settle";
  else if constexpr (std::is_same_v<T, cmd::Void>) return "void";
  else if constexpr (std::is_same_v<T, cmd::Extend>) return "extend";
  else if constexpr (std::is_same_v<T, cmd::RecordUsage>) return "usage";
  else if constexpr (std::is_same_v<T, cmd::Refund>) return "refund";
  else if constexpr (std::is_same_v<T, cmd::RecordRevenue>) return "revenue";
  else if constexpr (std::is_same_v<T, cmd::Adjust>) return "adjustment";
  else if constexpr (std::is_same_v<T, cmd::SetPrice>) return "set_price";
  else if constexpr (std::is_same_v<T, cmd::SetBaseline>) return "set_baseline";
  else if constexpr (std::is_same_v<T, cmd::IssueKey>) return "issue_key";
  else if constexpr (std::is_same_v<T, cmd::RevokeKey>) return "revoke_key";
  else if constexpr (std::is_same_v<T, cmd::RegisterWebhook>) return "register_webhook";
  else if constexpr (std::is_same_v<T, cmd::RemoveWebhook>) return "remove_webhook";
  else if constexpr (std::is_same_v<T, cmd::IngestDailyReport>) return "daily_report";
  else if constexpr (std::is_same_v<T, cmd::Transfer>) return "transfer";
  else if constexpr (std::is_same_v<T, cmd::IndexTagKeys>) return "index_tag_keys";
  else if constexpr (std::is_same_v<T, cmd::UpdateWebhook>) return "update_webhook";
  else if constexpr (std::is_same_v<T, cmd::ExpireDue>) return "expire";
  else if constexpr (std::is_same_v<T, cmd::CountRejections>) return "count_rejections";
  else if constexpr (std::is_same_v<T, query::Authenticate>) return "authenticate";
  else if constexpr (std::is_same_v<T, query::GetAccount>) return "get_account";
  else if constexpr (std::is_same_v<T, query::ListAccounts>) return "list_accounts";
  else if constexpr (std::is_same_v<T, query::GetBalance>) return "get_balance";
  else if constexpr (std::is_same_v<T, query::GetReservation>) return "get_reservation";
  else if constexpr (std::is_same_v<T, query::ListReservations>) return "list_reservations";
  else if constexpr (std::is_same_v<T, query::GetSpend>) return "get_spend";
  else if constexpr (std::is_same_v<T, query::ListAlerts>) return "list_alerts";
  else if constexpr (std::is_same_v<T, query::ListPrices>) return "list_prices";
  else if constexpr (std::is_same_v<T, query::EstimateCost>) return "estimate";
  else if constexpr (std::is_same_v<T, query::ListKeys>) return "list_keys";
  else if constexpr (std::is_same_v<T, query::ListWebhooks>) return "list_webhooks";
  else if constexpr (std::is_same_v<T, query::GetPnl>) return "get_pnl";
  else if constexpr (std::is_same_v<T, query::GetChainHead>) return "chain_head";
  else if constexpr (std::is_same_v<T, query::GetDigest>) return "digest";
  else if constexpr (std::is_same_v<T, query::AccountTree>) return "account_tree";
  else if constexpr (std::is_same_v<T, query::DailyReports>) return "daily_reports";
  else if constexpr (std::is_same_v<T, query::GetBurnRate>) return "burn_rate";
  else if constexpr (std::is_same_v<T, query::ListActiveRuns>) return "active_runs";
  else if constexpr (std::is_same_v<T, query::GetBaseline>) return "get_baseline";
  else if constexpr (std::is_same_v<T, query::ListAnomalies>) return "anomalies";
  else if constexpr (std::is_same_v<T, query::GetEfficiency>) return "efficiency";
  else if constexpr (std::is_same_v<T, query::GetTrends>) return "trends";
  else if constexpr (std::is_same_v<T, query::GetLeaderboard>) return "leaderboard";
  else if constexpr (std::is_same_v<T, query::GetStats>) return "stats";
  else if constexpr (std::is_same_v<T, query::GetOverview>) return "overview";
  else if constexpr (std::is_same_v<T, query::AccountMetrics>) return "account_metrics";
  else if constexpr (std::is_same_v<T, query::GetWebhook>) return "get_webhook";
  else if constexpr (std::is_same_v<T, query::WebhookTable>) return "webhook_table";
  else static_assert(sizeof(T) == 0, "name every request type");
}

template <typename T>
constexpr const char* EventName() {
  if constexpr (std::is_same_v<T, event::AccountOpened>) return "AccountOpened";
  else if constexpr (std::is_same_v<T, event::AccountFrozen>) return "AccountFrozen";
  else if constexpr (std::is_same_v<T, event::AccountUnfrozen>) return "AccountUnfrozen";
  else if constexpr (std::is_same_v<T, event::CapsSet>) return "CapsSet";
  else if constexpr (std::is_same_v<T, event::Deposited>) return "Deposited";
  else if constexpr (std::is_same_v<T, event::Reserved>) return "Reserved";
  else if constexpr (std::is_same_v<T, event::Settled>) return "Settled";
  else if constexpr (std::is_same_v<T, event::Voided>) return "Voided";
  else if constexpr (std::is_same_v<T, event::Expired>) return "Expired";
  else if constexpr (std::is_same_v<T, event::Extended>) return "Extended";
  else if constexpr (std::is_same_v<T, event::Refunded>) return "Refunded";
  else if constexpr (std::is_same_v<T, event::UsageCharged>) return "UsageCharged";
  else if constexpr (std::is_same_v<T, event::RevenueRecorded>) return "RevenueRecorded";
  else if constexpr (std::is_same_v<T, event::PriceSet>) return "PriceSet";
  else if constexpr (std::is_same_v<T, event::BaselineSet>) return "BaselineSet";
  else if constexpr (std::is_same_v<T, event::AlertRaised>) return "AlertRaised";
  else if constexpr (std::is_same_v<T, event::Adjusted>) return "Adjusted";
  else if constexpr (std::is_same_v<T, event::RejectionsCounted>) return "RejectionsCounted";
  else if constexpr (std::is_same_v<T, event::ApiKeyIssued>) return "ApiKeyIssued";
  else if constexpr (std::is_same_v<T, event::ApiKeyRevoked>) return "ApiKeyRevoked";
  else if constexpr (std::is_same_v<T, event::WebhookRegistered>) return "WebhookRegistered";
  else if constexpr (std::is_same_v<T, event::WebhookRemoved>) return "WebhookRemoved";
  else if constexpr (std::is_same_v<T, event::DailyReportIngested>) return "DailyReportIngested";
  else if constexpr (std::is_same_v<T, event::Transferred>) return "Transferred";
  else if constexpr (std::is_same_v<T, event::TagKeysIndexed>) return "TagKeysIndexed";
  else if constexpr (std::is_same_v<T, event::WebhookUpdated>) return "WebhookUpdated";
  else static_assert(sizeof(T) == 0, "name every event type");
}

// Commands come first in RequestBody, queries after them from Authenticate on.
template <size_t I = 0>
constexpr size_t FirstQueryIndex() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, RequestBody>, query::Authenticate>) {
    return I;
  } else {
    return FirstQueryIndex<I + 1>();
  }
}

template <size_t... I>
constexpr std::array<const char*, sizeof...(I)> RequestNames(std::index_sequence<I...>) {
  return {RequestName<std::variant_alternative_t<I, RequestBody>>()...};
}

}  // namespace

const char* RequestTypeNameAt(size_t index) {
  static constexpr auto kNames = RequestNames(std::make_index_sequence<kRequestTypeCount>{});
  return index < kNames.size() ? kNames[index] : "unknown";
}

const char* RequestTypeName(const RequestBody& body) {
  return std::visit([](const auto& b) { return RequestName<std::decay_t<decltype(b)>>(); }, body);
}

bool IsCommand(const RequestBody& body) { return body.index() < FirstQueryIndex(); }

std::string_view LeaderboardMetricName(LeaderboardMetric metric) {
  switch (metric) {
    case LeaderboardMetric::kSpend: return "spend";
    case LeaderboardMetric::kEfficiency: return "efficiency";
    case LeaderboardMetric::kWaste: return "waste";
  }
  return "spend";
}

bool ParseLeaderboardMetric(std::string_view text, LeaderboardMetric* metric) {
  for (LeaderboardMetric m :
       {LeaderboardMetric::kSpend, LeaderboardMetric::kEfficiency, LeaderboardMetric::kWaste}) {
    if (LeaderboardMetricName(m) == text) {
      *metric = m;
      return true;
    }
  }
  return false;
}

const char* EventTypeName(const EventBody& body) {
  return std::visit([](const auto& b) { return EventName<std::decay_t<decltype(b)>>(); }, body);
}

}  // namespace purser
