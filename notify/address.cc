#include "notify/address.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <cstring>

namespace purser {

bool ParseWebhookUrl(const std::string& url, WebhookUrl* out, std::string* error) {
  std::string rest;
  if (url.rfind("https://", 0) == 0) {
    out->tls = true;
    rest = url.substr(8);
  } else if (url.rfind("http://", 0) == 0) {
    out->tls = false;
    rest = url.substr(7);
  } else {
    *error = "url must start with http:// or https://";
    return false;
  }
  size_t end = rest.find_first_of("/?#");
  std::string authority = rest.substr(0, end);
  out->target = end == std::string::npos ? "/" : rest.substr(end);
  if (size_t hash = out->target.find('#'); hash != std::string::npos) out->target.resize(hash);
  if (out->target.empty() || out->target.front() != '/') out->target = "/" + out->target;
  if (authority.find('@') != std::string::npos) {
    *error = "url must not carry credentials";
    return false;
  }
  out->port = out->tls ? "443" : "80";
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos) {
      *error = "url has a bad IPv6 host";
      return false;
    }
    out->host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') {
        *error = "url has a bad port";
        return false;
      }
      out->port = authority.substr(close + 2);
    }
  } else if (size_t colon = authority.rfind(':'); colon != std::string::npos) {
    out->host = authority.substr(0, colon);
    out->port = authority.substr(colon + 1);
  } else {
    out->host = authority;
  }
  if (out->host.empty()) {
    *error = "url has no host";
    return false;
  }
  if (out->port.empty() || out->port.size() > 5 ||
      !std::all_of(out->port.begin(), out->port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(out->port) == 0 || std::stoi(out->port) > 65535) {
    *error = "url has a bad port";
    return false;
  }
  return true;
}

namespace {

bool IsPrivateV4(const uint8_t* ip) {
  const uint8_t a = ip[0];
  const uint8_t b = ip[1];
  return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) ||
         (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
         (a == 100 && b >= 64 && b <= 127) ||  // shared address space (carrier NAT)
         (a == 198 && (b == 18 || b == 19)) ||  // benchmarking
         (a == 192 && b == 0 && ip[2] == 0) ||  // IETF protocol assignments
         a >= 224;                              // multicast, reserved, broadcast
}

bool Zero(const uint8_t* bytes, size_t n) {
  return std::all_of(bytes, bytes + n, [](uint8_t x) { return x == 0; });
}

}  // namespace

bool IsPrivateAddress(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    uint8_t ip[4];
    std::memcpy(ip, &reinterpret_cast<const sockaddr_in*>(address)->sin_addr, 4);
    return IsPrivateV4(ip);
  }
  if (address->sa_family == AF_INET6) {
    const uint8_t* ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
    // Forms that carry an IPv4 address are judged by it: mapped
    // (::ffff:a.b.c.d), compatible (::a.b.c.d, loopback and unspecified
    // included), NAT64 (64:ff9b::a.b.c.d) and 6to4 (2002:abcd::).
    if (Zero(ip, 10) && ip[10] == 0xff && ip[11] == 0xff) return IsPrivateV4(ip + 12);
    if (Zero(ip, 12)) return true;
    static const uint8_t kNat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (std::memcmp(ip, kNat64, 12) == 0) return IsPrivateV4(ip + 12);
    if (ip[0] == 0x20 && ip[1] == 0x02) return IsPrivateV4(ip + 2);
    return (ip[0] & 0xfe) == 0xfc ||                   // unique local fc00::/7
           (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) ||  // link-local fe80::/10
           (ip[0] == 0xfe && (ip[1] & 0xc0) == 0xc0) ||  // site-local fec0::/10
           ip[0] == 0xff;                                // multicast
  }
  return true;
}

std::string CheckWebhookUrl(const std::string& url, bool allow_private) {
  WebhookUrl parsed;
  std::string error;
  if (!ParseWebhookUrl(url, &parsed, &error)) return error;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (getaddrinfo(parsed.host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return "the webhook host " + parsed.host + " does not resolve";
  }
  bool private_address = false;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    private_address = private_address || IsPrivateAddress(a->ai_addr);
  }
  freeaddrinfo(found);
  if (private_address && !allow_private) {
    return "the webhook host " + parsed.host +
           " resolves to a loopback, link-local or private address (allow it with "
           "--allow-private-webhooks)";
  }
  return {};
}

}  // namespace purser
