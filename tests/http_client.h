// A small HTTP/1.1 client for the integration tests (Beast, one kept-alive
// connection), and helpers to read its JSON answers.
#pragma once

#include <utility>  // before Asio (../shared/PLATFORM.md)

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <simdjson.h>

#include <climits>
#include <cstdint>
#include <string>

namespace purser::testing {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;

struct Response {
  int status = 0;
  std::string body;
  std::string retry_after;
  std::string content_type;
  std::string allow;
};

// A keep-alive HTTP/1.1 client on one connection.
class HttpClient {
 public:
  explicit HttpClient(int port) : stream_(io_) {
    net::ip::tcp::resolver resolver(io_);
    stream_.connect(resolver.resolve("127.0.0.1", std::to_string(port)));
  }

  Response Call(const std::string& method, const std::string& target, const std::string& body = "",
                const std::string& key = "", const std::string& idempotency_key = "") {
    http::request<http::string_body> request(http::string_to_verb(method), target, 11);
    request.set(http::field::host, "127.0.0.1");
    if (!key.empty()) request.set(http::field::authorization, "Bearer " + key);
    if (!idempotency_key.empty()) request.set("Idempotency-Key", idempotency_key);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    // The server may answer (413) and close before the whole body is sent:
    // a failed write still leaves its answer to read.
    beast::error_code write_error;
    http::write(stream_, request, write_error);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    http::read(stream_, buffer, parser);
    const auto& message = parser.get();
    Response response;
    response.status = static_cast<int>(message.result_int());
    response.body = message.body();
    response.retry_after = std::string(message[http::field::retry_after]);
    response.content_type = std::string(message[http::field::content_type]);
    response.allow = std::string(message[http::field::allow]);
    return response;
  }

 private:
  net::io_context io_;
  beast::tcp_stream stream_;
};

inline std::string ErrorCode(const Response& response) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body).get(root)) return "<not json: " + response.body + ">";
  std::string_view code;
  if (root["error"]["code"].get(code)) return "<no error code: " + response.body + ">";
  return std::string(code);
}

inline int64_t IntField(const Response& response, const char* pointer) {
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(response.body).get(root)) return INT64_MIN;
  int64_t value;
  if (root.at_pointer(pointer).get(value)) return INT64_MIN;
  return value;
}

}  // namespace purser::testing
