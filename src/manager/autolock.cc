#include "shoal/manager/autolock.h"

#include <atomic>
#include <cstdio>
#include <cstring>

#include "shoal/transport/grpc_transport.h"

namespace shoal::manager {
namespace {

// One daemon per process; set while its manager waits for the unlock key.
std::atomic<bool> g_locked{false};

constexpr const char* kLockedMessage =
    "locked: this manager's data key is autolocked and it serves nothing until it is "
    "unlocked: run `shoal cluster unlock` on this node";

}  // namespace

grpc::Status LockedStatus() {
  return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, kLockedMessage);
}

bool ManagerLocked() { return g_locked.load(); }

Result<std::unique_ptr<AtRest>> AtRest::Open(const std::string& data_dir) {
  std::unique_ptr<AtRest> a(new AtRest(data_dir));
  auto locked = ca::Keyring::IsLocked(data_dir);
  if (!locked.ok()) {
    if (locked.error().code() == Code::kNotFound) return a;
    return locked.error();
  }
  std::lock_guard<std::mutex> lock(a->mu_);
  if (*locked) {
    a->locked_ = true;
    g_locked = true;
    return a;
  }
  auto k = ca::Keyring::Open(data_dir);
  if (!k.ok()) return k.error();
  a->Loaded(std::move(k).value());
  return a;
}

void AtRest::Loaded(ca::Keyring keyring) {
  if (codec_ && keyring_ && !(keyring_->data_key() == keyring.data_key())) {
    // Another key (a node that made its own before it was handed the
    // cluster's): callers may still hold the old codec, so it stays alive.
    retired_.push_back(std::move(codec_));
  }
  if (!codec_) codec_ = std::make_unique<SecretCodec>(keyring.data_key());
  keyring_.emplace(std::move(keyring));
  locked_ = false;
  g_locked = false;
}

bool AtRest::locked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return locked_;
}

bool AtRest::autolocked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return locked_ || (keyring_ && keyring_->autolocked());
}

Status AtRest::EnsureKey() {
  std::lock_guard<std::mutex> lock(mu_);
  if (locked_) return {Code::kFailedPrecondition, kLockedMessage};
  if (keyring_) return Status::Ok();
  auto k = ca::Keyring::Open(data_dir_);
  if (!k.ok() && k.error().code() == Code::kNotFound) k = ca::Keyring::Create(data_dir_);
  if (!k.ok()) return k.error();
  Loaded(std::move(k).value());
  return Status::Ok();
}

Status AtRest::Adopt(std::string_view key_bytes) {
  ca::DataKey key;
  if (key_bytes.size() != key.bytes.size()) {
    return {Code::kInvalidArgument,
            "a data key is 32 bytes, not " + std::to_string(key_bytes.size())};
  }
  std::memcpy(key.bytes.data(), key_bytes.data(), key.bytes.size());
  std::lock_guard<std::mutex> lock(mu_);
  if (locked_) return {Code::kFailedPrecondition, kLockedMessage};
  if (keyring_ && keyring_->data_key() == key) return Status::Ok();
  auto k = ca::Keyring::Adopt(data_dir_, key);
  ca::Wipe(key.bytes.data(), key.bytes.size());
  if (!k.ok()) return k.error();
  Loaded(std::move(k).value());
  return Status::Ok();
}

Result<std::string> AtRest::Seal(std::string_view plaintext, std::string_view context) {
  if (Status s = EnsureKey(); !s.ok()) return s;
  std::lock_guard<std::mutex> lock(mu_);
  return ca::Seal(keyring_->data_key(), plaintext, context);
}

Result<std::string> AtRest::Unseal(std::string_view sealed, std::string_view context) {
  std::lock_guard<std::mutex> lock(mu_);
  if (locked_) return Status(Code::kFailedPrecondition, kLockedMessage);
  if (!keyring_) return Status(Code::kFailedPrecondition, "this node holds no data key");
  return ca::Unseal(keyring_->data_key(), sealed, context);
}

Result<std::string> AtRest::DataKeyForJoin() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!keyring_) return Status(Code::kFailedPrecondition, "this node holds no data key");
  const auto& b = keyring_->data_key().bytes;
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

const SecretCodec* AtRest::codec() const {
  std::lock_guard<std::mutex> lock(mu_);
  return codec_.get();
}

std::function<Result<std::string>(const v1::Secret&)> AtRest::SecretValueFn() const {
  return [this](const v1::Secret& secret) -> Result<std::string> {
    const SecretCodec* c = codec();
    if (c == nullptr) {
      if (ca::IsSealed(secret.spec().data())) {
        return Status(Code::kFailedPrecondition,
                      "no data key to open secret " + secret.spec().name());
      }
      return secret.spec().data();
    }
    return c->Open(secret.spec());
  };
}

