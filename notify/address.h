// Webhook URLs and where they lead: the parts of an http(s) URL, and the
// private-address rule of SPEC section 6 (loopback, link-local and private
// ranges are refused unless the operator allows them), checked when a
// webhook is registered and again at every delivery, on the addresses the
// name resolves to then (a name may later resolve elsewhere).
#pragma once

#include <sys/socket.h>

#include <string>

namespace purser {

struct WebhookUrl {
  bool tls = false;
  std::string host;    // without brackets for IPv6
  std::string port;    // "443" / "80" when absent
  std::string target;  // path and query, at least "/"
};

// False (with *error) when `url` is not http:// or https:// with a host, or
// carries credentials.
bool ParseWebhookUrl(const std::string& url, WebhookUrl* out, std::string* error);

// Loopback, link-local, private, shared (100.64/10), unspecified or multicast.
bool IsPrivateAddress(const sockaddr* address);

// "" when `url` parses and its host resolves (now) only to addresses it may
// reach; else why not. Resolves with getaddrinfo (blocking).
std::string CheckWebhookUrl(const std::string& url, bool allow_private);

}  // namespace purser
