// Little-endian fixed-width fields and length-prefixed strings: the
// encoding of projection checkpoints, cold records and the state digest.
// Simple and unambiguous: the digest is over these bytes, so every field has
// exactly one encoding.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "ledger/base/types.h"

namespace purser {

class BinaryWriter {
 public:
  BinaryWriter(std::string* out, bool canonical) : out_(out), canonical_(canonical) {}
  // Canonical output lists every collection in key order (the digest);
  // otherwise in memory order, which loads the same and costs no sorting.
  bool canonical() const { return canonical_; }
  // With a sink, MaybeFlush() hands out what was written once it exceeds
  // 1 MiB, so a digest streams through SHA-256 without one huge buffer.
  void SetSink(std::function<void(std::string_view)> sink) { sink_ = std::move(sink); }
  void MaybeFlush(size_t threshold = 1 << 20) {
    if (sink_ && out_->size() >= threshold) {
      sink_(*out_);
      out_->clear();
    }
  }
  void Flush() { MaybeFlush(0); }
  // Compact output writes U64 and I64 (and so string lengths and counts) as
  // varints, the projection checkpoint's form since version 3; the digest
  // stays fixed-width.
  void SetCompact(bool compact) { compact_ = compact; }
  bool compact() const { return compact_; }
  void U64(uint64_t value) {
    if (compact_) {
      Var(value);
    } else {
      out_->append(reinterpret_cast<const char*>(&value), 8);
    }
  }
  void I64(int64_t value) {
    if (compact_) {
      ZigZag(value);
    } else {
      U64(static_cast<uint64_t>(value));
    }
  }
  void U8(uint8_t value) { out_->push_back(static_cast<char>(value)); }
  void Bool(bool value) { U8(value ? 1 : 0); }
  void Str(std::string_view text) {
    U64(text.size());
    out_->append(text);
  }
  // Compact forms for stored records (not the digest): LEB128 varints,
  // zig-zag for signed values.
  void Var(uint64_t value) {
    char bytes[10];  // one append: a push_back per byte was a third of a checkpoint
    size_t size = 0;
    while (value >= 0x80) {
      bytes[size++] = static_cast<char>(value | 0x80);
      value >>= 7;
    }
    bytes[size++] = static_cast<char>(value);
    out_->append(bytes, size);
  }
  void ZigZag(int64_t value) {
    Var((static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63));
  }
  void VarStr(std::string_view text) {
    Var(text.size());
    out_->append(text);
  }
  void Digest(const Sha256Digest& digest) {
    out_->append(reinterpret_cast<const char*>(digest.data()), digest.size());
  }

 private:
  std::string* out_;
  bool canonical_;
  bool compact_ = false;
  std::function<void(std::string_view)> sink_;
};

class BinaryReader {
 public:
  explicit BinaryReader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return ok_ && pos_ == in_.size(); }
  // The bytes read are not what they must be: every later read fails too.
  void Fail() { ok_ = false; }
  // Reads what a compact BinaryWriter wrote (see there).
  void SetCompact(bool compact) { compact_ = compact; }
  bool compact() const { return compact_; }
  uint64_t U64() {
    if (compact_) return Var();
    if (!Need(8)) return 0;
    uint64_t value;
    std::memcpy(&value, in_.data() + pos_, 8);
    pos_ += 8;
    return value;
  }
  int64_t I64() { return compact_ ? ZigZag() : static_cast<int64_t>(U64()); }
  uint8_t U8() { return Need(1) ? static_cast<uint8_t>(in_[pos_++]) : 0; }
  bool Bool() { return U8() != 0; }
  std::string Str() {
    uint64_t size = U64();
    if (!Need(size)) return {};
    std::string text(in_.substr(pos_, size));
    pos_ += size;
    return text;
  }
  Sha256Digest Digest() {
    Sha256Digest digest{};
    if (Need(32)) {
      std::memcpy(digest.data(), in_.data() + pos_, 32);
      pos_ += 32;
    }
    return digest;
  }
  uint64_t Var() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (!Need(1)) return 0;
      auto byte = static_cast<uint8_t>(in_[pos_++]);
      if (shift == 63 && byte > 1) break;  // more than 64 bits
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
    ok_ = false;
    return 0;
  }
  int64_t ZigZag() {
    uint64_t value = Var();
    return static_cast<int64_t>((value >> 1) ^ (~(value & 1) + 1));
  }
  std::string VarStr() {
    uint64_t size = Var();
    if (!Need(size)) return {};
    std::string text(in_.substr(pos_, size));
    pos_ += size;
    return text;
  }
  // A count of items that each take at least one byte: bounded by what is left.
  uint64_t Count() { return Bounded(U64()); }
  uint64_t VarCount() { return Bounded(Var()); }

 private:
  uint64_t Bounded(uint64_t count) {
    if (count > in_.size() - std::min(pos_, in_.size())) ok_ = false;
    return ok_ ? count : 0;
  }
  bool Need(uint64_t bytes) {
    if (!ok_ || bytes > in_.size() - pos_) ok_ = false;
    return ok_;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
  bool compact_ = false;
};

}  // namespace purser
