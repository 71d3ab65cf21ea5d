#include "ledger/base/signed_note.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "ledger/base/clock.h"
#include "ledger/base/crypto.h"
#include "ledger/base/money.h"

namespace purser {

namespace {

constexpr uint8_t kEd25519 = 1;             // the note format's algorithm byte
constexpr std::string_view kDash = "\u2014 ";  // "— " begins a signature line
constexpr std::string_view kPrivatePrefix = "PRIVATE+KEY+";

struct PkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct MdCtxDeleter {
  void operator()(EVP_MD_CTX* context) const { EVP_MD_CTX_free(context); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyDeleter>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, MdCtxDeleter>;

std::string_view Bytes(const std::array<uint8_t, 32>& key) {
  return std::string_view(reinterpret_cast<const char*>(key.data()), key.size());
}

// The first four bytes of SHA-256(name || "\n" || algorithm || public key).
uint32_t KeyHash(const std::string& name, const std::array<uint8_t, 32>& public_key) {
  std::string input = name + "\n";
  input.push_back(static_cast<char>(kEd25519));
  input.append(Bytes(public_key));
  Sha256Digest digest = Sha256(input);
  return uint32_t{digest[0]} << 24 | uint32_t{digest[1]} << 16 | uint32_t{digest[2]} << 8 | digest[3];
}

std::string HashHex(uint32_t hash) {
  char text[9];
  std::snprintf(text, sizeof text, "%08x", hash);
  return text;
}

bool ValidName(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (c == '+' || c <= ' ' || c == 0x7f) return false;
  }
  return true;
}

// "name+hash+base64(algorithm || key)" into its parts.
Status ParseKey(std::string_view text, std::string* name, uint32_t* hash, std::array<uint8_t, 32>* key) {
  size_t first = text.find('+');
  size_t second = first == std::string_view::npos ? first : text.find('+', first + 1);
  if (second == std::string_view::npos) return Status::InvalidArgument("a key is name+hash+base64");
  *name = std::string(text.substr(0, first));
  std::string_view hash_hex = text.substr(first + 1, second - first - 1);
  if (hash_hex.size() != 8 || hash_hex.find_first_not_of("0123456789abcdef") != std::string_view::npos) {
    return Status::InvalidArgument("a key's hash is 8 lowercase hex digits");
  }
  *hash = static_cast<uint32_t>(std::stoul(std::string(hash_hex), nullptr, 16));
  std::string bytes;
  if (!Base64Decode(text.substr(second + 1), &bytes) || bytes.size() != 33 ||
      static_cast<uint8_t>(bytes[0]) != kEd25519) {
    return Status::InvalidArgument("a key is an Ed25519 key in base64 (33 bytes with its algorithm)");
  }
  std::memcpy(key->data(), bytes.data() + 1, 32);
  if (!ValidName(*name)) return Status::InvalidArgument("a key's name has no spaces and no '+'");
  return Status::Ok();
}

std::string KeyText(const std::string& name, uint32_t hash, const std::array<uint8_t, 32>& key) {
  std::string bytes(1, static_cast<char>(kEd25519));
  bytes.append(Bytes(key));
  return name + "+" + HashHex(hash) + "+" + Base64Encode(bytes);
}

Status ReadFile(const std::string& path, std::string* text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("cannot read " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  *text = buffer.str();
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
  return Status::Ok();
}

// Writes a new file (never an existing one) and syncs it and its directory.
Status WriteNewFile(const std::string& dir, const std::string& name, const std::string& text, mode_t mode) {
  const std::string path = dir + "/" + name;
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::IOError("creating " + path + ": " + std::strerror(errno));
  ssize_t written = write(fd, text.data(), text.size());
  bool ok = written == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
  int error = errno;
  close(fd);
  if (!ok) return Status::IOError("writing " + path + ": " + std::strerror(error));
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Status::IOError("opening " + dir + ": " + std::strerror(errno));
  int synced = fsync(dir_fd);
  close(dir_fd);
  if (synced != 0) return Status::IOError("syncing " + dir);
  return Status::Ok();
}

}  // namespace

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                               reinterpret_cast<const unsigned char*>(bytes.data()),
                               static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

bool Base64Decode(std::string_view text, std::string* bytes) {
  if (text.size() % 4 != 0) return false;
  if (text.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") !=
      std::string_view::npos) {
    return false;
  }
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') ++padding;
  if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
  bytes->assign(3 * (text.size() / 4), '\0');
  int length = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(bytes->data()),
                               reinterpret_cast<const unsigned char*>(text.data()),
                               static_cast<int>(text.size()));
  if (length < 0 || static_cast<size_t>(length) < padding) return false;
  bytes->resize(static_cast<size_t>(length) - padding);
  return true;
}

std::string CheckpointText(const LogCheckpoint& c) {
  std::string root(reinterpret_cast<const char*>(c.root.data()), c.root.size());
  return c.origin + "\n" + std::to_string(c.tree_size) + "\n" + Base64Encode(root) + "\ntime " +
         FormatTimestamp(c.time_us) + "\n";
}

Status ParseCheckpointText(std::string_view text, LogCheckpoint* c) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t end = text.find('\n');
    if (end == std::string_view::npos) return Status::InvalidArgument("a checkpoint's text ends in a newline");
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  if (lines.size() < 3) return Status::InvalidArgument("a checkpoint has an origin, a size and a root");
  c->origin = std::string(lines[0]);
  std::optional<int64_t> size = ParseInt64(lines[1]);
  if (!size || *size < 0 || lines[1].find_first_not_of("0123456789") != std::string_view::npos) {
    return Status::InvalidArgument("a checkpoint's size is a decimal number");
  }
  c->tree_size = static_cast<uint64_t>(*size);
  std::string root;
  if (!Base64Decode(lines[2], &root) || root.size() != 32) {
    return Status::InvalidArgument("a checkpoint's root is 32 bytes in base64");
  }
  std::memcpy(c->root.data(), root.data(), 32);
  c->time_us = 0;
  for (size_t i = 3; i < lines.size(); ++i) {
    if (!lines[i].starts_with("time ")) continue;
    std::optional<int64_t> time = ParseTimestamp(lines[i].substr(5));
    if (!time) return Status::InvalidArgument("a checkpoint's time is RFC 3339 UTC");
    c->time_us = *time;
  }
  return Status::Ok();
}

Result<NoteSigner> NoteSigner::Generate(const std::string& name) {
  if (!ValidName(name)) return Status::InvalidArgument("a key's name has no spaces and no '+'");
  EVP_PKEY* raw = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> context(
      EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr), EVP_PKEY_CTX_free);
  if (!context || EVP_PKEY_keygen_init(context.get()) != 1 ||
      EVP_PKEY_keygen(context.get(), &raw) != 1) {
    return Status::Error("cannot generate an Ed25519 key");
  }
  Pkey key(raw);
  NoteSigner signer;
  signer.name_ = name;
  size_t seed_size = 32;
  size_t public_size = 32;
  if (EVP_PKEY_get_raw_private_key(key.get(), signer.seed_.data(), &seed_size) != 1 ||
      EVP_PKEY_get_raw_public_key(key.get(), signer.public_key_.data(), &public_size) != 1 ||
      seed_size != 32 || public_size != 32) {
    return Status::Error("cannot read the new Ed25519 key");
  }
  return signer;
}

