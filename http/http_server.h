// The HTTP/1.1 server of purserd (Boost.Beast on Asio, keep-alive, optional
// TLS). It runs on its own Asio thread(s) and never blocks the RPC loop: a
// request is decoded, handed to HttpApi (which queues it on the sequencer),
// and its response written when the sequencer's completion is posted back.
//
// Limits: request bodies up to 1 MiB (16 MiB for /v1/batch), refused with
// 413 from the Content-Length before the body is read; headers up to 16 KiB;
// a read timeout per request and an idle timeout per connection, so a slow or
// half-open client cannot hold a thread; a cap on open connections.
//
// Thread-safety: Start/StopAccepting/Stop from one controlling thread;
// `*api` must outlive the server.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "http/http_api.h"
#include "ledger/base/status.h"

namespace purser {

struct HttpServerOptions {
  // "HOST:PORT" (port 0 = ephemeral). Default: 127.0.0.1:8480.
  std::string address = "127.0.0.1:8480";
  std::string tls_cert_file;  // PEM; both or neither
  std::string tls_key_file;
  bool insecure = false;      // allow a non-loopback address without TLS
  int threads = 1;
  size_t body_bytes_max = 1 << 20;
  size_t batch_body_bytes_max = 16 << 20;
  uint32_t header_bytes_max = 16 << 10;
  size_t connections_max = 4096;
  int idle_timeout_s = 60;    // between requests of a keep-alive connection
  int read_timeout_s = 15;    // to receive one request once it started
};

class HttpServer {
 public:
  HttpServer(HttpApi* api, HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  Status Start();
  uint16_t port() const { return port_; }
  void StopAccepting();
  void Stop();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace purser
