// The analytics of the state machine (SPEC section 4): burn rates, active
// runs, baselines, anomalies, efficiency with cache figures and
// recommendations, daily trends, the leaderboard and platform stats. Every
// one is answered from materialized state (minute buckets, day books), never
// by scanning the log.

#include <algorithm>
#include <unordered_map>

#include "ledger/base/clock.h"
#include "ledger/base/limits.h"
#include "ledger/machine/machine_internal.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/reactions.h"

namespace purser {

namespace {

// a x 10,000 / b in basis points, rounded down; 0 when b is 0.
int64_t BasisPoints(int64_t a, int64_t b) {
  if (b <= 0) return 0;
  __int128 bp = static_cast<__int128>(a) * 10'000 / b;
  return bp > INT64_MAX ? INT64_MAX : static_cast<int64_t>(bp);
}

// tokens x rate / 10^6, rounded half-up (rates are per million tokens).
int64_t TokenCost(int64_t tokens, int64_t rate_per_mtok) {
  __int128 scaled = static_cast<__int128>(tokens) * rate_per_mtok;
  __int128 rounded = scaled >= 0 ? (scaled + 500'000) / 1'000'000 : -((-scaled + 500'000) / 1'000'000);
  if (rounded > INT64_MAX) return INT64_MAX;
  if (rounded < INT64_MIN) return INT64_MIN;
  return static_cast<int64_t>(rounded);
}

int64_t Saturate(__int128 value) { return ReadSum(value); }

// Every account of the subtree of `root`, itself first.
std::vector<AccountIndex> SubtreeOf(const State& state, AccountIndex root) {
  std::vector<AccountIndex> out{root};
  for (size_t i = 0; i < out.size(); ++i) {
    const auto& children = state.account(out[i]).children;
    out.insert(out.end(), children.begin(), children.end());
  }
  return out;
}

// Sums of one model's (or the total's) day-book rows.
struct Totals {
  int64_t cost_micros = 0;
  int64_t calls = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cached_input_tokens = 0;
  int64_t cache_write_tokens = 0;
  int64_t reasoning_tokens = 0;
  void Add(const SpendTotals& row) {
    cost_micros = Saturate(static_cast<__int128>(cost_micros) + row.cost_micros);
    calls = Saturate(static_cast<__int128>(calls) + row.calls);
    input_tokens = Saturate(static_cast<__int128>(input_tokens) + row.input_tokens);
    output_tokens = Saturate(static_cast<__int128>(output_tokens) + row.output_tokens);
    cached_input_tokens =
        Saturate(static_cast<__int128>(cached_input_tokens) + row.cached_input_tokens);
    cache_write_tokens = Saturate(static_cast<__int128>(cache_write_tokens) + row.cache_write_tokens);
    reasoning_tokens = Saturate(static_cast<__int128>(reasoning_tokens) + row.reasoning_tokens);
  }
  int64_t tokens() const {
    return Saturate(static_cast<__int128>(input_tokens) + output_tokens + cached_input_tokens +
                    cache_write_tokens + reasoning_tokens);
  }
};

// One day of a subtree, as trends sums it.
struct TrendDayAcc {
  Totals total;
  std::unordered_map<uint64_t, int64_t> rows;  // model, action and waste rows: cost

