#include "ledger/wire/capnp_values.h"

namespace purser {

namespace s = ::purser::schema;

namespace {

void Put(s::Tag::Builder b, const Tag& tag) {
  b.setKey(Text(tag.key));
  b.setValue(Text(tag.value));
}

}  // namespace

void PutTags(capnp::List<s::Tag>::Builder list, const Tags& tags) {
  for (unsigned i = 0; i < tags.size(); ++i) Put(list[i], tags[i]);
}

Tags GetTags(capnp::List<s::Tag>::Reader list) {
  Tags tags;
  tags.reserve(list.size());
  for (auto tag : list) tags.push_back(Tag{Str(tag.getKey()), Str(tag.getValue())});
  return tags;
}

void Put(s::TokenCounts::Builder b, const TokenCounts& t) {
  b.setInputTokens(t.input);
  b.setOutputTokens(t.output);
  b.setCachedInputTokens(t.cached_input);
  b.setCacheWriteTokens(t.cache_write);
  b.setReasoningTokens(t.reasoning);
}

TokenCounts Get(s::TokenCounts::Reader r) {
  return TokenCounts{r.getInputTokens(), r.getOutputTokens(), r.getCachedInputTokens(),
                     r.getCacheWriteTokens(), r.getReasoningTokens()};
}

void Put(s::PriceRates::Builder b, const PriceRates& r) {
  b.setInputPerMtokMicros(r.input_per_mtok);
  b.setOutputPerMtokMicros(r.output_per_mtok);
  b.setCachedInputPerMtokMicros(r.cached_input_per_mtok);
  b.setCacheWritePerMtokMicros(r.cache_write_per_mtok);
  b.setReasoningPerMtokMicros(r.reasoning_per_mtok);
}

PriceRates Get(s::PriceRates::Reader r) {
  return PriceRates{r.getInputPerMtokMicros(), r.getOutputPerMtokMicros(),
                    r.getCachedInputPerMtokMicros(), r.getCacheWritePerMtokMicros(),
                    r.getReasoningPerMtokMicros()};
}

void Put(s::Caps::Builder b, const Caps& c) {
  b.setDailyLimitMicros(c.daily_limit_micros);
  b.setMonthlyLimitMicros(c.monthly_limit_micros);
  b.setHardLimitMicros(c.hard_limit_micros);
  b.setMaxInflight(c.max_inflight);
  b.setReservationTtlS(c.reservation_ttl_s);
  auto thresholds = b.initAlertThresholdsPct(static_cast<unsigned>(c.alert_thresholds_pct.size()));
  for (unsigned i = 0; i < c.alert_thresholds_pct.size(); ++i) {
    thresholds.set(i, c.alert_thresholds_pct[i]);
  }
  b.setOnExpiry(static_cast<s::OnExpiry>(c.on_expiry));
  b.setRunawayAction(static_cast<s::RunawayAction>(c.runaway_action));
  b.setTimeZone(Text(c.time_zone));
  b.setRunawayErrorStreak(c.runaway_error_streak);
  b.setRunawayBurnMultiplierBp(c.runaway_burn_multiplier_bp);
  b.setRunawayMinMicrosPerHour(c.runaway_min_micros_per_hour);
  b.setMaxCallsPerMinute(c.max_calls_per_minute);
  b.setMaxTokensPerMinute(c.max_tokens_per_minute);
  b.setDegradeAtPct(c.degrade_at_pct);
}

Caps Get(s::Caps::Reader r) {
  Caps c;
  c.daily_limit_micros = r.getDailyLimitMicros();
  c.monthly_limit_micros = r.getMonthlyLimitMicros();
  c.hard_limit_micros = r.getHardLimitMicros();
  c.max_inflight = r.getMaxInflight();
  c.reservation_ttl_s = r.getReservationTtlS();
  c.alert_thresholds_pct.clear();
  for (uint8_t pct : r.getAlertThresholdsPct()) c.alert_thresholds_pct.push_back(pct);
  c.on_expiry = static_cast<OnExpiry>(r.getOnExpiry());
  c.runaway_action = static_cast<RunawayAction>(r.getRunawayAction());
  c.time_zone = Str(r.getTimeZone());
  c.runaway_error_streak = r.getRunawayErrorStreak();
  c.runaway_burn_multiplier_bp = r.getRunawayBurnMultiplierBp();
  c.runaway_min_micros_per_hour = r.getRunawayMinMicrosPerHour();
  c.max_calls_per_minute = r.getMaxCallsPerMinute();
  c.max_tokens_per_minute = r.getMaxTokensPerMinute();
  c.degrade_at_pct = r.getDegradeAtPct();
  return c;
}

}  // namespace purser
