// Value types shared by commands, events, state and queries.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace purser {

// Numbers match schema/events.capnp.
enum class AccountKind : uint8_t { kOrg = 0, kTeam = 1, kAgent = 2, kWorkflow = 3 };
enum class OnExpiry : uint8_t { kInherit = 0, kRelease = 1, kCharge = 2 };
enum class RunawayAction : uint8_t { kInherit = 0, kAlert = 1, kFreeze = 2 };
enum class Outcome : uint8_t { kNone = 0, kSuccess = 1, kError = 2, kCancelled = 3 };
enum class Role : uint8_t { kReader = 0, kWriter = 1, kAdmin = 2 };
enum class AlertType : uint8_t { kBudgetThreshold = 0, kOverrun = 1, kAnomaly = 2, kRunaway = 3 };
enum class CapWindow : uint8_t { kNone = 0, kDaily = 1, kMonthly = 2, kLifetime = 3 };
enum class ChargeKind : uint8_t { kReservation = 0, kUsage = 1 };
enum class ReservationStatus : uint8_t { kPending = 0, kSettled = 1, kVoided = 2, kExpired = 3 };

std::string_view AccountKindName(AccountKind kind);
bool ParseAccountKind(std::string_view text, AccountKind* kind);
std::string_view OnExpiryName(OnExpiry value);
std::string_view RunawayActionName(RunawayAction value);
std::string_view OutcomeName(Outcome value);
bool ParseOutcome(std::string_view text, Outcome* outcome);
std::string_view RoleName(Role role);
bool ParseRole(std::string_view text, Role* role);
std::string_view AlertTypeName(AlertType type);
bool ParseAlertType(std::string_view text, AlertType* type);
// A list's order by its request's `order`: "oldest" (first) or "newest".
bool ParseNewestFirst(std::string_view order, bool* newest_first);
std::string_view CapWindowName(CapWindow window);
std::string_view ReservationStatusName(ReservationStatus status);

struct Tag {
  std::string key;
  std::string value;
  bool operator==(const Tag&) const = default;
};
// Sorted by key, keys unique.
using Tags = std::vector<Tag>;

struct TokenCounts {
  int64_t input = 0;
  int64_t output = 0;
  int64_t cached_input = 0;
  int64_t cache_write = 0;
  int64_t reasoning = 0;
  bool operator==(const TokenCounts&) const = default;
  bool IsZero() const { return *this == TokenCounts{}; }
};

// Micro-USD per million tokens; -1 = not set (falls back, see Cost()).
struct PriceRates {
  int64_t input_per_mtok = 0;
  int64_t output_per_mtok = 0;
  int64_t cached_input_per_mtok = -1;
  int64_t cache_write_per_mtok = -1;
  int64_t reasoning_per_mtok = -1;
  bool operator==(const PriceRates&) const = default;
};

struct Dimensions {
  std::string model;
  std::string action;
  std::string waste;
  Outcome outcome = Outcome::kNone;
  std::string run_id;
  Tags tags;
  bool operator==(const Dimensions&) const = default;
};

inline constexpr int64_t kNoLimit = -1;

// The complete caps of an account. -1 = no limit / not set.
struct Caps {
  int64_t daily_limit_micros = kNoLimit;
  int64_t monthly_limit_micros = kNoLimit;
  int64_t hard_limit_micros = kNoLimit;
  int64_t max_inflight = kNoLimit;
  int64_t reservation_ttl_s = kNoLimit;
  std::vector<uint8_t> alert_thresholds_pct = {50, 75, 90, 100};
  OnExpiry on_expiry = OnExpiry::kInherit;
  RunawayAction runaway_action = RunawayAction::kInherit;
  std::string time_zone = "UTC";
  // Runaway detection (SPEC section 4); -1 = inherit from the parent (then
  // the defaults below), 0 = the rule is off.
  int64_t runaway_error_streak = kNoLimit;          // consecutive error outcomes
  int64_t runaway_burn_multiplier_bp = kNoLimit;    // 5-min burn vs the hour before
  int64_t runaway_min_micros_per_hour = kNoLimit;   // the hour's rate that arms the burn rule
  // Rate caps over the subtree in the current UTC minute; -1 = none.
  int64_t max_calls_per_minute = kNoLimit;
  int64_t max_tokens_per_minute = kNoLimit;
  // Degrade advice when spent + held passes this share of a cap; -1 = none.
  int64_t degrade_at_pct = kNoLimit;
  bool operator==(const Caps&) const = default;
};

// Effective defaults of the runaway rules when no account on the path sets them.
inline constexpr int64_t kDefaultRunawayErrorStreak = 5;
inline constexpr int64_t kDefaultRunawayBurnMultiplierBp = 30'000;     // 3x
inline constexpr int64_t kDefaultRunawayMinMicrosPerHour = 1'000'000;  // 1 USD/h

using Sha256Digest = std::array<uint8_t, 32>;
// The digest's bytes, for hashing or storing it.
inline std::string_view DigestBytes(const Sha256Digest& digest) {
  return std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size());
}

std::string HexEncode(const uint8_t* data, size_t size);
inline std::string HexEncode(const Sha256Digest& digest) {
  return HexEncode(digest.data(), digest.size());
}
bool HexDecode(std::string_view hex, Sha256Digest* out);

}  // namespace purser
