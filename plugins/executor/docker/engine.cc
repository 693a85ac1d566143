#include "engine.h"

#include <rapidjson/document.h>
#include <sys/socket.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cstdio>
#include <limits>
#include <memory>

namespace shoal::executor::docker {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using Local = asio::local::stream_protocol;
using boost::system::error_code;

http::request<http::string_body> MakeRequest(std::string_view method, std::string_view target,
                                             std::string_view body, std::string_view content_type) {
  http::request<http::string_body> req;
  req.method(http::string_to_verb(beast::string_view(method.data(), method.size())));
  req.target(beast::string_view(target.data(), target.size()));
  req.version(11);
  req.set(http::field::host, "docker");
  req.set(http::field::user_agent, "shoal");
  req.set(http::field::connection, "close");
  if (!body.empty() || method == "POST" || method == "PUT") {
    req.set(http::field::content_type,
            beast::string_view(content_type.data(), content_type.size()));
    req.body() = std::string(body);
    req.prepare_payload();
  }
  return req;
}

// "1.41" -> 141; -1 when unparsable.
int VersionNumber(std::string_view v) {
  int major = 0, minor = 0;
  if (std::sscanf(std::string(v).c_str(), "%d.%d", &major, &minor) != 2) return -1;
  return major * 1000 + minor;
}

}  // namespace

std::string EngineMessage(const HttpResponse& response) {
  rapidjson::Document d;
  if (ParseEngineJson(response.body, &d) && d.IsObject() && d.HasMember("message") &&
      d["message"].IsString()) {
    return d["message"].GetString();
  }
  std::string head = response.body.substr(0, 200);
  while (!head.empty() && (head.back() == '\n' || head.back() == '\r')) head.pop_back();
  return "HTTP " + std::to_string(response.status) + (head.empty() ? "" : ": " + head);
}

Result<EngineClient> EngineClient::Make(std::string_view host, std::chrono::milliseconds timeout) {
  std::string path;
  if (host.starts_with("unix://")) {
    path = std::string(host.substr(7));
  } else if (host.starts_with("/")) {
    path = std::string(host);
  } else {
    return InvalidArgument("docker host \"" + std::string(host) +
                           "\": only unix:///path sockets are supported");
  }
  if (path.empty() || path[0] != '/') {
    return InvalidArgument("docker host \"" + std::string(host) + "\": not an absolute path");
  }
  return EngineClient(std::move(path), timeout);
}

Result<HttpResponse> EngineClient::Call(std::string_view method, std::string_view path,
                                        std::string_view body,
                                        std::string_view content_type) const {
  std::string target = "/v" + std::string(kApiVersion) + std::string(path);
  return CallRaw(method, target, body, content_type);
}

Result<HttpResponse> EngineClient::CallRaw(std::string_view method, std::string_view target,
                                           std::string_view body,
                                           std::string_view content_type) const {
  // Asynchronous operations on a private io_context, so that run_for bounds
  // the whole exchange; a timed-out call closes its connection.
  asio::io_context ioc;
  Local::socket sock(ioc);
  beast::flat_buffer buf;
  auto req = MakeRequest(method, target, body, content_type);
  http::response_parser<http::string_body> parser;
  // Checked against Content-Length before the body is allocated, and
  // against what arrives for a chunked body.
  parser.body_limit(kMaxResponseBytes);
  error_code result;
  std::string stage = "connect";
  bool done = false;
  sock.async_connect(Local::endpoint(socket_), [&](error_code ec) {
    if (ec) {
      result = ec;
      done = true;
      return;
    }
    stage = "write";
    http::async_write(sock, req, [&](error_code ec, size_t) {
      if (ec) {
        result = ec;
        done = true;
        return;
      }
      stage = "read";
      // The head first: Boost 1.74's response parser, reading eagerly, goes
      // on to allocate a body whose Content-Length it has just refused as
      // over the limit (bad_alloc for a huge one). Read alone, the head
      // stops at the refusal.
      http::async_read_header(sock, buf, parser, [&](error_code ec, size_t) {
        if (ec || parser.is_done()) {
          result = ec;
          done = true;
          return;
        }
        http::async_read(sock, buf, parser, [&](error_code ec, size_t) {
          result = ec;
          done = true;
        });
      });
    });
  });
  try {
    ioc.run_for(timeout_);
  } catch (const std::exception& e) {
    // Nothing in the handlers throws on purpose; a library that does must
    // not take the agent down.
    return Status(Code::kUnavailable, "the Docker Engine at " + host() + ": reading " +
                                          std::string(method) + " " + std::string(target) + ": " +
                                          e.what());
  }
  if (!done) {
    error_code ignored;
    sock.close(ignored);
    ioc.restart();
    ioc.run();  // the handlers see operation_aborted
    return Status(Code::kUnavailable, "the Docker Engine at " + host() + " did not answer " +
                                          std::string(method) + " " + std::string(target) +
                                          " within " + std::to_string(timeout_.count()) + " ms");
  }
  if (result == http::error::body_limit) {
    return Status(Code::kUnavailable, "the Docker Engine at " + host() + " answered " +
                                          std::string(method) + " " + std::string(target) +
                                          " with more than " +
                                          std::to_string(kMaxResponseBytes >> 20) + " MiB");
  }
  if (result) {
    if (stage == "connect") {
      return Status(Code::kUnavailable,
                    "no Docker Engine at " + host() + ": connect: " + result.message());
    }
    return Status(Code::kUnavailable, "the Docker Engine at " + host() + " failed " +
                                          std::string(method) + " " + std::string(target) + " (" +
                                          stage + "): " + result.message());
  }
  HttpResponse out;
  out.status = static_cast<int>(parser.get().result_int());
  out.body = std::move(parser.get().body());
  return out;
}

