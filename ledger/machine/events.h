// The events of the log as C++ values. schema/events.capnp is the on-disk
// form; ledger/event_codec.h converts between the two. Field meanings are
// documented in the schema; units are in the names here.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "ledger/base/types.h"

namespace purser {
namespace event {

struct AccountOpened {
  std::string account;
  std::string parent;
  AccountKind kind = AccountKind::kOrg;
  std::string name;
  bool wallet = false;
  std::vector<std::string> indexed_tag_keys;
  uint64_t request_hash = 0;
};

struct AccountFrozen {
  std::string account;
  std::string reason;
};

struct AccountUnfrozen {
  std::string account;
};

struct CapsSet {
  std::string account;
  Caps caps;
};

struct Deposited {
  std::string deposit_id;
  std::string account;
  int64_t amount_micros = 0;
  std::string reference;
  uint64_t request_hash = 0;
};

struct Reserved {
  std::string reservation_id;
  std::string account;
  std::string funding_account;
  int64_t amount_micros = 0;
  int64_t expires_at_us = 0;
  int64_t ttl_s = 0;
  std::string run_id;
  std::string action;
  Tags tags;
  std::string estimate_model;
  int64_t estimate_input_tokens = 0;
  int64_t estimate_max_output_tokens = 0;
  int64_t headroom_after_micros = 0;
  uint64_t request_hash = 0;
  std::string advice_account;  // degrade advice: the account whose cap triggered it
};

struct Settled {
  std::string reservation_id;
  std::string account;
  int64_t cost_micros = 0;
  int64_t released_micros = 0;
  int64_t overrun_micros = 0;
  bool late = false;
  int64_t expiry_charge_reversed_micros = 0;
  Dimensions dimensions;
  TokenCounts tokens;
  uint64_t request_hash = 0;
};

struct Voided {
  std::string reservation_id;
  int64_t released_micros = 0;
  std::string reason;
};

struct Expired {
  std::string reservation_id;
  int64_t released_micros = 0;
  int64_t charged_micros = 0;
  std::string account;  // the reservation's (empty in records of older builds)
};

struct Extended {
  std::string reservation_id;
  int64_t expires_at_us = 0;
  int64_t ttl_s = 0;
};

struct Refunded {
  std::string refund_id;
  ChargeKind target_kind = ChargeKind::kReservation;
  std::string target_id;
  int64_t amount_micros = 0;
  std::string reason;
  uint64_t request_hash = 0;
};

struct UsageCharged {
  std::string usage_id;
  std::string account;
  int64_t cost_micros = 0;
  int64_t overrun_micros = 0;
  Dimensions dimensions;
  TokenCounts tokens;
  uint64_t request_hash = 0;
  int64_t occurred_at_us = 0;  // imported history: when the spend happened; 0 = now
};

struct RevenueRecorded {
  std::string revenue_id;
  std::string account;
  int64_t amount_micros = 0;
  std::string category;
  std::string reference;
  uint64_t request_hash = 0;
};

struct PriceSet {
  std::string model;
  PriceRates rates;
  uint64_t version = 0;
};

struct BaselineSet {
  std::string account;
  int64_t micros_per_hour = 0;
  int64_t multiplier_bp = 0;
};

struct AlertRaised {
  uint64_t alert_id = 0;
  std::string account;
  AlertType type = AlertType::kBudgetThreshold;
  std::string severity;
  uint8_t threshold_pct = 0;
  CapWindow window = CapWindow::kNone;
  int64_t window_instance = 0;
  int64_t limit_micros = 0;
  int64_t value_micros = 0;
  std::string message;
};

struct Adjusted {
  std::string adjustment_id;
  std::string account;
  int64_t amount_micros = 0;
  std::string reason;
  uint64_t request_hash = 0;
};

struct RejectionsCounted {
  std::string account;
  int64_t minute = 0;
  uint32_t code = 0;
  uint64_t count = 0;
};

struct ApiKeyIssued {
  std::string key_id;
  std::string account;  // empty = global
  Role role = Role::kReader;
  std::string label;
  Sha256Digest secret_sha256{};
  std::string request_id;
  std::string rotated_from;
  int64_t old_key_valid_until_us = 0;
  uint64_t request_hash = 0;
};

struct ApiKeyRevoked {
  std::string key_id;
};

struct WebhookRegistered {
  std::string webhook_id;
  std::string url;
  std::vector<std::string> events;
  std::string account;
  std::string request_id;
  uint64_t request_hash = 0;
  Sha256Digest secret_sha256{};
};

struct WebhookRemoved {
  std::string webhook_id;
};

struct NamedAmount {
  std::string name;
  int64_t amount_micros = 0;
  bool operator==(const NamedAmount&) const = default;
};

struct DailyReportIngested {
  std::string report_id;
  std::string account;
  std::string date;
  int64_t total_tokens = 0;
  int64_t total_cost_micros = 0;
  int64_t total_requests = 0;
  std::vector<NamedAmount> cost_by_model;
  std::vector<NamedAmount> cost_by_action;
  std::vector<NamedAmount> waste_categories;
  int64_t efficiency_score_millionths = -1;
  uint64_t request_hash = 0;
  std::string metadata_json;
};

struct Transferred {
  std::string transfer_id;
  std::string from_account;
  std::string to_account;
  int64_t amount_micros = 0;
  std::string reason;
  uint64_t request_hash = 0;
};

struct TagKeysIndexed {
  std::string account;            // a root
  std::vector<std::string> keys;  // added to its indexed tag keys
};

struct WebhookUpdated {
  std::string webhook_id;
  std::string url;                  // the complete definition after the change
  std::vector<std::string> events;
  bool enabled = true;
};

}  // namespace event

// The order of the alternatives is the order of the union in the schema.
using EventBody =
    std::variant<event::AccountOpened, event::AccountFrozen, event::AccountUnfrozen,
                 event::CapsSet, event::Deposited, event::Reserved, event::Settled,
                 event::Voided, event::Expired, event::Extended, event::Refunded,
                 event::UsageCharged, event::RevenueRecorded, event::PriceSet,
                 event::BaselineSet, event::AlertRaised, event::Adjusted,
                 event::RejectionsCounted, event::ApiKeyIssued, event::ApiKeyRevoked,
                 event::WebhookRegistered, event::WebhookRemoved, event::DailyReportIngested,
                 event::Transferred, event::TagKeysIndexed, event::WebhookUpdated>;

struct Event {
  uint64_t sequence = 0;
  int64_t timestamp_us = 0;
  std::string actor;
  uint64_t price_version = 0;
  EventBody body;
};

// "AccountOpened", "Settled", ... for logs and exports.
const char* EventTypeName(const EventBody& body);

}  // namespace purser
