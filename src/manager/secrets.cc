#include "shoal/manager/secrets.h"

#include <google/protobuf/util/message_differencer.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <map>

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

std::string SecretCodec::Version(const v1::SecretSpec& spec) const {
  // The name is bound in, so two secrets with one value do not show it.
  std::string message = "secret-version:" + spec.name();
  message.push_back('\0');
  message += spec.data();
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.bytes.data(), static_cast<int>(key_.bytes.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac, &len);
  ca::Wipe(message.data(), message.size());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kDigits[mac[i] >> 4];
    hex += kDigits[mac[i] & 15];
  }
  return hex;
}

void KeySecretVersions(const SecretCodec* codec, v1::StackSpec* spec) {
  if (codec == nullptr) return;
  std::map<std::string, std::string> versions;  // secret name -> keyed version
  for (v1::SecretSpec& s : *spec->mutable_secrets()) {
    if (s.external() || s.data().empty()) continue;
    s.set_data_hash(codec->Version(s));
    versions[s.name()] = s.data_hash().substr(0, 12);
  }
  for (v1::ServiceSpec& svc : *spec->mutable_services()) {
    for (v1::FileReference& f : *svc.mutable_container()->mutable_secrets()) {
      auto it = versions.find(f.name());
      if (it != versions.end()) f.set_version(it->second);
    }
  }
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
