// A webhook receiver: an HTTP/1.1 server on 127.0.0.1 with kept-alive
// connections (over TLS when given a certificate), for the webhook tests and
// the delivery benchmark. It answers each POST as `answer` says and keeps
// what it received.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace purser::bench {

// One POST as the receiver saw it.
struct Received {
  std::string target;
  std::string event_id;
  std::string signature;
  std::string content_type;
  std::string host;
  std::string body;
  std::chrono::steady_clock::time_point at;
};

struct ReceiverOptions {
  // The status of each request, from its target and how many requests that
  // target has had (1 for the first); 0 means never answer (the connection
  // is held open). Called on the receiver's thread. Default: 200.
  std::function<int(const std::string& target, int nth)> answer;
  // PEM files: serve HTTPS. Default: plain HTTP.
  std::string cert_file;
  std::string key_file;
  // Keep every request (else only count them). Default: true.
  bool keep = true;
  // Close each connection right after answering, without saying so (as a
  // receiver that drops idle kept-alive connections does). Default: false.
  bool drop_after_answer = false;
};

class Receiver {
 public:
  explicit Receiver(ReceiverOptions options);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  // "http(s)://<host>:<port><path>".
  std::string Url(const std::string& path, const std::string& host = "127.0.0.1") const;
  // What `target` (every target when empty) received, in arrival order.
  std::vector<Received> Get(const std::string& target = "") const;
  // Waits up to `seconds` until `target` has had `count` requests.
  bool WaitFor(const std::string& target, size_t count, int seconds = 30) const;

  uint64_t requests() const;
  int connections() const;
  int failed_handshakes() const;
  // Delays every answer by this long.
  void set_delay_ms(int delay_ms);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace purser::bench