Status AtRest::Unlock(const std::string& unlock_key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!locked_) return {Code::kFailedPrecondition, "this node is not locked"};
  auto k = ca::Keyring::Unlock(data_dir_, unlock_key);
  if (!k.ok()) return k.error();
  Loaded(std::move(k).value());
  return Status::Ok();
}

Status AtRest::FollowAutolock(std::string_view unlock_key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (locked_) return Status(Code::kFailedPrecondition, kLockedMessage);
  if (!keyring_) {
    return Status(Code::kFailedPrecondition,
                  "this node holds no data key: autolock is set on a manager");
  }
  if (!unlock_key.empty()) return keyring_->SealUnder(unlock_key);
  if (!keyring_->autolocked()) return Status::Ok();
  return keyring_->DisableAutolock();
}

Result<std::string> AtRest::UnlockKey() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (locked_) return Status(Code::kFailedPrecondition, kLockedMessage);
  if (!keyring_ || !keyring_->autolocked()) {
    return Status(Code::kFailedPrecondition,
                  "autolock is off: there is no unlock key (turn it on with "
                  "`shoal cluster update --autolock=true`)");
  }
  return keyring_->unlock_key();
}

namespace {

class SecurityService final : public v1::Security::CallbackService {
 public:
  SecurityService(AtRest* at_rest, std::function<Status()> on_unlocked, ProposeAutolockFn propose)
      : at_rest_(at_rest), on_unlocked_(std::move(on_unlocked)), propose_(std::move(propose)) {}

  grpc::ServerUnaryReactor* UpdateAutolock(grpc::CallbackServerContext* ctx,
                                           const v1::UpdateAutolockRequest* req,
                                           v1::UpdateAutolockReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (!Local(ctx, r)) return r;
    bool on = req->autolock();
    propose_(on, false, [r, reply, on](Result<AutolockChange> got) {
      if (!got.ok()) return r->Finish(transport::ToGrpc(got.error()));
      reply->set_changed(got->changed);
      // The key is shown once: when autolock is turned on now.
      if (got->changed && on) reply->set_unlock_key(got->unlock_key);
      std::fprintf(stderr, "shoal daemon: cluster autolock %s%s\n", on ? "on" : "off",
                   got->changed ? "" : " (unchanged)");
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

  grpc::ServerUnaryReactor* Unlock(grpc::CallbackServerContext* ctx, const v1::UnlockRequest* req,
                                   v1::UnlockReply*) override {
    auto* r = ctx->DefaultReactor();
    if (!Local(ctx, r)) return r;
    if (Status s = at_rest_->Unlock(req->unlock_key()); !s.ok()) {
      std::fprintf(stderr, "shoal daemon: unlock refused: %s\n", s.message().c_str());
      r->Finish(transport::ToGrpc(s));
      return r;
    }
    std::fprintf(stderr, "shoal daemon: unlocked; starting the manager\n");
    r->Finish(transport::ToGrpc(on_unlocked_ ? on_unlocked_() : Status::Ok()));
    return r;
  }

  grpc::ServerUnaryReactor* UnlockKey(grpc::CallbackServerContext* ctx,
                                      const v1::UnlockKeyRequest* req,
                                      v1::UnlockKeyReply* reply) override {
    auto* r = ctx->DefaultReactor();
    if (!Local(ctx, r)) return r;
    if (!req->rotate()) {
      auto key = at_rest_->UnlockKey();
      if (!key.ok()) {
        r->Finish(transport::ToGrpc(key.error()));
        return r;
      }
      reply->set_unlock_key(*key);
      r->Finish(grpc::Status::OK);
      return r;
    }
    propose_(true, true, [r, reply](Result<AutolockChange> got) {
      if (!got.ok()) return r->Finish(transport::ToGrpc(got.error()));
      std::fprintf(stderr, "shoal daemon: cluster unlock key rotated\n");
      reply->set_unlock_key(got->unlock_key);
      r->Finish(grpc::Status::OK);
    });
    return r;
  }

 private:
  // The unlock key never travels over the network, even over TLS.
  static bool Local(grpc::CallbackServerContext* ctx, grpc::ServerUnaryReactor* r) {
    if (ctx->peer().rfind("unix:", 0) == 0) return true;
    r->Finish(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                           "autolock and unlock are served on the node's local socket only"));
    return false;
  }

  AtRest* at_rest_;
  std::function<Status()> on_unlocked_;
  ProposeAutolockFn propose_;
};

}  // namespace

std::unique_ptr<v1::Security::CallbackService> MakeSecurityService(
    AtRest* at_rest, std::function<Status()> on_unlocked, ProposeAutolockFn propose) {
  return std::make_unique<SecurityService>(at_rest, std::move(on_unlocked), std::move(propose));
}

}  // namespace shoal::manager
