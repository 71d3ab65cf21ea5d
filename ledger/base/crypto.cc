#include "ledger/base/crypto.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ledger/machine/commands.h"
#include "ledger/base/status.h"

namespace purser {

Sha256Digest Sha256(std::string_view data) { return Sha256Of({data}); }

Sha256Digest Sha256Of(std::initializer_list<std::string_view> pieces) {
  // A digest context and the algorithm fetched once per thread: OpenSSL 3's
  // one-shot SHA256() looks the algorithm up by name on every call (a lock
  // and a string compare), which costs more than hashing a small event.
  struct Context {
    EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() {
      EVP_MD_CTX_free(ctx);
      EVP_MD_free(md);
    }
  };
  thread_local Context context;
  Sha256Digest digest;
  unsigned int length = 0;
  PURSER_ASSERT(context.md != nullptr && context.ctx != nullptr &&
                EVP_DigestInit_ex2(context.ctx, context.md, nullptr) == 1);
  for (std::string_view piece : pieces) EVP_DigestUpdate(context.ctx, piece.data(), piece.size());
  PURSER_ASSERT(EVP_DigestFinal_ex(context.ctx, digest.data(), &length) == 1 && length == 32);
  return digest;
}

Sha256Stream::Sha256Stream() : context_(EVP_MD_CTX_new()) {
  PURSER_ASSERT(context_ != nullptr);
  PURSER_ASSERT(EVP_DigestInit_ex(context_, EVP_sha256(), nullptr) == 1);
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(context_); }

void Sha256Stream::Update(std::string_view data) {
  PURSER_ASSERT(EVP_DigestUpdate(context_, data.data(), data.size()) == 1);
}

Sha256Digest Sha256Stream::Finish() {
  Sha256Digest digest;
  unsigned int length = 0;
  PURSER_ASSERT(EVP_DigestFinal_ex(context_, digest.data(), &length) == 1 && length == 32);
  return digest;
}

std::string RandomHex(size_t count) {
  std::string bytes(count, '\0');
  PURSER_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()),
                           static_cast<int>(count)) == 1);
  return HexEncode(reinterpret_cast<const uint8_t*>(bytes.data()), count);
}

std::string NewApiKeySecret() { return "pk_" + RandomHex(32); }

Credentials Credentials::FromApiKey(std::string_view api_key) {
  return Credentials{false, Sha256(api_key)};
}

namespace {
thread_local bool g_throw_on_assertion = false;
}  // namespace

ThrowOnAssertion::ThrowOnAssertion() : previous_(g_throw_on_assertion) { g_throw_on_assertion = true; }
ThrowOnAssertion::~ThrowOnAssertion() { g_throw_on_assertion = previous_; }

void AssertionFailed(const char* expression, const char* file, int line) {
  if (g_throw_on_assertion) {
    throw AssertionFailure(std::string(expression) + " (" + file + ":" + std::to_string(line) + ")");
  }
  std::fprintf(stderr, "purser: assertion failed: %s at %s:%d\n", expression, file, line);
  std::fflush(stderr);
  std::abort();
}

}  // namespace purser
