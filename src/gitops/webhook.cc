#include "shoal/gitops/webhook.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <thread>

namespace shoal::gitops {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;

std::string Sign(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  static const char* kHex = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[mac[i] >> 4];
    hex += kHex[mac[i] & 15];
  }
  return hex;
}

bool VerifySignature(const std::string& secret, const std::string& body,
                     const std::string& signature) {
  if (secret.empty()) return false;
  std::string given = signature;
  if (given.rfind("sha256=", 0) == 0) given = given.substr(7);
  const std::string want = Sign(secret, body);
  if (given.size() != want.size()) return false;
  return CRYPTO_memcmp(given.data(), want.data(), want.size()) == 0;
}

namespace {

// The longest a sender may take to deliver one request.
constexpr std::chrono::seconds kRequestDeadline{10};

class Server final : public WebhookServer {
 public:
  Server(WebhookOptions options, tcp::acceptor acceptor)
      : options_(std::move(options)), acceptor_(std::move(acceptor)) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { Serve(); });
  }
  ~Server() override {
    // A blocking accept is not woken by closing its socket from another
    // thread: a connection of our own wakes it, and it sees stopping_.
    stopping_ = true;
    boost::system::error_code ec;
    tcp::endpoint self = acceptor_.local_endpoint(ec);
    if (self.address().is_unspecified()) {
      self.address(self.address().is_v6() ? asio::ip::address(asio::ip::address_v6::loopback())
                                          : asio::ip::address(asio::ip::address_v4::loopback()));
    }
    tcp::socket poke(acceptor_.get_executor());
    poke.connect(self, ec);
    poke.close(ec);  // EOF for the handler, if it got this far
    thread_.join();
    acceptor_.close(ec);
  }
  uint16_t port() const override { return port_; }

 private:
  void Log(const std::string& line) {
    if (options_.log) options_.log(line);
  }

  // One request per connection, one connection at a time: a webhook is a
  // rare, small POST, and a slow sender is cut off by the deadline.
  void Serve() {
    while (!stopping_) {
      boost::system::error_code ec;
      tcp::socket socket(acceptor_.get_executor());
      acceptor_.accept(socket, ec);
      if (ec) {
        if (stopping_) return;
        continue;
      }
      Handle(std::move(socket));
    }
  }

  // Reads one request into `parser` within kRequestDeadline; ec is set on a
  // parse error (body_limit included), a closed connection, or the deadline
  // (logged).
  void ReadRequest(tcp::socket& socket, http::request_parser<http::string_body>& parser,
                   const std::string& peer, boost::system::error_code& ec) {
    const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
    parser.eager(true);
    std::string pending;
    char chunk[16384];
    while (!parser.is_done()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      pollfd p{socket.native_handle(), POLLIN, 0};
      int ready = left.count() <= 0 ? 0 : ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) continue;  // a signal: the deadline still holds
      if (ready <= 0) {
        Log("webhook: dropped a request from " + peer + ": not complete within " +
            std::to_string(kRequestDeadline.count()) + " s");
        ec = asio::error::timed_out;
        return;
      }
      ssize_t n = ::recv(socket.native_handle(), chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        ec = asio::error::eof;
        return;
      }
      pending.append(chunk, static_cast<size_t>(n));
      size_t used = parser.put(asio::buffer(pending), ec);
      pending.erase(0, used);
      if (ec == http::error::need_more) ec = {};
      if (ec) return;
    }
  }

  void Handle(tcp::socket socket) {
    // The answer is a few hundred bytes, which the socket buffer takes at
    // once; the request is read under a deadline of its own (ReadRequest).
    timeval limit{10, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    boost::beast::tcp_stream stream(std::move(socket));
    http::request_parser<http::string_body> parser;
    parser.body_limit(options_.max_body);
    boost::system::error_code ec;
    std::string peer;
    {
      boost::system::error_code pe;
      auto ep = stream.socket().remote_endpoint(pe);
      if (!pe) peer = ep.address().to_string();
    }
    // A deadline for the whole request, kept with poll(2): the socket's
    // SO_RCVTIMEO does not bound Asio's blocking reads (on EAGAIN they poll
    // without a timeout), so one idle connection held this server, which
    // serves one connection at a time, for as long as its sender liked.
    ReadRequest(stream.socket(), parser, peer, ec);
    http::status status;
    if (ec == http::error::body_limit) {
      status = http::status::payload_too_large;
      Log("webhook: refused a request from " + peer + ": body larger than " +
          std::to_string(options_.max_body) + " bytes");
    } else if (ec) {
      return;  // not HTTP, or too slow: nothing to answer
    } else {
      const auto& req = parser.get();
      std::string sig;
      if (auto it = req.find("X-Hub-Signature-256"); it != req.end()) {
        sig = std::string(it->value());
      } else if (auto g = req.find("X-Gitea-Signature"); g != req.end()) {
        sig = std::string(g->value());
      }
      if (req.method() != http::verb::post) {
        status = http::status::method_not_allowed;
      } else if (!VerifySignature(options_.secret, req.body(), sig)) {
        status = http::status::unauthorized;
        Log("webhook: refused a request from " + peer +
            (sig.empty() ? ": no signature header" : ": bad signature"));
      } else {
        status = http::status::no_content;
        Log("webhook: signed trigger from " + peer);
        if (options_.on_trigger) options_.on_trigger();
      }
    }
    http::response<http::empty_body> res(status, 11);
    res.set(http::field::server, "shoal");
    res.keep_alive(false);
    http::write(stream, res, ec);
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  }

  WebhookOptions options_;
  tcp::acceptor acceptor_;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// "host:port", ":port", "[v6]:port".
Result<tcp::endpoint> ParseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos)
    return InvalidArgument("--webhook-listen " + listen + ": expected HOST:PORT");
  std::string host = listen.substr(0, colon);
  std::string port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  unsigned long port = 0;
  try {
    size_t used = 0;
    port = std::stoul(port_text, &used);
    if (used != port_text.size() || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return InvalidArgument("--webhook-listen " + listen + ": bad port \"" + port_text + "\"");
  }
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return InvalidArgument("--webhook-listen " + listen + ": bad address \"" + host + "\"");
  return tcp::endpoint(addr, static_cast<uint16_t>(port));
}

}  // namespace

Result<std::unique_ptr<WebhookServer>> StartWebhook(const WebhookOptions& options) {
  if (options.secret.empty()) {
    return InvalidArgument("the webhook needs a shared secret (--webhook-secret-file)");
  }
  auto ep = ParseListen(options.listen);
  if (!ep.ok()) return ep.error();
  static asio::io_context io;  // only for the acceptor's blocking calls
  tcp::acceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(ep->protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(*ep, ec);
  if (!ec) acceptor.listen(16, ec);
  if (ec) return IoError("--webhook-listen " + options.listen + ": " + ec.message());
  return std::unique_ptr<WebhookServer>(std::make_unique<Server>(options, std::move(acceptor)));
}

}  // namespace shoal::gitops
