// Every bound Purser enforces, in one place (STYLE.md: "put a limit on
// everything"). Each is checked where input enters, with a clear error.
#pragma once

#include <cstddef>
#include <cstdint>

namespace purser {

inline constexpr int kAccountDepthMax = 8;              // org -> ... -> leaf
inline constexpr size_t kAccountIdBytesMax = 64;        // [a-z0-9][a-z0-9._-]{0,63}
inline constexpr size_t kClientIdBytesMax = 128;        // reservation, usage, refund ... ids
inline constexpr size_t kTextBytesMax = 256;            // names, reasons, references
inline constexpr size_t kDimensionBytesMax = 128;       // model, action, waste, run id, category
inline constexpr size_t kTagsMax = 16;                  // tags on one command
inline constexpr size_t kTagKeyBytesMax = 64;
inline constexpr size_t kTagValueBytesMax = 256;
inline constexpr size_t kIndexedTagKeysMax = 16;        // declared on a root account
inline constexpr size_t kTagValuesPerKeyMax = 10'000;   // further values roll into "(other)"
inline constexpr size_t kAlertThresholdsMax = 8;
inline constexpr int64_t kDefaultReservationTtlS = 300; // when no account on the path sets one
inline constexpr int64_t kMaxReservationTtlS = 7 * 24 * 3600;
inline constexpr size_t kBatchCommandsMax = 8192;       // commands in one submit / batch
inline constexpr size_t kWebhookUrlBytesMax = 2048;
inline constexpr size_t kWebhookEventsMax = 16;
inline constexpr size_t kReportNamedAmountsMax = 256;   // entries per daily-report breakdown
inline constexpr size_t kMetadataBytesMax = 64 * 1024;
inline constexpr int64_t kMultiplierBpMax = 1'000'000;  // 100x
inline constexpr size_t kListLimitMax = 10'000;         // rows of one list query
inline constexpr int64_t kRunawayStreakMax = 1'000'000;  // runaway_error_streak
inline constexpr int64_t kOccurredAtDaysMax = 35;       // how far back usage may be imported
inline constexpr int64_t kAnalyticsDaysMax = 366;       // days of one trends, efficiency or leaderboard read
inline constexpr int64_t kBurnWindowSecondsMax = 86'400;  // burn-rate windows: whole minutes, a day at most
inline constexpr int kRpcLoopsMax = 64;                 // RPC event loop threads

}  // namespace purser