  void Add(uint64_t key, const SpendTotals& row) {
    Dimension dimension = RowDimension(key);
    if (dimension == Dimension::kTotal) {
      total.Add(row);
    } else if (dimension == Dimension::kModel || dimension == Dimension::kAction ||
               dimension == Dimension::kWaste) {
      int64_t& cost = rows[key];
      cost = Saturate(static_cast<__int128>(cost) + row.cost_micros);
    }
  }
};

// Adds the days [first, last] of every account of `subtree` into `out`
// (indexed from `first`).
void SumSubtreeDays(const State& state, const std::vector<AccountIndex>& subtree, int64_t first,
                    int64_t last, std::vector<TrendDayAcc>* out) {
  if (last < first) return;
  out->resize(static_cast<size_t>(last - first + 1));
  for (AccountIndex a : subtree) {
    // From the newest day back: reading today is one step (no tree search).
    const auto& days = state.account(a).days;
    for (auto it = days.rbegin(); it != days.rend() && it->first >= first; ++it) {
      if (it->first > last) continue;
      TrendDayAcc& day = (*out)[static_cast<size_t>(it->first - first)];
      for (const auto& [key, row] : it->second) day.Add(key, row);
    }
  }
}

// An account's spend and waste over the days [first, last].
std::pair<int64_t, int64_t> SpendAndWaste(const Account& node, int64_t first, int64_t last) {
  int64_t spend = 0;
  int64_t waste = 0;
  for (auto it = node.days.rbegin(); it != node.days.rend() && it->first >= first; ++it) {
    if (it->first > last) continue;
    for (const auto& [key, row] : it->second) {
      if (RowDimension(key) == Dimension::kTotal) {
        spend = Saturate(static_cast<__int128>(spend) + row.cost_micros);
      } else if (RowDimension(key) == Dimension::kWaste) {
        waste = Saturate(static_cast<__int128>(waste) + row.cost_micros);
      }
    }
  }
  return {spend, waste};
}

}  // namespace

// What trends and the leaderboard read of the days before today, kept
// between reads: those days change only through imported history and
// refunds of past charges (State::past_rows_version), and a new day starts a
// new cache. Today is always read live.
struct AnalyticsCache {
  static constexpr size_t kSubtreesMax = 64;
  static constexpr size_t kWindowsMax = 4;

  struct SubtreeDays {
    int64_t first = 0;  // days [first, today - 1] are summed
    std::vector<TrendDayAcc> days;
    uint64_t used = 0;
  };
  struct WindowSums {
    std::vector<std::pair<int64_t, int64_t>> sums;  // by account: spend, waste before today
    std::vector<bool> known;
  };

  int64_t today = -1;
  uint64_t version = 0;
  uint64_t clock = 0;
  std::unordered_map<AccountIndex, SubtreeDays> subtrees;  // trends, by account
  std::unordered_map<int64_t, WindowSums> windows;          // leaderboard, by days

  // Drops everything when the day or the past changed.
  void Check(int64_t now_day, uint64_t past_version) {
    if (today == now_day && version == past_version) return;
    today = now_day;
    version = past_version;
    subtrees.clear();
    windows.clear();
  }
};

AnalyticsCacheSlot::AnalyticsCacheSlot() = default;
AnalyticsCacheSlot::~AnalyticsCacheSlot() = default;
AnalyticsCacheSlot::AnalyticsCacheSlot(AnalyticsCacheSlot&&) noexcept = default;
AnalyticsCacheSlot& AnalyticsCacheSlot::operator=(AnalyticsCacheSlot&&) noexcept = default;
AnalyticsCache& AnalyticsCacheSlot::get() const {
  if (!cache_) cache_ = std::make_unique<AnalyticsCache>();
  return *cache_;
}

