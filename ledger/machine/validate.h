// Input checks shared by every command. Each returns an empty string when the
// input is valid, or a message for a 400 invalid_argument that names the field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ledger/base/types.h"

namespace purser {

// [a-z0-9][a-z0-9._-]{0,63}
bool IsValidAccountId(std::string_view id);
// [A-Za-z0-9._:-]{1,128}: every client id (reservation, usage, refund,
// revenue, adjustment, transfer ids and Idempotency-Keys), so that an id is
// always one URL path segment as it is (no "/", no percent-encoding).
bool IsValidClientId(std::string_view id);

std::string CheckAccountId(std::string_view field, std::string_view id);
std::string CheckClientId(std::string_view field, std::string_view id);
// At most `max_bytes` bytes of valid UTF-8 without control characters.
std::string CheckText(std::string_view field, std::string_view text, size_t max_bytes);
// A non-empty dimension value (model, action, waste ...) of at most 128 bytes.
std::string CheckDimension(std::string_view field, std::string_view text, bool required);
// 0 <= value <= 10^12 (or 1 <= value when `positive`).
std::string CheckAmount(std::string_view field, int64_t value, bool positive);
std::string CheckTokens(const TokenCounts& tokens);
// At most 16 tags, keys 1..64 bytes and unique, values at most 256 bytes.
// Sorts the tags by key.
std::string CheckAndSortTags(Tags* tags);

// The kinds of events a webhook may subscribe to (SPEC section 8, API.md).
const std::vector<std::string>& WebhookEventKinds();
// 1..16 known kinds, none repeated.
std::string CheckWebhookEvents(const std::vector<std::string>& events);

// Folds a request's fields into a 64-bit XXH3 hash: the payload identity used
// to tell an idempotent retry from a conflict. Every field is length-prefixed
// so that ("ab","c") and ("a","bc") differ.
class RequestHasher {
 public:
  RequestHasher();
  ~RequestHasher();
  RequestHasher(const RequestHasher&) = delete;
  RequestHasher& operator=(const RequestHasher&) = delete;

  RequestHasher& Add(std::string_view text);
  RequestHasher& Add(int64_t value);
  RequestHasher& Add(const Tags& tags);
  RequestHasher& Add(const TokenCounts& tokens);
  RequestHasher& Add(const std::vector<std::string>& texts);
  uint64_t Finish() const;

 private:
  static std::string& Scratch();
  std::string buffer_;
};

}  // namespace purser
