// Operating errors (I/O, corruption, bad files): the second failure channel of
// STYLE.md. A Status is [[nodiscard]]; ignore one on purpose with
// `status.PermitUnchecked()` so that the intent can be found.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace purser {

// What kind of failure a Status is: the edges map it to a result code
// (ToResultCode), operators and tools tell damage from a full or failing
// disk by it.
enum class StatusCode : uint8_t {
  kOk = 0,
  kFailed,           // not classified further
  kInvalidArgument,  // the caller's input (a path, a file name) is unusable
  kNotFound,         // what was asked for does not exist
  kCorruption,       // stored bytes fail their checks: data is damaged
  kIOError,          // the operating system or RocksDB could not read or write
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(StatusCode::kFailed, std::move(message)); }
  static Status InvalidArgument(std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message));
  }
  static Status NotFound(std::string message) { return Status(StatusCode::kNotFound, std::move(message)); }
  static Status Corruption(std::string message) {
    return Status(StatusCode::kCorruption, std::move(message));
  }
  static Status IOError(std::string message) { return Status(StatusCode::kIOError, std::move(message)); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  bool IsCorruption() const { return code_ == StatusCode::kCorruption; }
  bool IsIOError() const { return code_ == StatusCode::kIOError; }
  // The same failure with `context` before its message ("recovery: ...").
  Status WithContext(const std::string& context) const {
    return ok() ? *this : Status(code_, context + message());
  }
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }
  void PermitUnchecked() const {}

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::kOk;
  std::optional<std::string> message_;
};

// A value or an operating error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T* operator->() { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

[[noreturn]] void AssertionFailed(const char* expression, const char* file, int line);

// While one lives on a thread, an assertion failure on that thread throws
// AssertionFailure instead of aborting. For code that applies events from a
// log it did not write itself (recovery, the replay tools): a log that is
// hashed correctly but cannot be applied (a forged or buggy writer) is then a
// clean error naming the event, never a crash. The live commit path keeps
// aborting: there a failed assertion is a bug of ours.
class ThrowOnAssertion {
 public:
  ThrowOnAssertion();
  ~ThrowOnAssertion();
  ThrowOnAssertion(const ThrowOnAssertion&) = delete;
  ThrowOnAssertion& operator=(const ThrowOnAssertion&) = delete;

 private:
  bool previous_;
};

class AssertionFailure : public std::exception {
 public:
  explicit AssertionFailure(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace purser

// Bugs trip an assertion and crash, in release builds too. Never use for input.
#define PURSER_ASSERT(expression)                                    \
  do {                                                               \
    if (!(expression)) [[unlikely]]                                  \
      ::purser::AssertionFailed(#expression, __FILE__, __LINE__);    \
  } while (false)
