#pragma once

// The webhook trigger of `shoal watch --webhook-listen ADDR`: git hosting
// services POST to it on a push, signed with a shared secret, and the watcher
// fetches at once instead of at its next poll.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "shoal/common/status.h"

namespace shoal::gitops {

// Whether `body` is signed with `secret`: `signature` is the value of GitHub's
// X-Hub-Signature-256 ("sha256=<hex>") or Gitea's X-Gitea-Signature ("<hex>"),
// an HMAC-SHA256 of the body. Compared in constant time. An empty secret
// never verifies.
bool VerifySignature(const std::string& secret, const std::string& body,
                     const std::string& signature);

// Hex HMAC-SHA256 of `body` under `secret` (what a sender puts in the header).
std::string Sign(const std::string& secret, const std::string& body);

class WebhookServer {
 public:
  virtual ~WebhookServer() = default;
  // The bound port (useful with port 0).
  virtual uint16_t port() const = 0;
};

struct WebhookOptions {
  std::string listen;  // "127.0.0.1:9000", ":9000", "[::1]:9000"
  std::string secret;  // must not be empty
  size_t max_body = 1 << 20;
  // Called on the server's thread for each correctly signed POST.
  std::function<void()> on_trigger;
  // Refusals and triggers, for the log (never the secret or the body).
  std::function<void(const std::string&)> log;
};

// Binds and serves on a thread of its own until destroyed. Answers 204 to a
// signed POST, 401 to a missing or wrong signature, 405 to other methods,
// 413 past max_body. Fails when the address does not parse or cannot be bound.
Result<std::unique_ptr<WebhookServer>> StartWebhook(const WebhookOptions& options);

}  // namespace shoal::gitops