Status EngineClient::Check(std::string* description) const {
  Result<HttpResponse> r = CallRaw("GET", "/version");
  if (!r.ok()) return r.error();
  if (r->status != 200) {
    return Status(Code::kUnavailable,
                  "the Docker Engine at " + host() + " refused GET /version: " + EngineMessage(*r));
  }
  rapidjson::Document d;
  if (!ParseEngineJson(r->body, &d) || !d.IsObject() || !d.HasMember("ApiVersion") ||
      !d["ApiVersion"].IsString()) {
    return Status(Code::kUnavailable,
                  "the service at " + host() + " does not answer as a Docker Engine");
  }
  std::string api = d["ApiVersion"].GetString();
  if (VersionNumber(api) < VersionNumber(kApiVersion)) {
    return Status(Code::kFailedPrecondition, "the Docker Engine at " + host() + " speaks API " +
                                                 api + "; shoal needs " + std::string(kApiVersion) +
                                                 " or later");
  }
  if (description != nullptr) {
    std::string version = d.HasMember("Version") && d["Version"].IsString()
                              ? d["Version"].GetString()
                              : std::string("?");
    *description = "Docker Engine " + version + " (API " + api + ")";
  }
  return Status::Ok();
}

struct LineStream::Impl {
  asio::io_context ioc;
  Local::socket sock{ioc};
  beast::flat_buffer buf;
  http::response_parser<http::buffer_body> parser;
  std::string pending;  // bytes read past the last line handed out
  bool ended = false;
};

LineStream::LineStream() : impl_(std::make_unique<Impl>()) {}
LineStream::~LineStream() = default;

Status LineStream::Open(const EngineClient& client, std::string_view path) {
  Impl& m = *impl_;
  error_code ec;
  m.sock.connect(Local::endpoint(client.socket_path()), ec);
  if (ec) {
    return Status(Code::kUnavailable,
                  "no Docker Engine at " + client.host() + ": connect: " + ec.message());
  }
  std::string target = "/v" + std::string(kApiVersion) + std::string(path);
  auto req = MakeRequest("GET", target, {}, {});
  req.set(http::field::connection, "keep-alive");
  http::write(m.sock, req, ec);
  if (!ec) {
    m.parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(m.sock, m.buf, m.parser, ec);
  }
  if (ec) {
    return Status(Code::kUnavailable, "the Docker Engine at " + client.host() + " failed GET " +
                                          target + ": " + ec.message());
  }
  if (m.parser.get().result_int() != 200) {
    return Status(Code::kUnavailable, "the Docker Engine at " + client.host() + " refused GET " +
                                          target + ": HTTP " +
                                          std::to_string(m.parser.get().result_int()));
  }
  return Status::Ok();
}

Result<std::string> LineStream::Next() {
  Impl& m = *impl_;
  while (true) {
    size_t nl = m.pending.find('\n');
    if (nl != std::string::npos) {
      std::string line = m.pending.substr(0, nl);
      m.pending.erase(0, nl + 1);
      return line;
    }
    if (m.ended || m.parser.is_done()) {
      return Status(Code::kUnavailable, "the engine ended the stream");
    }
    char chunk[8192];
    m.parser.get().body().data = chunk;
    m.parser.get().body().size = sizeof chunk;
    error_code ec;
    http::read_some(m.sock, m.buf, m.parser, ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) {
      m.ended = true;
      return Status(Code::kUnavailable, "the event stream broke: " + ec.message());
    }
    m.pending.append(chunk, sizeof chunk - m.parser.get().body().size);
    if (m.pending.size() > kMaxEventLineBytes && m.pending.find('\n') == std::string::npos) {
      m.ended = true;
      return Status(Code::kUnavailable, "the event stream sent a line longer than " +
                                            std::to_string(kMaxEventLineBytes >> 20) + " MiB");
    }
  }
}

void LineStream::Interrupt() {
  // shutdown(2) on the descriptor is safe while another thread is blocked
  // reading it, and wakes that read with end-of-file.
  if (impl_->sock.is_open()) ::shutdown(impl_->sock.native_handle(), SHUT_RDWR);
}

bool ParseEngineJson(std::string_view text, rapidjson::Document* doc) {
  doc->Parse<rapidjson::kParseIterativeFlag>(text.data(), text.size());
  return !doc->HasParseError();
}

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string DemuxLogStream(std::string_view raw) {
  std::string out;
  size_t i = 0;
  while (i + 8 <= raw.size()) {
    const auto* h = reinterpret_cast<const unsigned char*>(raw.data() + i);
    size_t len = (size_t{h[4]} << 24) | (size_t{h[5]} << 16) | (size_t{h[6]} << 8) | h[7];
    if (i + 8 + len > raw.size()) break;
    out.append(raw.substr(i + 8, len));
    i += 8 + len;
  }
  return out;
}

}  // namespace shoal::executor::docker
