#include "shoal/manager/secrets.h"

#include <google/protobuf/util/message_differencer.h>

namespace shoal::manager {
namespace {

using MD = google::protobuf::util::MessageDifferencer;

std::string Context(const v1::SecretSpec& spec) { return "secret:" + spec.name(); }

bool AnySealed(const google::protobuf::RepeatedPtrField<v1::SecretSpec>& secrets) {
  for (const auto& s : secrets) {
    if (ca::IsSealed(s.data())) return true;
  }
  return false;
}

}  // namespace

Result<std::string> SecretCodec::Seal(const v1::SecretSpec& spec) const {
  return ca::Seal(key_, spec.data(), Context(spec));
}

Result<std::string> SecretCodec::Open(const v1::SecretSpec& spec) const {
  if (!ca::IsSealed(spec.data())) return spec.data();
  auto plain = ca::Unseal(key_, spec.data(), Context(spec));
  if (!plain.ok()) {
    return Status(Code::kCorruption, "secret " + spec.name() + ": " + plain.error().message() +
                                         " (does this manager hold the cluster's data key?)");
  }
  return plain;
}

Status OpenSecrets(const SecretCodec* codec,
                   google::protobuf::RepeatedPtrField<v1::SecretSpec>* secrets) {
  for (v1::SecretSpec& s : *secrets) {
    if (!ca::IsSealed(s.data())) continue;
    if (codec == nullptr) {
      return Status(Code::kFailedPrecondition,
                    "secret " + s.name() + " is sealed and this manager has no data key");
    }
    auto plain = codec->Open(s);
    if (!plain.ok()) return plain.error();
    s.set_data(std::move(plain).value());
  }
  return Status::Ok();
}

Result<google::protobuf::RepeatedPtrField<v1::SecretSpec>> SealedSecrets(
    const store::State& state, const google::protobuf::RepeatedPtrField<v1::SecretSpec>& desired,
    const SecretCodec* codec) {
  google::protobuf::RepeatedPtrField<v1::SecretSpec> out = desired;
  if (codec == nullptr) return out;
  for (v1::SecretSpec& s : out) {
    if (s.external() || s.data().empty()) continue;  // no value of ours to keep
    auto found = state.Find(store::Kind::kSecret, "name", s.name());
    if (!found.empty()) {
      const v1::SecretSpec& live = found.front()->secret().spec();
      auto live_plain = codec->Open(live);
      if (live_plain.ok() && *live_plain == s.data()) {
        v1::SecretSpec same = live;
        same.set_data(s.data());
        if (MD::Equals(same, s)) {
          s = live;  // byte for byte what is stored: no write
          continue;
        }
      }
    }
    auto sealed = codec->Seal(s);
    if (!sealed.ok()) return sealed.error();
    s.set_data(std::move(sealed).value());
  }
  return out;
}

Result<const v1::DeployRequest*> OpenRequest(const v1::DeployRequest& req, const SecretCodec* codec,
                                             v1::DeployRequest* holder) {
  if (!AnySealed(req.spec().secrets())) return &req;
  *holder = req;
  if (Status s = OpenSecrets(codec, holder->mutable_spec()->mutable_secrets()); !s.ok()) return s;
  return static_cast<const v1::DeployRequest*>(holder);
}

}  // namespace shoal::manager