Result<NoteSigner> NoteSigner::FromPrivateKey(std::string_view text) {
  if (!text.starts_with(kPrivatePrefix)) return Status::InvalidArgument("a private key starts with PRIVATE+KEY+");
  NoteSigner signer;
  uint32_t hash = 0;
  if (Status status = ParseKey(text.substr(kPrivatePrefix.size()), &signer.name_, &hash, &signer.seed_);
      !status.ok()) {
    return status;
  }
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, signer.seed_.data(), 32));
  size_t public_size = 32;
  if (!key || EVP_PKEY_get_raw_public_key(key.get(), signer.public_key_.data(), &public_size) != 1) {
    return Status::InvalidArgument("the private key is not an Ed25519 key");
  }
  if (KeyHash(signer.name_, signer.public_key_) != hash) {
    return Status::InvalidArgument("the private key's hash does not match its key");
  }
  return signer;
}

std::string NoteSigner::PrivateKeyText() const {
  return std::string(kPrivatePrefix) + KeyText(name_, KeyHash(name_, public_key_), seed_);
}

std::string NoteSigner::VerifierKeyText() const {
  return KeyText(name_, KeyHash(name_, public_key_), public_key_);
}

std::string NoteSigner::Sign(std::string_view text) const {
  PURSER_ASSERT(!text.empty() && text.back() == '\n');
  Pkey key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed_.data(), 32));
  MdCtx context(EVP_MD_CTX_new());
  std::string signature(4 + 64, '\0');
  uint32_t hash = KeyHash(name_, public_key_);
  for (int i = 0; i < 4; ++i) signature[i] = static_cast<char>(hash >> (24 - 8 * i));
  size_t length = 64;
  PURSER_ASSERT(key && context &&
                EVP_DigestSignInit(context.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
                EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data() + 4),
                               &length, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size()) == 1 &&
                length == 64);
  return std::string(text) + "\n" + std::string(kDash) + name_ + " " + Base64Encode(signature) + "\n";
}

