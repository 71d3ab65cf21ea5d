// Signed checkpoints of the log (SPEC section 9), in the signed-note text
// format of transparency logs (golang.org/x/mod/sumdb/note, the format of
// C2SP's tlog-checkpoint): a text of lines ending in a newline, a blank line,
// then one line per signature, "— <key name> <base64(key hash || signature)>".
// Keys are Ed25519 (OpenSSL); a verifier key is written as
// "<name>+<key hash, 8 hex>+<base64(0x01 || public key)>", the private key
// as "PRIVATE+KEY+<name>+<key hash>+<base64(0x01 || seed)>".
//
// The checkpoint text is four lines: the origin (the key's name), the tree
// size in decimal, the root hash in base64, and "time <RFC 3339 UTC>".
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "ledger/base/status.h"
#include "ledger/base/types.h"

namespace purser {

struct LogCheckpoint {
  std::string origin;
  uint64_t tree_size = 0;
  Sha256Digest root{};
  int64_t time_us = 0;
};

std::string CheckpointText(const LogCheckpoint& checkpoint);
Status ParseCheckpointText(std::string_view text, LogCheckpoint* checkpoint);
// The checkpoint of a stored signed note, its signature not checked: the
// service reading back what it signed (an auditor uses NoteVerifier::Open).
Status ParseSignedCheckpoint(std::string_view note, LogCheckpoint* checkpoint);

class NoteSigner {
 public:
  // A new key pair named `name` (no spaces, no '+').
  static Result<NoteSigner> Generate(const std::string& name);
  static Result<NoteSigner> FromPrivateKey(std::string_view text);

  const std::string& name() const { return name_; }
  std::string PrivateKeyText() const;
  std::string VerifierKeyText() const;
  // The note: `text` (which must end in a newline), a blank line and the
  // signature line.
  std::string Sign(std::string_view text) const;

 private:
  std::string name_;
  std::array<uint8_t, 32> seed_{};
  std::array<uint8_t, 32> public_key_{};
};

class NoteVerifier {
 public:
  static Result<NoteVerifier> FromVerifierKey(std::string_view text);
  const std::string& name() const { return name_; }
  // The note's text when it carries a valid signature of this key; an
  // error (which says why) otherwise.
  Result<std::string> Open(std::string_view note) const;

 private:
  std::string name_;
  uint32_t key_hash_ = 0;
  std::array<uint8_t, 32> public_key_{};
};

// The service's signing key in `data_dir`: log.key (the private key, mode
// 0600) and log.pub (the verifier key anyone may have). Created on the
// first start; an unreadable or malformed key is an error, never replaced.
inline constexpr char kLogPrivateKeyFile[] = "log.key";
inline constexpr char kLogPublicKeyFile[] = "log.pub";
Result<NoteSigner> LoadOrCreateLogKey(const std::string& data_dir);

std::string Base64Encode(std::string_view bytes);
bool Base64Decode(std::string_view text, std::string* bytes);

}  // namespace purser
