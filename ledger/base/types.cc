#include "ledger/base/types.h"

namespace purser {

std::string_view AccountKindName(AccountKind kind) {
  switch (kind) {
    case AccountKind::kOrg: return "org";
    case AccountKind::kTeam: return "team";
    case AccountKind::kAgent: return "agent";
    case AccountKind::kWorkflow: return "workflow";
  }
  return "org";
}

bool ParseAccountKind(std::string_view text, AccountKind* kind) {
  for (AccountKind k : {AccountKind::kOrg, AccountKind::kTeam, AccountKind::kAgent,
                        AccountKind::kWorkflow}) {
    if (AccountKindName(k) == text) {
      *kind = k;
      return true;
    }
  }
  return false;
}

std::string_view OnExpiryName(OnExpiry value) {
  switch (value) {
    case OnExpiry::kInherit: return "inherit";
    case OnExpiry::kRelease: return "release";
    case OnExpiry::kCharge: return "charge";
  }
  return "inherit";
}

std::string_view RunawayActionName(RunawayAction value) {
  switch (value) {
    case RunawayAction::kInherit: return "inherit";
    case RunawayAction::kAlert: return "alert";
    case RunawayAction::kFreeze: return "freeze";
  }
  return "inherit";
}

std::string_view OutcomeName(Outcome value) {
  switch (value) {
    case Outcome::kNone: return "";
    case Outcome::kSuccess: return "success";
    case Outcome::kError: return "error";
    case Outcome::kCancelled: return "cancelled";
  }
  return "";
}

bool ParseOutcome(std::string_view text, Outcome* outcome) {
  for (Outcome o : {Outcome::kSuccess, Outcome::kError, Outcome::kCancelled}) {
    if (OutcomeName(o) == text) {
      *outcome = o;
      return true;
    }
  }
  return false;
}

std::string_view RoleName(Role role) {
  switch (role) {
    case Role::kReader: return "reader";
    case Role::kWriter: return "writer";
    case Role::kAdmin: return "admin";
  }
  return "reader";
}

bool ParseRole(std::string_view text, Role* role) {
  for (Role r : {Role::kReader, Role::kWriter, Role::kAdmin}) {
    if (RoleName(r) == text) {
      *role = r;
      return true;
    }
  }
  return false;
}

std::string_view AlertTypeName(AlertType type) {
  switch (type) {
    case AlertType::kBudgetThreshold: return "budget_threshold";
    case AlertType::kOverrun: return "overrun";
    case AlertType::kAnomaly: return "anomaly";
    case AlertType::kRunaway: return "runaway";
  }
  return "budget_threshold";
}

bool ParseAlertType(std::string_view text, AlertType* type) {
  for (AlertType t : {AlertType::kBudgetThreshold, AlertType::kOverrun, AlertType::kAnomaly,
                      AlertType::kRunaway}) {
    if (AlertTypeName(t) == text) {
      *type = t;
      return true;
    }
  }
  return false;
}

bool ParseNewestFirst(std::string_view order, bool* newest_first) {
  if (order != "oldest" && order != "newest") return false;
  *newest_first = order == "newest";
  return true;
}

std::string_view CapWindowName(CapWindow window) {
  switch (window) {
    case CapWindow::kNone: return "";
    case CapWindow::kDaily: return "daily";
    case CapWindow::kMonthly: return "monthly";
    case CapWindow::kLifetime: return "lifetime";
  }
  return "";
}

std::string_view ReservationStatusName(ReservationStatus status) {
  switch (status) {
    case ReservationStatus::kPending: return "pending";
    case ReservationStatus::kSettled: return "settled";
    case ReservationStatus::kVoided: return "voided";
    case ReservationStatus::kExpired: return "expired";
  }
  return "pending";
}

std::string HexEncode(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

bool HexDecode(std::string_view hex, Sha256Digest* out) {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < 32; ++i) {
    int high = nibble(hex[2 * i]);
    int low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return false;
    (*out)[i] = static_cast<uint8_t>(high << 4 | low);
  }
  return true;
}

}  // namespace purser