Result<NoteVerifier> NoteVerifier::FromVerifierKey(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  NoteVerifier verifier;
  if (Status status = ParseKey(text, &verifier.name_, &verifier.key_hash_, &verifier.public_key_);
      !status.ok()) {
    return status;
  }
  if (KeyHash(verifier.name_, verifier.public_key_) != verifier.key_hash_) {
    return Status::InvalidArgument("the verifier key's hash does not match its key");
  }
  return verifier;
}

Status ParseSignedCheckpoint(std::string_view note, LogCheckpoint* checkpoint) {
  size_t blank = note.rfind("\n\n");
  if (blank == std::string_view::npos) return Status::Corruption("a stored checkpoint is not a signed note");
  return ParseCheckpointText(note.substr(0, blank + 1), checkpoint);
}

Result<std::string> NoteVerifier::Open(std::string_view note) const {
  size_t blank = note.rfind("\n\n");
  if (blank == std::string_view::npos) return Status::InvalidArgument("not a signed note (no blank line)");
  std::string_view text = note.substr(0, blank + 1);
  std::string_view signatures = note.substr(blank + 2);
  if (text.find("\n\n") != std::string_view::npos) {
    return Status::InvalidArgument("not a signed note (a blank line in its text)");
  }
  while (!signatures.empty()) {
    size_t end = signatures.find('\n');
    if (end == std::string_view::npos) return Status::InvalidArgument("a signature line ends in a newline");
    std::string_view line = signatures.substr(0, end);
    signatures.remove_prefix(end + 1);
    if (!line.starts_with(kDash)) return Status::InvalidArgument("a signature line starts with \u2014");
    line.remove_prefix(kDash.size());
    size_t space = line.find(' ');
    if (space == std::string_view::npos || line.substr(0, space) != name_) continue;
    std::string signature;
    if (!Base64Decode(line.substr(space + 1), &signature) || signature.size() != 68) continue;
    uint32_t hash = 0;
    for (int i = 0; i < 4; ++i) hash = hash << 8 | static_cast<uint8_t>(signature[i]);
    if (hash != key_hash_) continue;
    Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, public_key_.data(), 32));
    MdCtx context(EVP_MD_CTX_new());
    bool valid = key && context &&
                 EVP_DigestVerifyInit(context.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
                 EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data() + 4),
                                  64, reinterpret_cast<const unsigned char*>(text.data()),
                                  text.size()) == 1;
    if (valid) return std::string(text);
    return Status::Corruption("the signature of " + name_ + " does not verify");
  }
  return Status::NotFound("the note carries no signature of " + name_);
}

Result<NoteSigner> LoadOrCreateLogKey(const std::string& data_dir) {
  const std::string private_path = data_dir + "/" + kLogPrivateKeyFile;
  const std::string public_path = data_dir + "/" + kLogPublicKeyFile;
  std::error_code error;
  if (std::filesystem::exists(private_path, error)) {
    std::string text;
    if (Status status = ReadFile(private_path, &text); !status.ok()) return status;
    Result<NoteSigner> signer = NoteSigner::FromPrivateKey(text);
    if (!signer.ok()) return signer.status().WithContext(private_path + ": ");
    if (!std::filesystem::exists(public_path, error)) {
      if (Status status = WriteNewFile(data_dir, kLogPublicKeyFile, signer->VerifierKeyText() + "\n", 0644);
          !status.ok()) {
        return status;
      }
    }
    return signer;
  }
  Result<NoteSigner> signer = NoteSigner::Generate("purser-log-" + RandomHex(4));
  if (!signer.ok()) return signer.status();
  // The public key first: a crash between the two leaves no private key,
  // and the next start makes a new pair.
  std::filesystem::remove(public_path, error);
  if (Status status = WriteNewFile(data_dir, kLogPublicKeyFile, signer->VerifierKeyText() + "\n", 0644);
      !status.ok()) {
    return status;
  }
  if (Status status = WriteNewFile(data_dir, kLogPrivateKeyFile, signer->PrivateKeyText() + "\n", 0600);
      !status.ok()) {
    return status;
  }
  return signer;
}

}  // namespace purser
