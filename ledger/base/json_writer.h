// A small streaming JSON writer with correct string escaping. Money is
// written as integers (micro-USD) or, for the compatibility endpoints, as
// exact decimals via Usd() — never through a double.
//
// Thread-safety: none; one writer per output.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace purser {

class JsonWriter {
 public:
  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  // The key of the next value inside an object.
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Exact decimal USD from micro-USD ("14.73").
  JsonWriter& Usd(int64_t micros);
  // Already-serialized JSON.
  JsonWriter& Raw(std::string_view json);

  // Key + value shortcuts.
  JsonWriter& Field(std::string_view key, std::string_view value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, const char* value) { return Key(key).String(value); }
  JsonWriter& Field(std::string_view key, int64_t value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, int value) { return Key(key).Int(value); }
  JsonWriter& Field(std::string_view key, uint64_t value) { return Key(key).Uint(value); }
  JsonWriter& Field(std::string_view key, bool value) { return Key(key).Bool(value); }
  // A string field that is null when empty.
  JsonWriter& OptionalField(std::string_view key, std::string_view value);
  // A limit field that is null when negative (no limit).
  JsonWriter& LimitField(std::string_view key, int64_t value);

  const std::string& str() const { return out_; }
  std::string Take() { return std::move(out_); }
  void Clear() {
    out_.clear();
    need_comma_ = false;
  }

 private:
  void Separate();
  std::string out_;
  bool need_comma_ = false;
};

// Appends `value` as a quoted, escaped JSON string.
void AppendJsonString(std::string* out, std::string_view value);

}  // namespace purser
