// Operating errors (I/O, corruption, bad files): the second failure channel of
// STYLE.md. A Status is [[nodiscard]]; ignore one on purpose with
// `status.PermitUnchecked()` so that the intent can be found.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

namespace purser {

class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }
  void PermitUnchecked() const {}

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
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

}  // namespace purser

// Bugs trip an assertion and crash, in release builds too. Never use for input.
#define PURSER_ASSERT(expression)                                    \
  do {                                                               \
    if (!(expression)) [[unlikely]]                                  \
      ::purser::AssertionFailed(#expression, __FILE__, __LINE__);    \
  } while (false)
