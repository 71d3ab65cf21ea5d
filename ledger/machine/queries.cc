// The queries of the state machine, answered from materialized state: the
// balance view, accounts, reservations, spend breakdowns, alerts, prices.
// None of them scans the log.

#include <algorithm>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/machine/machine_internal.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"

namespace purser {

namespace {

void AddRow(SpendGroup* group, const SpendTotals& row, int sign = 1) {
  auto add = [sign](int64_t* total, int64_t value) {
    *total = ReadSum(static_cast<__int128>(*total) + static_cast<__int128>(sign) * value);
  };
  add(&group->cost_micros, row.cost_micros);
  add(&group->calls, row.calls);
  add(&group->input_tokens, row.input_tokens);
  add(&group->output_tokens, row.output_tokens);
  add(&group->cached_input_tokens, row.cached_input_tokens);
  add(&group->cache_write_tokens, row.cache_write_tokens);
  add(&group->reasoning_tokens, row.reasoning_tokens);
}

Dimension DimensionOf(GroupBy group_by) {
  switch (group_by) {
    case GroupBy::kModel: return Dimension::kModel;
    case GroupBy::kAction: return Dimension::kAction;
    case GroupBy::kWaste: return Dimension::kWaste;
    case GroupBy::kOutcome: return Dimension::kOutcome;
    case GroupBy::kRun: return Dimension::kRun;
    default: return Dimension::kTotal;
  }
}

// Every account of the subtree of `root`, itself first.
std::vector<AccountIndex> Subtree(const State& state, AccountIndex root) {
  std::vector<AccountIndex> out{root};
  for (size_t i = 0; i < out.size(); ++i) {
    const auto& children = state.account(out[i]).children;
    out.insert(out.end(), children.begin(), children.end());
  }
  return out;
}

}  // namespace

Reply Machine::Handler::Do(const query::Authenticate&) {
  PrincipalView view;
  view.key_id = principal_.key_id;
  view.role = principal_.role;
  if (!principal_.global()) view.account = state_.account(principal_.root).id;
  return Ok(std::move(view), false);
}

BalanceView Machine::Handler::MakeBalanceView(AccountIndex index) const {
  const Account& account = state_.account(index);
  const int64_t day = DayOf(now_us_);
  BalanceView view;
  view.account = account.id;
  if (account.funding != kNoAccount) {
    const Account& wallet = state_.account(account.funding);
    view.funding_account = wallet.id;
    view.balance_micros = wallet.balance_micros;
    view.held_micros = wallet.wallet_held_micros;
    view.available_micros = wallet.balance_micros - wallet.wallet_held_micros;
  }
  view.own_held_micros = account.own_held_micros;
  view.spent_today_micros = account.SpentDay(day);
  view.spent_month_micros = account.SpentMonth(MonthOfDay(day));
  view.spent_total_micros = account.spent_total_micros;
  view.daily_limit_micros = account.caps.daily_limit_micros;
  view.monthly_limit_micros = account.caps.monthly_limit_micros;
  view.hard_limit_micros = account.caps.hard_limit_micros;
  view.headroom_micros = Headroom(state_, index, now_us_);
  view.inflight = account.inflight;
  view.frozen = account.frozen;
  return view;
}

AccountView Machine::Handler::MakeAccountView(AccountIndex index) const {
  const Account& account = state_.account(index);
  AccountView view;
  view.id = account.id;
  if (account.parent != kNoAccount) view.parent = state_.account(account.parent).id;
  view.kind = account.kind;
  view.name = account.name;
  view.wallet = account.wallet;
  view.frozen = account.frozen;
  view.frozen_reason = account.frozen_reason;
  view.caps = account.caps;
  view.balance = MakeBalanceView(index);
  view.indexed_tag_keys = account.indexed_tag_keys;
  return view;
}

AccountView Machine::Handler::MakeOpenedAccountView(
    AccountIndex index, const std::vector<std::string>& indexed_tag_keys) const {
  const Account& account = state_.account(index);
  AccountView view;
  view.id = account.id;
  if (account.parent != kNoAccount) view.parent = state_.account(account.parent).id;
  view.kind = account.kind;
  view.name = account.name;
  view.wallet = account.wallet;
  BalanceView& balance = view.balance;
  balance.account = account.id;
  if (account.funding != kNoAccount) {
    balance.funding_account = state_.account(account.funding).id;
    balance.balance_micros = account.opened_funding_balance_micros;
    balance.held_micros = account.opened_funding_held_micros;
    balance.available_micros =
        account.opened_funding_balance_micros - account.opened_funding_held_micros;
  }
  balance.headroom_micros = account.opened_headroom_micros;
  view.indexed_tag_keys = indexed_tag_keys;  // as declared by the create
  return view;
}

bool Machine::Handler::ScopeRoots(const std::string& id, std::vector<AccountIndex>* roots,
                                  Reply* error) const {
  roots->clear();
  if (!id.empty()) {
    AccountIndex index = Resolve(id, Access::kRead, error);
    if (index == kNoAccount) return false;
    roots->push_back(index);
  } else if (principal_.global()) {
    *roots = state_.roots;
  } else {
    roots->push_back(principal_.root);
  }
  return true;
}

Reply Machine::Handler::Do(const query::GetAccount& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  return Ok(MakeAccountView(index), false);
}

Reply Machine::Handler::Do(const query::ListAccounts& q) {
  std::vector<AccountIndex> indexes;
  if (q.parent.empty()) {
    if (principal_.global()) {
      indexes = state_.roots;
    } else {
      indexes = {principal_.root};
    }
  } else {
    Reply error;
    AccountIndex parent = Resolve(q.parent, Access::kRead, &error);
    if (parent == kNoAccount) return error;
    indexes = state_.account(parent).children;
  }
  std::sort(indexes.begin(), indexes.end(), [&](AccountIndex a, AccountIndex b) {
    return state_.account(a).id < state_.account(b).id;
  });
  if (indexes.size() > kListLimitMax) indexes.resize(kListLimitMax);
  AccountList list;
  for (AccountIndex index : indexes) list.accounts.push_back(MakeAccountView(index));
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::GetBalance& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  return Ok(MakeBalanceView(index), false);
}

ReservationView Machine::Handler::MakeReservationView(const Reservation& r) const {
  ReservationView view;
  view.reservation_id = r.id;
  view.account = state_.account(r.account).id;
  view.amount_micros = r.amount_micros;
  view.status = r.status;
  view.cost_micros = r.status == ReservationStatus::kSettled ? r.cost_micros
                     : r.expiry_charged                       ? r.charge.charged_micros
                                                              : 0;
  view.created_at_us = r.created_us;
  view.expires_at_us = r.expires_us;
  view.run_id = state_.strings.Get(r.run_id);
  view.action = state_.strings.Get(r.action);
  return view;
}

Reply Machine::Handler::Do(const query::GetReservation& q) {
  auto it = state_.reservations.find(q.reservation_id);
  if (it == state_.reservations.end()) {
    Missed('r', q.reservation_id);
    return NotFoundFor("reservation " + q.reservation_id);
  }
  if (!Allowed(it->second.account, Access::kRead)) {
    return NotFoundFor("reservation " + q.reservation_id);
  }
  return Ok(MakeReservationView(it->second), false);
}

Reply Machine::Handler::Do(const query::ListReservations& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  size_t limit = std::clamp<size_t>(q.limit, 1, kListLimitMax);
  std::vector<const Reservation*> found;
  if (q.status == ReservationStatus::kPending) {
    // Pending reservations are indexed by the expiry queue.
    for (const auto& [expires, r] : state_.expiry_queue) {
      if (state_.IsInSubtree(r->account, index)) found.push_back(r);
    }
  } else {
    // Memory holds the recent finished reservations, and the sequencer's
    // prefetch loaded the oldest matching ones of the cold store (its listing
    // index): the oldest `limit` of both are the answer. This walks the
    // in-memory table, O(records in memory).
    for (const auto& [id, r] : state_.reservations) {
      if (q.status && r.status != *q.status) continue;
      if (state_.IsInSubtree(r.account, index)) found.push_back(&r);
    }
  }
  std::sort(found.begin(), found.end(), [](const Reservation* a, const Reservation* b) {
    return a->created_us != b->created_us ? a->created_us < b->created_us : a->id < b->id;
  });
  if (found.size() > limit) found.resize(limit);
  ReservationList list;
  for (const Reservation* r : found) list.reservations.push_back(MakeReservationView(*r));
  return Ok(std::move(list), false);
}

void Machine::Handler::AddSpendRows(AccountIndex account, const query::GetSpend& q, int64_t slot,
                                    std::map<std::string, SpendGroup>* groups,
                                    SpendReport* report) const {
  const Account& node = state_.account(account);
  for (auto it = node.days.lower_bound(q.from_day); it != node.days.end() && it->first <= q.to_day;
       ++it) {
    const DayBook& book = it->second;
    auto total_it = book.find(RowKey(Dimension::kTotal, 0));
    if (total_it == book.end()) continue;  // revenue or rejections only
    const SpendTotals& total = total_it->second;
    report->total_micros = ReadSum(static_cast<__int128>(report->total_micros) + total.cost_micros);
    report->calls = ReadSum(static_cast<__int128>(report->calls) + total.calls);
    switch (q.group_by) {
      case GroupBy::kNone:
        break;
      case GroupBy::kDay:
        AddRow(&(*groups)[FormatDate(it->first)], total);
        break;
      case GroupBy::kChild:
        break;  // handled by the caller
      default: {
        // "(none)" is the total minus every row of the dimension.
        SpendGroup& none = (*groups)["(none)"];
        AddRow(&none, total);
        for (const auto& [key, row] : book) {
          bool match = q.group_by == GroupBy::kTag
                           ? static_cast<int64_t>(RowDimension(key)) ==
                                 static_cast<int64_t>(Dimension::kTagBase) + slot
                           : RowDimension(key) == DimensionOf(q.group_by);
          if (!match) continue;
          std::string name = q.group_by == GroupBy::kOutcome
                                 ? std::string(OutcomeName(static_cast<Outcome>(RowValue(key))))
                                 : state_.strings.Get(RowValue(key));
          AddRow(&(*groups)[name], row);
          AddRow(&none, row, -1);
        }
      }
    }
  }
}

Reply Machine::Handler::Do(const query::GetSpend& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  if (q.from_day > q.to_day) return Invalid("from must not be after to");
  int64_t slot = -1;
  if (q.group_by == GroupBy::kTag) {
    const auto& keys = state_.account(state_.account(index).root).indexed_tag_keys;
    auto it = std::find(keys.begin(), keys.end(), q.tag_key);
    if (it == keys.end()) {
      return Invalid("tag key " + q.tag_key + " is not indexed on the root account");
    }
    slot = it - keys.begin();
  }
  SpendReport report;
  report.account = q.account;
  report.from_day = q.from_day;
  report.to_day = q.to_day;
  std::map<std::string, SpendGroup> groups;
  if (q.group_by == GroupBy::kChild) {
    // Each child's group covers its subtree, tokens included; the account's
    // own spend is "(self)".
    auto totals_of = [&](const std::vector<AccountIndex>& accounts) {
      SpendGroup group;
      for (AccountIndex a : accounts) {
        const Account& node = state_.account(a);
        for (auto it = node.days.lower_bound(q.from_day);
             it != node.days.end() && it->first <= q.to_day; ++it) {
          auto row = it->second.find(RowKey(Dimension::kTotal, 0));
          if (row != it->second.end()) AddRow(&group, row->second);
        }
      }
      return group;
    };
    groups["(self)"] = totals_of({index});
    for (AccountIndex child : state_.account(index).children) {
      groups[state_.account(child).id] = totals_of(Subtree(state_, child));
    }
    for (const auto& [key, group] : groups) {
      report.total_micros = ReadSum(static_cast<__int128>(report.total_micros) + group.cost_micros);
      report.calls = ReadSum(static_cast<__int128>(report.calls) + group.calls);
    }
  } else {
    for (AccountIndex a : Subtree(state_, index)) AddSpendRows(a, q, slot, &groups, &report);
  }
  for (auto& [key, group] : groups) {
    if ((key == "(none)" || key == "(self)") && group.calls == 0 && group.cost_micros == 0) {
      continue;
    }
    group.key = key;
    report.groups.push_back(group);
  }
  std::sort(report.groups.begin(), report.groups.end(),
            [](const SpendGroup& a, const SpendGroup& b) {
              return a.cost_micros != b.cost_micros ? a.cost_micros > b.cost_micros
                                                    : a.key < b.key;
            });
  return Ok(std::move(report), false);
}

Reply Machine::Handler::Do(const query::ListAlerts& q) {
  AccountIndex scope = principal_.root;
  if (!q.account.empty()) {
    Reply error;
    scope = Resolve(q.account, Access::kRead, &error);
    if (scope == kNoAccount) return error;
  }
  auto begin = std::lower_bound(state_.alerts.begin(), state_.alerts.end(), q.since_us,
                                [](const Alert& a, int64_t since) { return a.created_us < since; });
  AlertList list;
  // True when the list is full, after marking it truncated if `alert` matches.
  auto add = [&](const Alert& alert) {
    if (scope != kNoAccount && !state_.IsInSubtree(alert.account, scope)) return false;
    if (q.type && alert.type != *q.type) return false;
    if (list.alerts.size() >= kListLimitMax) {
      list.truncated = true;
      return true;
    }
    AlertView view;
    view.id = alert.id;
    view.account = state_.account(alert.account).id;
    view.type = alert.type;
    view.severity = alert.severity;
    view.threshold_pct = alert.threshold_pct;
    view.window = alert.window;
    view.limit_micros = alert.limit_micros;
    view.value_micros = alert.value_micros;
    view.count = alert.count;
    view.message = alert.message;
    view.created_at_us = alert.created_us;
    list.alerts.push_back(std::move(view));
    return false;
  };
  if (q.newest_first) {
    for (auto it = state_.alerts.end(); it != begin;) {
      if (add(*--it)) break;
    }
  } else {
    for (auto it = begin; it != state_.alerts.end(); ++it) {
      if (add(*it)) break;
    }
  }
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::ListPrices&) {
  PriceList list;
  list.version = state_.price_version;
  for (const auto& [model, versions] : state_.prices) {
    list.prices.push_back(PriceView{model, versions.back().rates, versions.back().version});
  }
  std::sort(list.prices.begin(), list.prices.end(),
            [](const PriceView& a, const PriceView& b) { return a.model < b.model; });
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::EstimateCost& q) {
  int64_t cost = 0;
  uint64_t price_version = 0;
  Reply error;
  if (!ComputeCost(std::nullopt, q.usage, &cost, &price_version, &error)) return error;
  return Ok(CostResult{cost, price_version}, false);
}

Reply Machine::Handler::Do(const query::ListKeys&) {
  if (auto denied = RequireRole(Role::kAdmin)) return *denied;
  KeyList list;
  for (const auto& [id, key] : state_.keys) {
    if (!principal_.global() &&
        (key.account == kNoAccount || !state_.IsInSubtree(key.account, principal_.root))) {
      continue;
    }
    list.keys.push_back(KeyView{key.key_id,
                                key.account == kNoAccount ? "" : state_.account(key.account).id,
                                key.role, key.label, key.revoked, key.valid_until_us,
                                key.created_us});
  }
  std::sort(list.keys.begin(), list.keys.end(),
            [](const KeyView& a, const KeyView& b) { return a.key_id < b.key_id; });
  return Ok(std::move(list), false);
}

WebhookView Machine::Handler::MakeWebhookView(const Webhook& hook) const {
  return WebhookView{hook.webhook_id, hook.url, hook.events,
                     hook.account == kNoAccount ? "" : state_.account(hook.account).id,
                     hook.created_us, hook.enabled};
}

Reply Machine::Handler::Do(const query::GetWebhook& q) {
  Reply error;
  const Webhook* hook = ManagedWebhook(q.webhook_id, &error);
  if (hook == nullptr) return error;
  return Ok(MakeWebhookView(*hook), false);
}

Reply Machine::Handler::Do(const query::WebhookTable&) {
  if (!principal_.system) {
    return Reply::Error(ResultCode::kPermissionDenied, "the webhook table is for the service");
  }
  WebhookTableView view;
  view.sequence = state_.last_sequence;
  for (const auto& [id, hook] : state_.webhooks) {
    view.webhooks.push_back(
        WebhookDefinition{MakeWebhookView(hook), hook.removed, hook.created_seq, hook.secret_sha256});
  }
  view.accounts.reserve(state_.accounts.size());
  for (const Account& account : state_.accounts) {
    view.accounts.emplace_back(account.id,
                               account.parent == kNoAccount ? "" : state_.account(account.parent).id);
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::ListWebhooks&) {
  if (auto denied = RequireRole(Role::kAdmin)) return *denied;
  WebhookList list;
  for (const auto& [id, hook] : state_.webhooks) {
    if (hook.removed) continue;
    if (!principal_.global() &&
        (hook.account == kNoAccount || !state_.IsInSubtree(hook.account, principal_.root))) {
      continue;
    }
    list.webhooks.push_back(MakeWebhookView(hook));
  }
  std::sort(list.webhooks.begin(), list.webhooks.end(),
            [](const WebhookView& a, const WebhookView& b) { return a.webhook_id < b.webhook_id; });
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::GetPnl& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  if (q.from_day > q.to_day) return Invalid("from must not be after to");
  PnlView view;
  view.account = q.account;
  for (AccountIndex a : Subtree(state_, index)) {
    const Account& node = state_.account(a);
    for (auto it = node.days.lower_bound(q.from_day);
         it != node.days.end() && it->first <= q.to_day; ++it) {
      if (auto row = it->second.find(RowKey(Dimension::kRevenue, 0)); row != it->second.end()) {
        view.revenue_micros =
            ReadSum(static_cast<__int128>(view.revenue_micros) + row->second.cost_micros);
      }
      if (auto row = it->second.find(RowKey(Dimension::kTotal, 0)); row != it->second.end()) {
        view.cost_micros = ReadSum(static_cast<__int128>(view.cost_micros) + row->second.cost_micros);
      }
    }
  }
  view.profit_micros = ReadSum(static_cast<__int128>(view.revenue_micros) - view.cost_micros);
  if (view.revenue_micros > 0) {
    // Basis points, rounded half away from zero, in integers.
    __int128 scaled = static_cast<__int128>(view.profit_micros) * 10'000;
    __int128 half = view.revenue_micros / 2;
    view.margin_bp = static_cast<int64_t>(
        scaled >= 0 ? (scaled + half) / view.revenue_micros : (scaled - half) / view.revenue_micros);
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::GetChainHead&) {
  if (!principal_.global() || principal_.role != Role::kAdmin) {
    return Reply::Error(ResultCode::kPermissionDenied, "the chain head needs the global admin");
  }
  return Ok(std::monostate{}, false);  // the sequencer fills in the head
}

Reply Machine::Handler::Do(const query::GetDigest&) {
  if (!principal_.global() || principal_.role != Role::kAdmin) {
    return Reply::Error(ResultCode::kPermissionDenied, "the digest needs the global admin");
  }
  return Ok(std::monostate{}, false);  // the sequencer fills in the digest
}

Reply Machine::Handler::Do(const query::DailyReports& q) {
  Reply error;
  if (Resolve(q.account, Access::kRead, &error) == kNoAccount) return error;
  if (q.from_day > q.to_day) return Invalid("from must not be after to");
  DailyReportList list;
  auto it = state_.daily_reports.lower_bound({q.account, q.from_day});
  for (; it != state_.daily_reports.end() && it->first.first == q.account &&
         it->first.second <= q.to_day;
       ++it) {
    list.reports.push_back(it->second.report);
  }
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::AccountTree&) {
  if (!principal_.system) {
    return Reply::Error(ResultCode::kPermissionDenied, "the account tree is for the service");
  }
  AccountTreeView view;
  view.accounts.reserve(state_.accounts.size());
  for (const Account& account : state_.accounts) {
    view.accounts.emplace_back(account.id,
                               account.parent == kNoAccount ? "" : state_.account(account.parent).id);
  }
  return Ok(std::move(view), false);
}

}  // namespace purser
