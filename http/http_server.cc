// <utility> first: Boost 1.74's Asio under g++ 12 in C++20 needs std::exchange
// declared before its awaitable header (../shared/PLATFORM.md).
#include <utility>

#include "http/http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

#include "http/json_views.h"
#include "rpc/rpc_server.h"

namespace purser {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

namespace {

std::string ErrorBody(ResultCode code, const std::string& message) {
  return ReplyToJson(Reply::Error(code, message));
}

// One connection: read a request, answer it, again while keep-alive.
template <typename Stream>
class Session : public std::enable_shared_from_this<Session<Stream>> {
 public:
  Session(Stream stream, HttpApi* api, const HttpServerOptions* options,
          std::atomic<size_t>* connections)
      : stream_(std::move(stream)), api_(api), options_(options), connections_(connections) {}

  ~Session() { connections_->fetch_sub(1); }

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      ReadHeader();
    } else {
      beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_->read_timeout_s));
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code error) {
                                if (!error) self->ReadHeader();
                              });
    }
  }

 private:
  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(options_->header_bytes_max);
    parser_->body_limit(options_->batch_body_bytes_max);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_->idle_timeout_s));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = this->shared_from_this()](beast::error_code error, size_t) {
                              self->OnHeader(error);
                            });
  }

  // True for errors of the connection itself (closed, reset, timed out,
  // stopping), which get no answer; anything else is a malformed request.
  static bool ConnectionGone(beast::error_code error) {
    return error == http::error::end_of_stream || error == net::error::eof ||
           error == beast::error::timeout || error == net::error::operation_aborted ||
           error == net::error::connection_reset || error == net::error::broken_pipe ||
           error == net::ssl::error::stream_truncated;
  }

  void OnHeader(beast::error_code error) {
    if (error) {
      if (error == http::error::header_limit) {
        Fail(431, ResultCode::kInvalidArgument, "headers too large");
      } else if (error == http::error::body_limit) {
        Fail(413, ResultCode::kInvalidArgument, "payload_too_large");  // by its Content-Length
      } else if (!ConnectionGone(error)) {
        // Garbage, HTTP/0.9, a bad method or version, bad lengths: answered.
        Fail(400, ResultCode::kInvalidArgument, "malformed HTTP request: " + error.message());
      }
      return;
    }
    const auto& header = parser_->get();
    // Both framings at once is how requests are smuggled past proxies.
    if (header.count(http::field::content_length) > 0 &&
        header.count(http::field::transfer_encoding) > 0) {
      Fail(400, ResultCode::kInvalidArgument, "Content-Length together with Transfer-Encoding");
      return;
    }
    if (header.count(http::field::content_length) > 1) {
      Fail(400, ResultCode::kInvalidArgument, "more than one Content-Length");
      return;
    }
    std::string_view target(header.target().data(), header.target().size());
    size_t limit = target.rfind("/v1/batch", 0) == 0 ? options_->batch_body_bytes_max
                                                     : options_->body_bytes_max;
    if (parser_->content_length() && *parser_->content_length() > limit) {
      Fail(413, ResultCode::kInvalidArgument, "payload_too_large");
      return;
    }
    parser_->body_limit(limit);
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_->read_timeout_s));
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code read_error, size_t) {
                       self->OnRequest(read_error);
                     });
  }

  void OnRequest(beast::error_code error) {
    if (error == http::error::body_limit) {
      Fail(413, ResultCode::kInvalidArgument, "payload_too_large");
      return;
    }
    if (error) {
      if (!ConnectionGone(error)) {
        Fail(400, ResultCode::kInvalidArgument, "malformed HTTP request: " + error.message());
      }
      return;
    }
    http::request<http::string_body> request = parser_->release();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    HttpRequest decoded;
    decoded.method = std::string(request.method_string());
    std::string_view target(request.target().data(), request.target().size());
    head_ = request.method() == http::verb::head;
    if (!ParseTarget(target, &decoded.path, &decoded.query, &decoded.segments)) {
      Write(Plain(400, ErrorBody(ResultCode::kInvalidArgument,
                                 "the request target is not valid (encoding or a repeated "
                                 "parameter)")));
      return;
    }
    decoded.body = std::move(request.body());
    decoded.authorization = std::string(request[http::field::authorization]);
    decoded.idempotency_key = std::string(request["Idempotency-Key"]);
    // Nothing is read from this connection until the answer is written.
    beast::get_lowest_layer(stream_).expires_never();
    auto self = this->shared_from_this();
    auto executor = stream_.get_executor();
    api_->Handle(decoded, [self, executor](HttpResponse&& response) {
      net::post(executor, [self, response = std::move(response)]() mutable {
        self->Write(std::move(response));
      });
    });
  }

  void Fail(int status, ResultCode code, const std::string& message) {
    keep_alive_ = false;
    std::string body = message == "payload_too_large"
                           ? "{\"error\":{\"code\":\"payload_too_large\",\"message\":\"the body is "
                             "larger than this endpoint accepts\"}}"
                           : ErrorBody(code, message);
    Write(Plain(status, std::move(body)));
  }

  static HttpResponse Plain(int status, std::string body) {
    HttpResponse response;
    response.status = status;
    response.body = std::move(body);
    return response;
  }

  void Write(HttpResponse&& answer) {
    response_.emplace(static_cast<http::status>(answer.status), version_ == 0 ? 11 : version_);
    response_->set(http::field::server, "purserd");
    if (!answer.body.empty()) response_->set(http::field::content_type, answer.content_type);
    if (answer.retry_after_s > 0) {
      response_->set(http::field::retry_after, std::to_string(answer.retry_after_s));
    }
    if (!answer.allow.empty()) response_->set(http::field::allow, answer.allow);
    for (const auto& [name, value] : answer.headers) response_->set(name, value);
    response_->keep_alive(keep_alive_);
    const size_t length = answer.body.size();
    response_->body() = std::move(answer.body);
    response_->prepare_payload();
    if (head_) {
      // HEAD: the headers of the answer, without its body.
      response_->body().clear();
      response_->content_length(length);
    }
    beast::get_lowest_layer(stream_).expires_after(std::chrono::seconds(options_->read_timeout_s));
    http::async_write(stream_, *response_,
                      [self = this->shared_from_this()](beast::error_code error, size_t) {
                        if (error || !self->keep_alive_) {
                          self->Close();
                          return;
                        }
                        self->ReadHeader();
                      });
  }

  void Close() {
    beast::error_code ignored;
    beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_send, ignored);
  }

  Stream stream_;
  HttpApi* api_;
  const HttpServerOptions* options_;
  std::atomic<size_t>* connections_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool keep_alive_ = true;
  bool head_ = false;
  unsigned version_ = 11;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(HttpApi* api, HttpServerOptions options)
      : api_(api), options_(std::move(options)), ssl_(net::ssl::context::tls_server) {}

  Status Start(uint16_t* port) {
    if (!options_.insecure && options_.tls_cert_file.empty() &&
        !IsLoopbackAddress(options_.address)) {
      return Status::Error("refusing to serve HTTP on " + options_.address +
                           " without TLS: give --tls-cert and --tls-key, or --insecure");
    }
    if (options_.tls_cert_file.empty() != options_.tls_key_file.empty()) {
      return Status::Error("--tls-cert and --tls-key go together");
    }
    std::string host;
    std::string port_text;
    size_t colon = options_.address.rfind(':');
    if (colon == std::string::npos) return Status::Error("--http must be HOST:PORT");
    host = options_.address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
    port_text = options_.address.substr(colon + 1);
    beast::error_code error;
    auto address = net::ip::make_address(host == "localhost" ? "127.0.0.1" : host, error);
    if (error) return Status::Error("--http host must be an IP address: " + host);
    unsigned port_number = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port_number > 65535) return Status::Error("--http port is not valid");
      port_number = port_number * 10 + static_cast<unsigned>(c - '0');
    }
    if (port_number > 65535) return Status::Error("--http port is not valid");
    if (!options_.tls_cert_file.empty()) {
      ssl_.use_certificate_chain_file(options_.tls_cert_file, error);
      if (!error) ssl_.use_private_key_file(options_.tls_key_file, net::ssl::context::pem, error);
      if (error) return Status::Error("TLS certificate or key: " + error.message());
      tls_ = true;
    }
    tcp::endpoint endpoint(address, static_cast<uint16_t>(port_number));
    acceptor_.open(endpoint.protocol(), error);
    if (!error) acceptor_.set_option(net::socket_base::reuse_address(true), error);
    if (!error) acceptor_.bind(endpoint, error);
    if (!error) acceptor_.listen(net::socket_base::max_listen_connections, error);
    if (error) return Status::Error("listening on " + options_.address + ": " + error.message());
    *port = acceptor_.local_endpoint().port();
    Accept();
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] {
        pthread_setname_np(pthread_self(), "purser-http");
        io_.run();
      });
    }
    return Status::Ok();
  }

  void StopAccepting() {
    net::post(io_, [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
  }

  void Stop() {
    if (threads_.empty()) return;
    StopAccepting();
    // Let the last answers (posted by the sequencer as it drained) be written.
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    work_.reset();
    io_.stop();
    for (auto& thread : threads_) thread.join();
    threads_.clear();
  }

 private:
  void Accept() {
    acceptor_.async_accept(net::make_strand(io_), [this](beast::error_code error, tcp::socket socket) {
      if (error) {
        if (error == net::error::operation_aborted || !acceptor_.is_open()) return;
        Accept();
        return;
      }
      if (connections_.fetch_add(1) >= options_.connections_max) {
        connections_.fetch_sub(1);
        beast::error_code ignored;
        socket.close(ignored);  // over the limit: refused at once
      } else {
        socket.set_option(tcp::no_delay(true));
        if (tls_) {
          std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
              beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), ssl_), api_,
              &options_, &connections_)
              ->Start();
        } else {
          std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), api_,
                                                       &options_, &connections_)
              ->Start();
        }
      }
      Accept();
    });
  }

  HttpApi* api_;
  HttpServerOptions options_;
  net::io_context io_;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work_{
      net::make_work_guard(io_)};
  tcp::acceptor acceptor_{io_};
  net::ssl::context ssl_;
  bool tls_ = false;
  std::atomic<size_t> connections_{0};
  std::vector<std::thread> threads_;
};

HttpServer::HttpServer(HttpApi* api, HttpServerOptions options)
    : impl_(std::make_unique<Impl>(api, std::move(options))) {}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  return impl_->Start(&port_);
}

void HttpServer::StopAccepting() { impl_->StopAccepting(); }

void HttpServer::Stop() { impl_->Stop(); }

}  // namespace purser
