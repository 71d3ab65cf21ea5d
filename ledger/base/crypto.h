// SHA-256 and random bytes (OpenSSL), for the hash chain, the state digest
// and API keys.
#pragma once

#include <openssl/evp.h>

#include <initializer_list>
#include <string>
#include <string_view>

#include "ledger/base/types.h"

namespace purser {

Sha256Digest Sha256(std::string_view data);
// SHA-256 of the pieces concatenated, without copying them together.
Sha256Digest Sha256Of(std::initializer_list<std::string_view> pieces);

// Incremental SHA-256 over many pieces (the state digest).
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  void Update(std::string_view data);
  Sha256Digest Finish();

 private:
  EVP_MD_CTX* context_;
};

// `count` cryptographically random bytes as lowercase hex.
std::string RandomHex(size_t count);

// A new API key: "pk_" + 32 random bytes in hex (256 bits of entropy).
std::string NewApiKeySecret();

}  // namespace purser
