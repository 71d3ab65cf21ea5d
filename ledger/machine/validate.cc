#include "ledger/machine/validate.h"

#include <xxhash.h>

#include <algorithm>

#include "ledger/base/limits.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

// Strict UTF-8 (no overlongs, no surrogates) without C0 control characters.
bool IsCleanUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return false;
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length;
    uint32_t code;
    if ((c & 0xe0) == 0xc0) {
      length = 2;
      code = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      length = 3;
      code = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      length = 4;
      code = c & 0x07;
    } else {
      return false;
    }
    if (i + length > text.size()) return false;
    for (size_t k = 1; k < length; ++k) {
      auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xc0) != 0x80) return false;
      code = code << 6 | (next & 0x3f);
    }
    if ((length == 2 && code < 0x80) || (length == 3 && code < 0x800) ||
        (length == 4 && (code < 0x10000 || code > 0x10ffff)) ||
        (code >= 0xd800 && code <= 0xdfff)) {
      return false;
    }
    i += length;
  }
  return true;
}

std::string Field(std::string_view field, std::string_view problem) {
  std::string message(field);
  message += ' ';
  message += problem;
  return message;
}

}  // namespace

bool IsValidAccountId(std::string_view id) {
  if (id.empty() || id.size() > kAccountIdBytesMax) return false;
  auto lower_or_digit = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!lower_or_digit(id.front())) return false;
  return std::all_of(id.begin(), id.end(), [&](char c) {
    return lower_or_digit(c) || c == '.' || c == '_' || c == '-';
  });
}

bool IsValidClientId(std::string_view id) {
  if (id.empty() || id.size() > kClientIdBytesMax) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == ':' || c == '-';
  });
}

std::string CheckAccountId(std::string_view field, std::string_view id) {
  if (IsValidAccountId(id)) return {};
  return Field(field, "must match [a-z0-9][a-z0-9._-]{0,63}");
}

std::string CheckClientId(std::string_view field, std::string_view id) {
  if (IsValidClientId(id)) return {};
  return Field(field, "must be 1..128 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'");
}

std::string CheckText(std::string_view field, std::string_view text, size_t max_bytes) {
  if (text.size() > max_bytes) {
    return Field(field, "is longer than " + std::to_string(max_bytes) + " bytes");
  }
  if (!IsCleanUtf8(text)) return Field(field, "must be UTF-8 without control characters");
  return {};
}

std::string CheckDimension(std::string_view field, std::string_view text, bool required) {
  if (required && text.empty()) return Field(field, "is required");
  return CheckText(field, text, kDimensionBytesMax);
}

std::string CheckAmount(std::string_view field, int64_t value, bool positive) {
  if (value < 0) return Field(field, "must not be negative");
  if (positive && value == 0) return Field(field, "must be positive");
  if (value > kInputValueMax) return Field(field, "must be at most 10^12");
  return {};
}

std::string CheckTokens(const TokenCounts& tokens) {
  for (int64_t count : {tokens.input, tokens.output, tokens.cached_input, tokens.cache_write,
                        tokens.reasoning}) {
    if (count < 0 || count > kInputValueMax) return "token counts must be in 0..10^12";
  }
  return {};
}

std::string CheckAndSortTags(Tags* tags) {
  if (tags->size() > kTagsMax) return "tags has more than 16 entries";
  for (const Tag& tag : *tags) {
    if (tag.key.empty()) return "tag keys must not be empty";
    if (std::string problem = CheckText("tag key", tag.key, kTagKeyBytesMax); !problem.empty()) {
      return problem;
    }
    if (std::string problem = CheckText("tag value", tag.value, kTagValueBytesMax);
        !problem.empty()) {
      return problem;
    }
  }
  std::sort(tags->begin(), tags->end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  for (size_t i = 1; i < tags->size(); ++i) {
    if ((*tags)[i].key == (*tags)[i - 1].key) return "tag key repeated: " + (*tags)[i].key;
  }
  return {};
}

RequestHasher& RequestHasher::Add(std::string_view text) {
  Add(static_cast<int64_t>(text.size()));
  buffer_.append(text);
  return *this;
}

RequestHasher& RequestHasher::Add(int64_t value) {
  buffer_.append(reinterpret_cast<const char*>(&value), sizeof value);
  return *this;
}

RequestHasher& RequestHasher::Add(const Tags& tags) {
  Add(static_cast<int64_t>(tags.size()));
  for (const Tag& tag : tags) Add(tag.key).Add(tag.value);
  return *this;
}

RequestHasher& RequestHasher::Add(const TokenCounts& tokens) {
  return Add(tokens.input)
      .Add(tokens.output)
      .Add(tokens.cached_input)
      .Add(tokens.cache_write)
      .Add(tokens.reasoning);
}

RequestHasher& RequestHasher::Add(const std::vector<std::string>& texts) {
  Add(static_cast<int64_t>(texts.size()));
  for (const std::string& text : texts) Add(text);
  return *this;
}

uint64_t RequestHasher::Finish() const { return XXH3_64bits(buffer_.data(), buffer_.size()); }

RequestHasher::RequestHasher() : buffer_(std::move(Scratch())) { buffer_.clear(); }

RequestHasher::~RequestHasher() { Scratch() = std::move(buffer_); }

std::string& RequestHasher::Scratch() {
  // One reused buffer per thread: hashing a request allocates nothing.
  thread_local std::string scratch;
  return scratch;
}

const std::vector<std::string>& WebhookEventKinds() {
  static const std::vector<std::string> kKinds = {
      "budget_threshold", "overrun",          "anomaly",            "runaway",
      "account_frozen",   "account_unfrozen", "reservation_expired"};
  return kKinds;
}

std::string CheckWebhookEvents(const std::vector<std::string>& events) {
  if (events.empty() || events.size() > kWebhookEventsMax) {
    return "events must name 1..16 event kinds";
  }
  const auto& kinds = WebhookEventKinds();
  for (size_t i = 0; i < events.size(); ++i) {
    if (std::find(kinds.begin(), kinds.end(), events[i]) == kinds.end()) {
      return "unknown webhook event kind: " + events[i];
    }
    for (size_t k = 0; k < i; ++k) {
      if (events[k] == events[i]) return "webhook event kind repeated: " + events[i];
    }
  }
  return {};
}

}  // namespace purser
