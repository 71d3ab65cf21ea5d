// Money parsing and printing, UTC calendar arithmetic, cost golden vectors,
// validation and the histogram.

#include <gtest/gtest.h>

#include "ledger/base/clock.h"
#include "ledger/base/histogram.h"
#include "ledger/base/json_writer.h"
#include "ledger/base/money.h"
#include "ledger/machine/prices.h"
#include "ledger/machine/validate.h"

namespace purser {
namespace {

TEST(MoneyParse, ReadsDecimalUsdExactly) {
  EXPECT_EQ(ParseUsd("14.73"), 14'730'000);
  EXPECT_EQ(ParseUsd("0.000001"), 1);
  EXPECT_EQ(ParseUsd("25"), 25'000'000);
  EXPECT_EQ(ParseUsd("-3.5"), -3'500'000);
  EXPECT_EQ(ParseUsd("0"), 0);
  EXPECT_EQ(ParseUsd("1000000"), 1'000'000'000'000);
}

TEST(MoneyParse, RefusesMoreThanSixDecimalsExponentsAndJunk) {
  for (const char* bad : {"0.0000001", "1e3", "1E3", "+1", " 1", "1 ", "", ".5", "5.", "01",
                          "1.2.3", "0x10", "1000000.000001", "12345678", "-", "nan", "1,5"}) {
    EXPECT_FALSE(ParseUsd(bad).has_value()) << bad;
  }
}

TEST(MoneyFormat, PrintsTheShortestExactDecimal) {
  EXPECT_EQ(FormatUsd(14'730'000), "14.73");
  EXPECT_EQ(FormatUsd(5'000'000), "5");
  EXPECT_EQ(FormatUsd(1), "0.000001");
  EXPECT_EQ(FormatUsd(-1), "-0.000001");
  EXPECT_EQ(FormatUsd(0), "0");
  EXPECT_EQ(FormatUsd(INT64_MIN), "-9223372036854.775808");
  for (int64_t micros : {int64_t{1}, int64_t{10}, int64_t{999'999}, int64_t{1'000'001},
                         int64_t{14'729'999}, int64_t{123'456'789'012}}) {
    EXPECT_EQ(ParseUsd(FormatUsd(micros)), micros);
  }
}

TEST(MoneyArithmetic, CheckedHelpersReportOverflow) {
  EXPECT_EQ(CheckedAdd(INT64_MAX - 1, 1), INT64_MAX);
  EXPECT_FALSE(CheckedAdd(INT64_MAX, 1).has_value());
  EXPECT_FALSE(CheckedSub(INT64_MIN, 1).has_value());
  EXPECT_EQ(ParseInt64("9223372036854775807"), INT64_MAX);
  EXPECT_FALSE(ParseInt64("9223372036854775808").has_value());
}

TEST(MoneyArithmetic, AChargebackMarkupThatDoesNotFitIsRefusedNotWrapped) {
  int64_t markup = 0;
  int64_t total = 0;
  ASSERT_TRUE(ApplyMarkup(1'000'000, 1'250, &markup, &total));  // 12.5%
  EXPECT_EQ(markup, 125'000);
  EXPECT_EQ(total, 1'125'000);
  ASSERT_TRUE(ApplyMarkup(3, 5'000, &markup, &total));  // 1.5 rounds half-up once
  EXPECT_EQ(markup, 2);
  // The figures that came back as -9,165,208,073,709,551,616 before.
  EXPECT_FALSE(ApplyMarkup(INT64_MAX / 2, 100'000, &markup, &total));
  EXPECT_FALSE(ApplyMarkup(INT64_MAX - 10, 100, &markup, &total));
  EXPECT_TRUE(ApplyMarkup(INT64_MAX - 10, 0, &markup, &total));
}

TEST(CostGolden, DatedSnapshotNamesResolveToTheirModel) {
  EXPECT_EQ(PriceAliasOf("gpt-4o-2024-08-06"), "gpt-4o");
  EXPECT_EQ(PriceAliasOf("claude-sonnet-4-20250514"), "claude-sonnet-4");
  EXPECT_EQ(PriceAliasOf("claude-3-5-sonnet-latest"), "claude-3-5-sonnet");
  EXPECT_EQ(PriceAliasOf("gemini-2.0-flash-001"), "gemini-2.0-flash");
  EXPECT_EQ(PriceAliasOf("gpt-4o"), "");
  EXPECT_EQ(PriceAliasOf("o3-mini"), "");
  for (const char* model : {"gemini-2.5-pro", "deepseek-chat", "o1", "o3", "o4-mini", "gpt-5",
                            "claude-opus-4-1", "claude-haiku-4-5"}) {
    bool found = false;
    for (const ModelPrice& price : DefaultPriceTable()) found |= price.model == model;
    EXPECT_TRUE(found) << model;
  }
}

TEST(Calendar, DaysAndMonthsAreUtc) {
  int64_t t = *ParseTimestamp("2026-11-23T23:59:59Z");
  EXPECT_EQ(FormatDate(DayOf(t)), "2026-11-23");
  EXPECT_EQ(FormatDate(DayOf(t + kMicrosPerSecond)), "2026-11-24");
  EXPECT_EQ(FormatMonth(MonthOf(t)), "2026-11");
  EXPECT_EQ(FormatMonth(MonthOf(*ParseTimestamp("2026-12-31T23:59:59Z") + kMicrosPerSecond)),
            "2027-01");
  EXPECT_EQ(FormatDate(FirstDayOfMonth(*ParseMonth("2024-02"))), "2024-02-01");
  EXPECT_EQ(ParseDate("2024-02-29"), DaysFromCivil(2024, 2, 29));
  EXPECT_FALSE(ParseDate("2025-02-29").has_value());
  EXPECT_FALSE(ParseDate("2025-13-01").has_value());
  EXPECT_EQ(FormatTimestamp(t), "2026-11-23T23:59:59Z");
  EXPECT_EQ(FormatTimestamp(t + 5), "2026-11-23T23:59:59.000005Z");
  EXPECT_EQ(ParseTimestamp("2026-11-23T23:59:59.000005Z"), t + 5);
  EXPECT_EQ(DayOf(-1), -1) << "floor division before the epoch";
}

// Golden vectors: exact costs, rounded half-up once after summing classes.
TEST(CostGolden, GivesExactMicroUsd) {
  PriceRates gpt4o{2'500'000, 10'000'000, 1'250'000, -1, -1};
  PriceRates sonnet{3'000'000, 15'000'000, 300'000, 3'750'000, -1};
  PriceRates mini{150'000, 600'000, 75'000, -1, -1};
  PriceRates embed{20'000, 0, -1, -1, -1};
  EXPECT_EQ(Cost(gpt4o, {1'000, 500, 0, 0, 0}), 7'500);          // 0.0025 + 0.005
  EXPECT_EQ(Cost(gpt4o, {1, 0, 0, 0, 0}), 3);                    // 2.5 -> 3 (half-up)
  EXPECT_EQ(Cost(mini, {1, 1, 0, 0, 0}), 1);                     // 0.15 + 0.6 = 0.75 -> 1
  EXPECT_EQ(Cost(mini, {3, 0, 0, 0, 0}), 0);                     // 0.45 -> 0
  EXPECT_EQ(Cost(mini, {0, 0, 1, 0, 0}), 0);                     // 0.075 -> 0
  EXPECT_EQ(Cost(sonnet, {10'000, 2'000, 50'000, 4'000, 0}), 90'000);
  EXPECT_EQ(Cost(sonnet, {0, 0, 0, 0, 1'000}), 15'000) << "reasoning falls back to output";
  EXPECT_EQ(Cost(gpt4o, {0, 0, 0, 1'000, 0}), 2'500) << "cache write falls back to input";
  EXPECT_EQ(Cost(embed, {123'456'789, 0, 0, 0, 0}), 2'469'136);  // 2469135.78
  // Summed before rounding: two halves make one.
  EXPECT_EQ(Cost(PriceRates{500'000, 500'000, -1, -1, -1}, {1, 1, 0, 0, 0}), 1);
  // The largest inputs do not overflow 128 bits, but the result is bounded.
  EXPECT_FALSE(Cost(gpt4o, {kInputValueMax, kInputValueMax, 0, 0, 0}).has_value());
  EXPECT_EQ(Cost(PriceRates{1, 0, -1, -1, -1}, {kInputValueMax, 0, 0, 0, 0}), 1'000'000);
  EXPECT_FALSE(Cost(gpt4o, {-1, 0, 0, 0, 0}).has_value());
}

TEST(CostGolden, DefaultTableHasTheSeedModels) {
  auto find = [](std::string_view model) -> const PriceRates* {
    for (const ModelPrice& price : DefaultPriceTable()) {
      if (price.model == model) return &price.rates;
    }
    return nullptr;
  };
  ASSERT_NE(find("gpt-4o"), nullptr);
  EXPECT_EQ(find("gpt-4o")->input_per_mtok, 2'500'000);
  EXPECT_EQ(find("gpt-4o")->output_per_mtok, 10'000'000);
  ASSERT_NE(find("claude-sonnet-4"), nullptr);
  EXPECT_EQ(find("claude-sonnet-4")->cache_write_per_mtok, 3'750'000);
  EXPECT_EQ(find("claude-sonnet-4")->cached_input_per_mtok, 300'000);
  EXPECT_EQ(find("gpt-4o-mini")->output_per_mtok, 600'000);
  EXPECT_EQ(find("text-embedding-3-small")->input_per_mtok, 20'000);
}

TEST(Validation, AccountIdsTagsAndText) {
  EXPECT_TRUE(IsValidAccountId("acme.team-1_x"));
  EXPECT_FALSE(IsValidAccountId("Acme"));
  EXPECT_FALSE(IsValidAccountId("_x"));
  EXPECT_FALSE(IsValidAccountId(""));
  EXPECT_TRUE(IsValidClientId("r-123_ABC.x:9"));
  EXPECT_FALSE(IsValidClientId("r-123/ABC")) << "a / would never reach its own URL";
  EXPECT_FALSE(IsValidClientId("a%2Fb"));
  EXPECT_FALSE(IsValidClientId("has space"));
  EXPECT_FALSE(IsValidClientId(std::string(129, 'x')));
  Tags tags = {{"b", "2"}, {"a", "1"}};
  EXPECT_EQ(CheckAndSortTags(&tags), "");
  EXPECT_EQ(tags.front().key, "a");
  Tags repeated = {{"a", "1"}, {"a", "2"}};
  EXPECT_NE(CheckAndSortTags(&repeated), "");
  Tags long_key = {{std::string(65, 'k'), "v"}};
  EXPECT_NE(CheckAndSortTags(&long_key), "");
  EXPECT_NE(CheckText("name", "bad\x01", 256), "");
  EXPECT_NE(CheckText("name", "\xc3\x28", 256), "") << "invalid UTF-8";
  EXPECT_EQ(CheckText("name", "caf\xc3\xa9", 256), "");
}

TEST(Histogram, PercentilesAreWithinTheBucketResolution) {
  Histogram histogram;
  for (uint64_t v = 1; v <= 1000; ++v) histogram.Record(v);
  EXPECT_EQ(histogram.count(), 1000u);
  uint64_t p50 = histogram.Percentile(50);
  uint64_t p99 = histogram.Percentile(99);
  EXPECT_GE(p50, 500u);
  EXPECT_LE(p50, 600u);
  EXPECT_GE(p99, 990u);
  EXPECT_LE(p99, 1200u);
}

TEST(JsonWriter, EscapesStringsAndWritesExactUsd) {
  JsonWriter w;
  w.BeginObject().Field("a", "x\"y\\z\n\x01").Key("usd").Usd(14'730'000).EndObject();
  EXPECT_EQ(w.str(), "{\"a\":\"x\\\"y\\\\z\\n\\u0001\",\"usd\":14.73}");
}

}  // namespace
}  // namespace purser
