// libFuzzer target for the gitops webhook (shoal watch --webhook-listen): any
// bytes sent to it over TCP must get an answer or a closed connection, never
// a crash or a hang, and only a correctly signed POST triggers a sync. The
// fuzzer cannot forge an HMAC; to reach the signed path, the placeholder
// "SIGNATURE" in the input is replaced by the true signature of the body
// (what follows the first blank line), and only such inputs may trigger.
//
// The signature check alone is also checked: Sign's output verifies, with or
// without "sha256=", and one changed character does not.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "shoal/gitops/webhook.h"

namespace {

constexpr const char* kSecret = "fuzz-secret";

[[noreturn]] void Die(const char* what, const std::string& detail) {
  std::fprintf(stderr, "webhook_fuzz: %s\n%s\n", what, detail.c_str());
  std::abort();
}

std::atomic<int> triggers{0};

// One server per process, never destroyed: libFuzzer exits with it running.
uint16_t Port() {
  static uint16_t port = [] {
    shoal::gitops::WebhookOptions o;
    o.listen = "127.0.0.1:0";
    o.secret = kSecret;
    o.max_body = 4096;  // small, so that the 413 path is reached too
    o.on_trigger = [] { ++triggers; };
    auto server = shoal::gitops::StartWebhook(o);
    if (!server.ok()) Die("StartWebhook", server.error().ToString());
    static shoal::gitops::WebhookServer* keep = server->release();  // reachable: no leak report
    return keep->port();
  }();
  return port;
}

// Sends `request`, closes the sending side, and returns what came back.
std::string Exchange(const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(Port());
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval limit{15, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
  // libFuzzer's -timeout alarm interrupts system calls: a connect it
  // interrupts goes on in the background.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINTR) Die("connect", std::strerror(errno));
    pollfd p{fd, POLLOUT, 0};
    while (::poll(&p, 1, 15'000) < 0 && errno == EINTR) {
    }
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) Die("connect", std::strerror(err));
  }
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the server stopped reading (a body too large)
    sent += static_cast<size_t>(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string reply;
  char buf[4096];
  while (true) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) Die("the server did not answer within 15 s", request);
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return reply;
}

void CheckSignatures(std::string_view input) {
  size_t cut = input.size() / 3;
  std::string secret(input.substr(0, cut));
  std::string body(input.substr(cut));
  using shoal::gitops::Sign;
  using shoal::gitops::VerifySignature;
  std::string sig = Sign(secret, body);
  if (sig.size() != 64) Die("a signature is not 64 hex digits", sig);
  if (VerifySignature(secret, body, sig) != !secret.empty()) Die("Sign does not verify", secret);
  if (VerifySignature(secret, body, "sha256=" + sig) != !secret.empty()) {
    Die("sha256=Sign does not verify", secret);
  }
  std::string wrong = sig;
  wrong[body.size() % 64] = wrong[body.size() % 64] == '0' ? '1' : '0';
  if (VerifySignature(secret, body, wrong)) Die("a changed signature verifies", secret);
  if (VerifySignature(secret, body, std::string(body))) {
    if (body != sig && body != "sha256=" + sig) Die("the body verified as its own signature", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckSignatures(input);

  std::string request(input);
  bool signed_by_us = false;
  if (size_t at = request.find("SIGNATURE"); at != std::string::npos) {
    size_t head_end = request.find("\r\n\r\n");
    std::string body = head_end == std::string::npos ? "" : request.substr(head_end + 4);
    request.replace(at, 9, shoal::gitops::Sign(kSecret, body));
    signed_by_us = true;
  }
  int before = triggers.load();
  std::string reply = Exchange(request);
  int fired = triggers.load() - before;
  if (fired > 1) Die("one request triggered more than once", request);
  if (fired == 1 && !signed_by_us) Die("an unsigned request triggered a sync", request);
  if (fired == 1 && reply.rfind("HTTP/1.1 204", 0) != 0) Die("a trigger answered not 204", reply);
  if (!reply.empty() && reply.rfind("HTTP/1.1 ", 0) != 0) Die("the answer is not HTTP", reply);
  return 0;
}