namespace {

// Cache and waste figures from token totals and the model's current rates.
EfficiencyFigures Figures(const std::string& model, const Totals& totals, int64_t waste_micros,
                          const PriceRates* rates) {
  EfficiencyFigures f;
  f.model = model;
  f.total_micros = totals.cost_micros;
  f.waste_micros = waste_micros;
  f.score_bp = totals.cost_micros <= 0
                   ? 10'000
                   : std::clamp<int64_t>(10'000 - BasisPoints(waste_micros, totals.cost_micros), 0,
                                         10'000);
  f.input_tokens = totals.input_tokens;
  f.cached_input_tokens = totals.cached_input_tokens;
  f.cache_write_tokens = totals.cache_write_tokens;
  f.cache_hit_rate_bp = BasisPoints(
      totals.cached_input_tokens,
      Saturate(static_cast<__int128>(totals.input_tokens) + totals.cached_input_tokens +
               totals.cache_write_tokens));
  if (rates != nullptr) {
    int64_t input = rates->input_per_mtok;
    int64_t cached = rates->cached_input_per_mtok < 0 ? input : rates->cached_input_per_mtok;
    int64_t write = rates->cache_write_per_mtok < 0 ? input : rates->cache_write_per_mtok;
    f.cache_savings_micros = TokenCost(totals.cached_input_tokens, input - cached);
    f.cache_write_extra_micros = TokenCost(totals.cache_write_tokens, write - input);
    f.cache_net_savings_micros =
        Saturate(static_cast<__int128>(f.cache_savings_micros) - f.cache_write_extra_micros);
    f.cache_write_spend_micros = TokenCost(totals.cache_write_tokens, write);
    f.input_spend_micros = Saturate(static_cast<__int128>(TokenCost(totals.input_tokens, input)) +
                                    TokenCost(totals.cached_input_tokens, cached) +
                                    f.cache_write_spend_micros);
  }
  return f;
}

std::string Percent(int64_t bp) { return FormatUsd(bp * 10'000) + "%"; }

}  // namespace

Reply Machine::Handler::Do(const query::GetBurnRate& q) {
  if (q.window_s < 60 || q.window_s > kBurnWindowSecondsMax || q.window_s % 60 != 0) {
    return Invalid("window_s must be a multiple of 60 in 60..86400");
  }
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  const Account& account = state_.account(index);
  Burn burn = BurnOver(account.burn, now_us_, q.window_s / 60);
  BurnRateView view;
  view.account = account.id;
  view.window_s = q.window_s;
  view.micros_per_hour = burn.micros_per_hour;
  view.spend_micros = burn.spend_micros;
  view.calls = burn.calls;
  view.baseline_micros_per_hour = account.baseline_micros_per_hour;
  if (account.baseline_micros_per_hour > 0) {
    view.ratio_pct = Saturate(static_cast<__int128>(burn.micros_per_hour) * 100 /
                              account.baseline_micros_per_hour);
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::ListActiveRuns& q) {
  if (q.window_s < 60 || q.window_s > kBurnWindowSecondsMax || q.window_s % 60 != 0) {
    return Invalid("window_s must be a multiple of 60 in 60..86400");
  }
  std::vector<AccountIndex> roots;
  Reply error;
  if (!ScopeRoots(q.parent, &roots, &error)) return error;
  const int64_t window_start_us = (MinuteOf(now_us_) - q.window_s / 60 + 1) * kMicrosPerMinute;
  RunList list;
  list.window_s = q.window_s;
  // Newest first: runs are ordered by their last spend, so the walk stops at
  // the first run that did not spend in the window.
  for (auto it = state_.runs_by_last.rbegin(); it != state_.runs_by_last.rend(); ++it) {
    if (it->first < window_start_us) break;
    const purser::Run& run = state_.runs.at(it->second);
    bool in_scope = std::any_of(roots.begin(), roots.end(), [&](AccountIndex root) {
      return state_.IsInSubtree(run.account, root);
    });
    if (!in_scope) continue;
    Burn burn = BurnOver(run.burn, now_us_, q.window_s / 60);
    if (burn.calls == 0 && burn.spend_micros == 0) continue;
    list.runs.push_back(RunView{state_.strings.Get(it->second), state_.account(run.account).id,
                                burn.micros_per_hour, burn.spend_micros, burn.calls, run.first_us,
                                run.last_us});
  }
  std::sort(list.runs.begin(), list.runs.end(), [](const RunView& a, const RunView& b) {
    return a.micros_per_hour != b.micros_per_hour ? a.micros_per_hour > b.micros_per_hour
                                                  : a.run_id < b.run_id;
  });
  if (list.runs.size() > std::clamp<size_t>(q.limit, 1, kListLimitMax)) {
    list.runs.resize(std::clamp<size_t>(q.limit, 1, kListLimitMax));
  }
  return Ok(std::move(list), false);
}

Reply Machine::Handler::Do(const query::GetBaseline& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  const Account& account = state_.account(index);
  if (account.baseline_micros_per_hour <= 0) {
    return Reply::Error(ResultCode::kNotFound, "account " + account.id + " has no baseline");
  }
  return Ok(BaselineView{account.id, account.baseline_micros_per_hour,
                         account.baseline_multiplier_bp},
            false);
}

Reply Machine::Handler::Do(const query::ListAnomalies& q) {
  std::vector<AccountIndex> roots;
  Reply error;
  if (!ScopeRoots(q.parent, &roots, &error)) return error;
  AnomalyList list;
  for (AccountIndex index : state_.anomalous_accounts) {
    bool in_scope = std::any_of(roots.begin(), roots.end(), [&](AccountIndex root) {
      return state_.IsInSubtree(index, root);
    });
    if (!in_scope) continue;
    const Account& account = state_.account(index);
    int64_t rate = 0;
    int64_t threshold = 0;
    // Still anomalous only while the rate stays above (it clears when it falls back).
    if (!AnomalyHolds(account, now_us_, &rate, &threshold)) continue;
    AnomalyView view;
    view.account = account.id;
    view.micros_per_hour = rate;
    view.baseline_micros_per_hour = account.baseline_micros_per_hour;
    view.threshold_micros_per_hour = threshold;
    view.ratio_pct = Saturate(static_cast<__int128>(rate) * 100 / account.baseline_micros_per_hour);
    view.since_us = account.anomaly_since_us;
    list.anomalies.push_back(std::move(view));
  }
  std::sort(list.anomalies.begin(), list.anomalies.end(),
            [](const AnomalyView& a, const AnomalyView& b) {
              return a.ratio_pct != b.ratio_pct ? a.ratio_pct > b.ratio_pct : a.account < b.account;
            });
  return Ok(std::move(list), false);
}

// Long: the figures of SPEC section 5.9 in the order the answer lists them
// (cost, waste, cache, outcomes, recommendations) over one pass of the rows.
Reply Machine::Handler::Do(const query::GetEfficiency& q) {
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  if (q.from_day > q.to_day) return Invalid("from must not be after to");
  if (q.to_day - q.from_day > kAnalyticsDaysMax) return Invalid("the range is at most 366 days");
  Totals total;
  int64_t waste = 0;
  std::map<uint32_t, Totals> models;  // by interned model name
  for (AccountIndex a : SubtreeOf(state_, index)) {
    const Account& node = state_.account(a);
    for (auto it = node.days.lower_bound(q.from_day); it != node.days.end() && it->first <= q.to_day;
         ++it) {
      for (const auto& [key, row] : it->second) {
        switch (RowDimension(key)) {
          case Dimension::kTotal: total.Add(row); break;
          case Dimension::kWaste:
            waste = Saturate(static_cast<__int128>(waste) + row.cost_micros);
            break;
          case Dimension::kModel: models[RowValue(key)].Add(row); break;
          default: break;
        }
      }
    }
  }
  EfficiencyView view;
  view.account = q.account;
  view.from_day = q.from_day;
  view.to_day = q.to_day;
  for (const auto& [model_id, totals] : models) {
    const std::string& model = state_.strings.Get(model_id);
    view.by_model.push_back(Figures(model, totals, 0, state_.CurrentRates(model)));
  }
  std::sort(view.by_model.begin(), view.by_model.end(),
            [](const EfficiencyFigures& a, const EfficiencyFigures& b) {
              return a.total_micros != b.total_micros ? a.total_micros > b.total_micros
                                                      : a.model < b.model;
            });
  view.total = Figures("", total, waste, nullptr);
  for (const EfficiencyFigures& m : view.by_model) {
    EfficiencyFigures& t = view.total;
    t.cache_savings_micros = Saturate(static_cast<__int128>(t.cache_savings_micros) + m.cache_savings_micros);
    t.cache_write_extra_micros =
        Saturate(static_cast<__int128>(t.cache_write_extra_micros) + m.cache_write_extra_micros);
    t.cache_write_spend_micros =
        Saturate(static_cast<__int128>(t.cache_write_spend_micros) + m.cache_write_spend_micros);
    t.input_spend_micros = Saturate(static_cast<__int128>(t.input_spend_micros) + m.input_spend_micros);
  }
  view.total.cache_net_savings_micros = Saturate(
      static_cast<__int128>(view.total.cache_savings_micros) - view.total.cache_write_extra_micros);

  // Recommendations: rules over these figures, each with the figure that fired it.
  const EfficiencyFigures& t = view.total;
  if (t.input_spend_micros > 0 && t.cache_write_spend_micros * 10 > t.input_spend_micros * 3 &&
      t.cached_input_tokens < t.cache_write_tokens) {
    int64_t share = BasisPoints(t.cache_write_spend_micros, t.input_spend_micros);
    view.recommendations.push_back(Recommendation{
        "cache_writes_unread",
        "cache writes are " + Percent(share) +
            " of input spend but fewer tokens are read from the cache than written: cache "
            "less, or reuse what is cached",
        share, true});
  }
  if (t.total_micros > 0 && t.waste_micros * 5 > t.total_micros) {
    int64_t share = BasisPoints(t.waste_micros, t.total_micros);
    view.recommendations.push_back(Recommendation{
        "waste_high",
        "waste is " + Percent(share) + " of spend (above 20%): look at retries, unused context "
                                       "and recovery from bad answers",
        share, true});
  }
  for (const EfficiencyFigures& m : view.by_model) {
    if (t.total_micros <= 0 || m.total_micros * 5 <= t.total_micros * 4) continue;  // > 80% only
    const PriceRates* rates = state_.CurrentRates(m.model);
    if (rates == nullptr) continue;
    const std::string vendor = VendorOf(m.model);
    const int64_t own = rates->input_per_mtok + rates->output_per_mtok;
    std::string cheapest;
    int64_t cheapest_price = own;
    for (const auto& [other, versions] : state_.prices) {
      if (versions.empty() || other == m.model || VendorOf(other) != vendor) continue;
      const PriceRates& r = versions.back().rates;
      if (r.output_per_mtok <= 0) continue;  // not a chat model (embeddings)
      int64_t price = r.input_per_mtok + r.output_per_mtok;
      if (price < cheapest_price || (price == cheapest_price && !cheapest.empty() && other < cheapest)) {
        if (price < own) {
          cheapest = other;
          cheapest_price = price;
        }
      }
    }
    if (cheapest.empty()) continue;
    int64_t share = BasisPoints(m.total_micros, t.total_micros);
    view.recommendations.push_back(Recommendation{
        "cheaper_model",
        m.model + " takes " + Percent(share) + " of spend; " + cheapest + " of the same vendor (" +
            vendor + ") is priced lower: route the easy calls there",
        share, true});
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::GetTrends& q) {
  if (q.days < 1 || q.days > kAnalyticsDaysMax) return Invalid("days must be in 1..366");
  Reply error;
  AccountIndex index = Resolve(q.account, Access::kRead, &error);
  if (index == kNoAccount) return error;
  const int64_t last = DayOf(now_us_);
  const int64_t first = last - q.days + 1;
  const std::vector<AccountIndex> subtree = SubtreeOf(state_, index);
  // The days before today from the cache (summed once), today live.
  AnalyticsCache& cache = state_.analytics_cache.get();
  cache.Check(last, state_.past_rows_version);
  auto [slot, fresh] = cache.subtrees.try_emplace(index);
  AnalyticsCache::SubtreeDays& past = slot->second;
  if (fresh) {
    if (cache.subtrees.size() > AnalyticsCache::kSubtreesMax) {
      auto oldest = std::min_element(cache.subtrees.begin(), cache.subtrees.end(),
                                     [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
      if (oldest->first != index) cache.subtrees.erase(oldest);
    }
    past.first = last;  // nothing summed yet
  }
  past.used = ++cache.clock;
  if (first < past.first) {
    // Sum the older days not yet summed, in front of those that are.
    std::vector<TrendDayAcc> older;
    SumSubtreeDays(state_, subtree, first, past.first - 1, &older);
    older.insert(older.end(), std::make_move_iterator(past.days.begin()),
                 std::make_move_iterator(past.days.end()));
    past.days = std::move(older);
    past.first = first;
  }
  std::vector<TrendDayAcc> today;
  SumSubtreeDays(state_, subtree, last, last, &today);
  auto day_at = [&](int64_t d) -> const TrendDayAcc& {
    return d == last ? today[0] : past.days[static_cast<size_t>(d - past.first)];
  };
  TrendsView view;
  view.account = q.account;
  view.first_day = first;
  view.last_day = last;
  for (int64_t d = 0; d < q.days; ++d) {
    const TrendDayAcc& day = day_at(first + d);
    TrendDay out;
    out.day = first + d;
    out.cost_micros = day.total.cost_micros;
    out.calls = day.total.calls;
    out.tokens = day.total.tokens();
    for (const auto& [key, cost] : day.rows) {
      auto entry = std::make_pair(state_.strings.Get(RowValue(key)), cost);
      switch (RowDimension(key)) {
        case Dimension::kModel: out.by_model.push_back(std::move(entry)); break;
        case Dimension::kAction: out.by_action.push_back(std::move(entry)); break;
        default: out.by_waste.push_back(std::move(entry)); break;
      }
    }
    for (auto* list : {&out.by_model, &out.by_action, &out.by_waste}) {
      std::sort(list->begin(), list->end(), [](const auto& x, const auto& y) {
        return x.second != y.second ? x.second > y.second : x.first < y.first;
      });
    }
    view.days.push_back(std::move(out));
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::GetLeaderboard& q) {
  if (q.days < 1 || q.days > kAnalyticsDaysMax) return Invalid("days must be in 1..366");
  std::vector<AccountIndex> roots;
  Reply error;
  if (!ScopeRoots(q.parent, &roots, &error)) return error;
  const int64_t last = DayOf(now_us_);
  const int64_t first = last - q.days + 1;
  LeaderboardView view;
  view.metric = q.metric;
  // Each account's days before today from the cache (summed once), today live.
  AnalyticsCache& cache = state_.analytics_cache.get();
  cache.Check(last, state_.past_rows_version);
  if (!cache.windows.contains(q.days) && cache.windows.size() >= AnalyticsCache::kWindowsMax) {
    cache.windows.clear();
  }
  AnalyticsCache::WindowSums& past = cache.windows[q.days];
  past.sums.resize(state_.accounts.size());
  past.known.resize(state_.accounts.size());
  for (AccountIndex root : roots) {
    for (AccountIndex a : SubtreeOf(state_, root)) {
      const Account& node = state_.account(a);
      // The accounts that spend directly: leaves strictly below the scope.
      if (a == root || !node.children.empty()) continue;
      if (!past.known[a]) {
        past.sums[a] = SpendAndWaste(node, first, last - 1);
        past.known[a] = true;
      }
      auto [today_spend, today_waste] = SpendAndWaste(node, last, last);
      int64_t spend = Saturate(static_cast<__int128>(past.sums[a].first) + today_spend);
      int64_t waste = Saturate(static_cast<__int128>(past.sums[a].second) + today_waste);
      if (spend <= 0) continue;
      int64_t value = spend;
      if (q.metric == LeaderboardMetric::kWaste) value = waste;
      if (q.metric == LeaderboardMetric::kEfficiency) {
        value = std::clamp<int64_t>(10'000 - BasisPoints(waste, spend), 0, 10'000);
      }
      view.entries.push_back(LeaderboardEntry{node.id, value, spend});
    }
  }
  // Spend and waste: largest first; efficiency: least efficient first (what
  // needs attention), ties by spend then id.
  const bool ascending = q.metric == LeaderboardMetric::kEfficiency;
  auto before = [ascending](const LeaderboardEntry& a, const LeaderboardEntry& b) {
    if (a.value != b.value) return ascending ? a.value < b.value : a.value > b.value;
    if (a.spend_micros != b.spend_micros) return a.spend_micros > b.spend_micros;
    return a.account < b.account;
  };
  size_t limit = std::clamp<size_t>(q.limit, 1, kListLimitMax);
  if (view.entries.size() > limit) {
    std::partial_sort(view.entries.begin(), view.entries.begin() + static_cast<ptrdiff_t>(limit),
                      view.entries.end(), before);
    view.entries.resize(limit);
  } else {
    std::sort(view.entries.begin(), view.entries.end(), before);
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::GetStats&) {
  std::vector<AccountIndex> roots;
  Reply error;
  if (!ScopeRoots("", &roots, &error)) return error;
  const int64_t today = DayOf(now_us_);
  const int64_t month = MonthOfDay(today);
  StatsView view;
  for (AccountIndex root : roots) {
    const Account& top = state_.account(root);
    view.spend_today_micros = Saturate(static_cast<__int128>(view.spend_today_micros) + top.SpentDay(today));
    view.spend_month_micros =
        Saturate(static_cast<__int128>(view.spend_month_micros) + top.SpentMonth(month));
    view.reservations_pending += top.inflight;
    for (AccountIndex a : SubtreeOf(state_, root)) {
      const Account& node = state_.account(a);
      ++view.accounts;
      if (node.frozen) ++view.frozen_accounts;
      auto day = node.days.find(today);
      if (day == node.days.end()) continue;
      auto row = day->second.find(RowKey(Dimension::kTotal, 0));
      if (row == day->second.end() || row->second.calls <= 0) continue;
      ++view.active_accounts_today;
      view.calls_today += row->second.calls;
    }
  }
  auto in_scope = [&](AccountIndex account) {
    return principal_.global() || state_.IsInSubtree(account, principal_.root);
  };
  const int64_t day_ago_us = now_us_ - kMicrosPerDay;
  auto begin = std::lower_bound(state_.alerts.begin(), state_.alerts.end(), day_ago_us,
                                [](const Alert& a, int64_t since) { return a.created_us < since; });
  for (auto it = begin; it != state_.alerts.end(); ++it) {
    if (in_scope(it->account)) ++view.alerts_active;
  }
  const int64_t hour_ago_us = now_us_ - kMicrosPerHour;
  for (auto it = state_.runs_by_last.rbegin(); it != state_.runs_by_last.rend(); ++it) {
    if (it->first < hour_ago_us) break;
    if (in_scope(state_.runs.at(it->second).account)) ++view.runs_active;
  }
  view.events_total = static_cast<int64_t>(state_.last_sequence);
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::AccountMetrics& q) {
  AccountMetricsView view;
  const int64_t today = DayOf(now_us_);
  const int64_t month = MonthOfDay(today);
  auto utilization = [](int64_t spent, int64_t limit) -> int64_t {
    if (limit < 0) return -1;
    if (limit == 0) return spent > 0 ? INT64_MAX : 0;
    return BasisPoints(spent, limit);
  };
  for (AccountIndex a = 0; a < state_.accounts.size(); ++a) {
    const Account& node = state_.account(a);
    if (node.frozen) ++view.accounts_frozen;
    if (node.depth > q.depth_max || view.accounts.size() >= q.accounts_max) continue;
    if (!principal_.global() && !state_.IsInSubtree(a, principal_.root)) continue;
    AccountMetric m;
    m.account = node.id;
    m.spend_today_micros = node.SpentDay(today);
    m.burn_micros_per_hour = BurnOver(node.burn, now_us_, kAnomalyWindowMinutes).micros_per_hour;
    m.daily_utilization_bp = utilization(node.SpentDay(today), node.caps.daily_limit_micros);
    m.monthly_utilization_bp = utilization(node.SpentMonth(month), node.caps.monthly_limit_micros);
    m.lifetime_utilization_bp = utilization(node.spent_total_micros, node.caps.hard_limit_micros);
    m.frozen = node.frozen;
    view.accounts.push_back(std::move(m));
  }
  const int64_t hour_ago_us = now_us_ - kMicrosPerHour;
  for (auto it = state_.runs_by_last.rbegin(); it != state_.runs_by_last.rend(); ++it) {
    if (it->first < hour_ago_us) break;
    ++view.runs_active;
  }
  for (AccountIndex a : state_.anomalous_accounts) {
    if (AnomalyHolds(state_.account(a), now_us_, nullptr, nullptr)) ++view.anomalies_active;
  }
  return Ok(std::move(view), false);
}

Reply Machine::Handler::Do(const query::GetOverview& q) {
  if (q.depth < 0 || q.depth > 8) return Invalid("depth must be in 0..8");
  if (q.minutes < 1 || q.minutes > MinuteSeries::kMinutesKept) return Invalid("minutes must be in 1..1440");
  if (q.accounts_max < 1 || q.accounts_max > 10'000) return Invalid("accounts_max must be in 1..10000");
  Reply error;
  const AccountIndex top = Resolve(q.account, Access::kRead, &error);
  if (top == kNoAccount) return error;
  constexpr size_t kFrozenMax = 1'000;
  const Account& account = state_.account(top);
  OverviewView view;
  view.account = account.id;
  auto describe = [&](AccountIndex index, int depth) {
    const Account& node = state_.account(index);
    OverviewAccount entry;
    entry.parent = node.parent == kNoAccount ? std::string() : state_.account(node.parent).id;
    entry.name = node.name;
    entry.kind = node.kind;
    entry.depth = depth;
    entry.frozen_reason = node.frozen_reason;
    entry.balance = MakeBalanceView(index);
    return entry;
  };
  // Depth first, children in opening order, so that a page draws the tree
  // as it reads it.
  std::vector<AccountIndex> stack{top};
  while (!stack.empty()) {
    const AccountIndex index = stack.back();
    stack.pop_back();
    const Account& node = state_.account(index);
    const int depth = node.depth - account.depth;
    if (depth <= q.depth) {
      if (view.accounts.size() < q.accounts_max) {
        view.accounts.push_back(describe(index, depth));
      } else {
        view.truncated = true;
      }
    }
    if (node.frozen) {
      ++view.frozen_count;
      if (view.frozen.size() < kFrozenMax) view.frozen.push_back(describe(index, depth));
    }
    for (auto child = node.children.rbegin(); child != node.children.rend(); ++child) stack.push_back(*child);
  }
  const int64_t now_minute = MinuteOf(now_us_);
  const int64_t first_minute = now_minute - q.minutes + 1;
  view.first_minute_us = first_minute * kMicrosPerMinute;
  view.burn_per_minute.assign(static_cast<size_t>(q.minutes), 0);
  for (const MinuteBucket& bucket : account.burn.buckets()) {
    if (bucket.minute >= first_minute && bucket.minute <= now_minute) {
      view.burn_per_minute[static_cast<size_t>(bucket.minute - first_minute)] = bucket.spend_micros;
    }
  }
  view.baseline_micros_per_hour = account.baseline_micros_per_hour;
  view.baseline_multiplier_bp = account.baseline_multiplier_bp;
  return Ok(std::move(view), false);
}

}  // namespace purser
