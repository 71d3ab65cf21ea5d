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

bool IsPrivateAddress(const sockaddr* address) {
  if (address->sa_family == AF_INET) {
    uint32_t ip = ntohl(reinterpret_cast<const sockaddr_in*>(address)->sin_addr.s_addr);
    uint8_t a = static_cast<uint8_t>(ip >> 24);
    uint8_t b = static_cast<uint8_t>(ip >> 16);
    return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) ||
           (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
           (a == 100 && b >= 64 && b <= 127) || a >= 224;
  }
  if (address->sa_family == AF_INET6) {
    const uint8_t* ip = reinterpret_cast<const sockaddr_in6*>(address)->sin6_addr.s6_addr;
    static const uint8_t kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const uint8_t kZero[16] = {};
    bool mapped = std::all_of(ip, ip + 10, [](uint8_t x) { return x == 0; }) && ip[10] == 0xff &&
                  ip[11] == 0xff;
    if (mapped) {
      sockaddr_in v4{};
      v4.sin_family = AF_INET;
      std::memcpy(&v4.sin_addr, ip + 12, 4);
      return IsPrivateAddress(reinterpret_cast<const sockaddr*>(&v4));
    }
    return std::memcmp(ip, kLoopback, 16) == 0 || std::memcmp(ip, kZero, 16) == 0 ||
           (ip[0] & 0xfe) == 0xfc || (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) || ip[0] == 0xff;
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
