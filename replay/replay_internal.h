// Shared by the replay tools' sources; not part of replay.h's interface.
#pragma once

#include <memory>
#include <string>
#include <unordered_set>
#include <utility>

#include "ledger/base/status.h"
#include "ledger/log/event_log.h"
#include "ledger/machine/events.h"

namespace purser {

// Opens a database read-only (NotFound when the directory does not exist).
Result<std::unique_ptr<EventLog>> OpenReadOnly(const std::string& dir);

// The accounts of one subtree, learned from AccountOpened events while a log
// is read in order. An empty root means every account.
class SubtreeScope {
 public:
  explicit SubtreeScope(std::string root) : root_(std::move(root)) {}
  void Observe(const event::AccountOpened& e) {
    if (root_.empty()) return;
    if (e.account == root_ || (!e.parent.empty() && members_.contains(e.parent))) {
      members_.insert(e.account);
    }
  }
  bool Contains(const std::string& account) const { return root_.empty() || members_.contains(account); }
  // Whether the root was met (always, for every account).
  bool found() const { return root_.empty() || !members_.empty(); }

 private:
  std::string root_;
  std::unordered_set<std::string> members_;
};

}  // namespace purser
