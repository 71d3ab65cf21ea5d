#include <utility>  // before Asio (../shared/PLATFORM.md)

#include "bench/webhook_receiver.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <map>
#include <mutex>
#include <thread>

namespace purser::bench {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using SteadyClock = std::chrono::steady_clock;

class Receiver::Impl {
 public:
  explicit Impl(ReceiverOptions options)
      : options_(std::move(options)),
        ssl_(net::ssl::context::tls_server),
        acceptor_(io_, net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)),
        tls_(!options_.cert_file.empty()) {
    if (!options_.answer) options_.answer = [](const std::string&, int) { return 200; };
    if (tls_) {
      ssl_.use_certificate_chain_file(options_.cert_file);
      ssl_.use_private_key_file(options_.key_file, net::ssl::context::pem);
    }
    Accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Impl() {
    io_.stop();
    thread_.join();
  }

  std::string Url(const std::string& path, const std::string& host = "127.0.0.1") const {
    return std::string(tls_ ? "https://" : "http://") + host + ":" +
           std::to_string(acceptor_.local_endpoint().port()) + path;
  }
  std::vector<Received> Get(const std::string& target = "") const {
    std::lock_guard lock(mutex_);
    std::vector<Received> out;
    for (const Received& r : received_) {
      if (target.empty() || r.target == target) out.push_back(r);
    }
    return out;
  }
  // Waits (up to `seconds`) until `target` has had `count` requests.
  bool WaitFor(const std::string& target, size_t count, int seconds = 30) const {
    auto deadline = SteadyClock::now() + std::chrono::seconds(seconds);
    while (SteadyClock::now() < deadline) {
      if (Get(target).size() >= count) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  uint64_t requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  int failed_handshakes() const { return failed_handshakes_.load(); }

  std::atomic<int> delay_ms{0};

 private:
  struct Connection {
    explicit Connection(net::io_context& io) : socket(io), timer(io) {}
    net::ip::tcp::socket socket;
    std::unique_ptr<beast::ssl_stream<net::ip::tcp::socket>> tls;  // owns the socket when set
    net::steady_timer timer;
    beast::flat_buffer buffer;
    http::request<http::string_body> request;
    http::response<http::string_body> response;
  };

  template <typename F>
  static void WithStream(Connection& c, F f) {
    if (c.tls) {
      f(*c.tls);
    } else {
      f(c.socket);
    }
  }

  void Accept() {
    auto connection = std::make_shared<Connection>(io_);
    acceptor_.async_accept(connection->socket, [this, connection](beast::error_code error) {
      if (error) return;
      ++connections_;
      Accept();
      if (!tls_) return Read(connection);
      connection->tls =
          std::make_unique<beast::ssl_stream<net::ip::tcp::socket>>(std::move(connection->socket), ssl_);
      connection->tls->async_handshake(net::ssl::stream_base::server,
                                       [this, connection](beast::error_code shaken) {
                                         if (shaken) {
                                           ++failed_handshakes_;
                                           return;
                                         }
                                         Read(connection);
                                       });
    });
  }

  void Read(std::shared_ptr<Connection> c) {
    c->request = {};
    WithStream(*c, [&](auto& stream) {
      http::async_read(stream, c->buffer, c->request,
                       [this, c](beast::error_code error, size_t) {
                         if (!error) Respond(c);
                       });
    });
  }

  void Respond(std::shared_ptr<Connection> c) {
    Received r{std::string(c->request.target()),
               std::string(c->request["Purser-Event-Id"]),
               std::string(c->request["Purser-Signature"]),
               std::string(c->request[http::field::content_type]),
               std::string(c->request[http::field::host]),
               c->request.body(),
               SteadyClock::now()};
    int nth;
    {
      std::lock_guard lock(mutex_);
      nth = ++per_target_[r.target];
      if (options_.keep) received_.push_back(r);
    }
    requests_.fetch_add(1, std::memory_order_relaxed);
    int status = options_.answer(r.target, nth);
    if (status == 0) {
      held_.push_back(c);  // never answered
      return;
    }
    c->response = http::response<http::string_body>(static_cast<http::status>(status), 11);
    c->response.keep_alive(true);
    if (status >= 300 && status < 400) c->response.set(http::field::location, Url("/elsewhere"));
    if (status != 204) c->response.body() = "ok";
    c->response.prepare_payload();
    c->timer.expires_after(std::chrono::milliseconds(delay_ms.load()));
    c->timer.async_wait([this, c](beast::error_code) {
      WithStream(*c, [&](auto& stream) {
        http::async_write(stream, c->response, [this, c](beast::error_code written, size_t) {
          if (written) return;
          if (options_.drop_after_answer) {
            beast::error_code ignored;
            (c->tls ? c->tls->next_layer() : c->socket).close(ignored);
            return;
          }
          Read(c);
        });
      });
    });
  }

  ReceiverOptions options_;
  net::io_context io_;
  net::ssl::context ssl_;
  net::ip::tcp::acceptor acceptor_;
  bool tls_;
  std::vector<std::shared_ptr<Connection>> held_;  // loop thread only
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  std::map<std::string, int> per_target_;
  std::atomic<uint64_t> requests_{0};
  std::atomic<int> connections_{0};
  std::atomic<int> failed_handshakes_{0};
  std::thread thread_;
};


Receiver::Receiver(ReceiverOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Receiver::~Receiver() = default;
std::string Receiver::Url(const std::string& path, const std::string& host) const {
  return impl_->Url(path, host);
}
std::vector<Received> Receiver::Get(const std::string& target) const { return impl_->Get(target); }
bool Receiver::WaitFor(const std::string& target, size_t count, int seconds) const {
  return impl_->WaitFor(target, count, seconds);
}
uint64_t Receiver::requests() const { return impl_->requests(); }
int Receiver::connections() const { return impl_->connections(); }
int Receiver::failed_handshakes() const { return impl_->failed_handshakes(); }
void Receiver::set_delay_ms(int delay_ms) { impl_->delay_ms = delay_ms; }

}  // namespace purser::bench
