#include "shoal/gitops/webhook.h"

#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <catch2/catch.hpp>

using namespace shoal;
using namespace shoal::gitops;
namespace http = boost::beast::http;

namespace {

// One request to 127.0.0.1:port; returns the status code.
int Post(uint16_t port, http::verb verb, const std::string& body,
         const std::string& signature_header, const std::string& signature) {
  boost::asio::io_context io;
  boost::beast::tcp_stream stream(io);
  stream.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  http::request<http::string_body> req(verb, "/hook", 11);
  req.set(http::field::host, "localhost");
  if (!signature_header.empty()) req.set(signature_header, signature);
  req.body() = body;
  req.prepare_payload();
  http::write(stream, req);
  boost::beast::flat_buffer buf;
  http::response<http::string_body> res;
  boost::system::error_code ec;
  http::read(stream, buf, res, ec);
  return ec ? -1 : static_cast<int>(res.result_int());
}

}  // namespace

TEST_CASE("webhook signatures: HMAC-SHA256 as git hosts send it") {
  // RFC 4231-style known answer (the classic "quick brown fox" vector).
  CHECK(Sign("key", "The quick brown fox jumps over the lazy dog") ==
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8");
  const std::string sig = Sign("s3cret", "{}");
  CHECK(VerifySignature("s3cret", "{}", "sha256=" + sig));
  CHECK(VerifySignature("s3cret", "{}", sig));
  CHECK_FALSE(VerifySignature("s3cret", "{ }", "sha256=" + sig));
  CHECK_FALSE(VerifySignature("other", "{}", "sha256=" + sig));
  CHECK_FALSE(VerifySignature("s3cret", "{}", ""));
  CHECK_FALSE(VerifySignature("", "{}", Sign("", "{}")));
}

TEST_CASE(
    "webhook server: a signed POST triggers; bad, unsigned, wrong-verb and huge ones do not") {
  std::atomic<int> triggers{0};
  std::vector<std::string> logs;
  std::mutex mu;
  WebhookOptions o;
  o.listen = "127.0.0.1:0";
  o.secret = "s3cret";
  o.max_body = 1024;
  o.on_trigger = [&] { ++triggers; };
  o.log = [&](const std::string& l) {
    std::lock_guard lock(mu);
    logs.push_back(l);
  };
  auto server = StartWebhook(o);
  REQUIRE(server.ok());
  const uint16_t port = (*server)->port();
  const std::string body = R"({"ref":"refs/heads/main"})";

  CHECK(Post(port, http::verb::post, body, "X-Hub-Signature-256",
             "sha256=" + Sign("s3cret", body)) == 204);
  CHECK(Post(port, http::verb::post, body, "X-Gitea-Signature", Sign("s3cret", body)) == 204);
  CHECK(triggers == 2);
  CHECK(Post(port, http::verb::post, body, "X-Hub-Signature-256",
             "sha256=" + Sign("wrong", body)) == 401);
  CHECK(Post(port, http::verb::post, body, "", "") == 401);
  CHECK(Post(port, http::verb::get, "", "", "") == 405);
  const std::string huge(4096, 'x');
  CHECK(Post(port, http::verb::post, huge, "X-Hub-Signature-256",
             "sha256=" + Sign("s3cret", huge)) == 413);
  CHECK(triggers == 2);
  std::lock_guard lock(mu);
  bool refused_logged = false;
  for (const std::string& l : logs) {
    CHECK(l.find("s3cret") == std::string::npos);
    if (l.find("bad signature") != std::string::npos) refused_logged = true;
  }
  CHECK(refused_logged);
}

TEST_CASE("webhook server: bad options are refused") {
  WebhookOptions o;
  o.listen = "127.0.0.1:0";
  CHECK_FALSE(StartWebhook(o).ok());  // no secret
  o.secret = "x";
  o.listen = "nowhere";
  CHECK_FALSE(StartWebhook(o).ok());
  o.listen = "300.1.1.1:80";
  CHECK_FALSE(StartWebhook(o).ok());
}
