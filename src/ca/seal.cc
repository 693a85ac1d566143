#include "shoal/ca/seal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

namespace shoal::ca {
namespace {

constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
// Any version of the format starts with this; the version follows.
constexpr std::string_view kAnyVersionPrefix = "shoal-sealed:";

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

CipherCtx NewCtx() { return CipherCtx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free); }

const unsigned char* Bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

void Wipe(void* p, size_t n) { OPENSSL_cleanse(p, n); }

DataKey NewDataKey() {
  DataKey key;
  if (RAND_bytes(key.bytes.data(), static_cast<int>(key.bytes.size())) != 1) {
    std::fprintf(stderr, "shoal: RAND_bytes failed while making a data key\n");
    std::abort();
  }
  return key;
}

bool IsSealed(std::string_view value) { return value.starts_with(kAnyVersionPrefix); }

Result<std::string> Seal(const DataKey& key, std::string_view plaintext, std::string_view context) {
  std::string out(kSealPrefix);
  const size_t header = out.size();
  out.resize(header + kNonceSize + plaintext.size() + kTagSize);
  auto* nonce = reinterpret_cast<unsigned char*>(out.data() + header);
  if (RAND_bytes(nonce, kNonceSize) != 1) return Internal("seal: RAND_bytes failed");
  CipherCtx ctx = NewCtx();
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes.data(), nonce) != 1 ||
      (!context.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(context),
                                             static_cast<int>(context.size())) != 1)) {
    return Internal("seal: cipher setup failed");
  }
  auto* ct = nonce + kNonceSize;
  int written = 0;
  if (!plaintext.empty() && EVP_EncryptUpdate(ctx.get(), ct, &written, Bytes(plaintext),
                                              static_cast<int>(plaintext.size())) != 1) {
    return Internal("seal: encryption failed");
  }
  int tail = 0;
  if (EVP_EncryptFinal_ex(ctx.get(), ct + written, &tail) != 1 ||
      static_cast<size_t>(written + tail) != plaintext.size() ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, ct + plaintext.size()) != 1) {
    return Internal("seal: encryption failed");
  }
  return out;
}

Result<std::string> Unseal(const DataKey& key, std::string_view sealed, std::string_view context) {
  if (!sealed.starts_with(kSealPrefix)) {
    if (IsSealed(sealed)) return InvalidArgument("unseal: unknown sealed-value version");
    return InvalidArgument("unseal: the value is not sealed");
  }
  std::string_view body = sealed.substr(kSealPrefix.size());
  if (body.size() < kNonceSize + kTagSize) return InvalidArgument("unseal: sealed value truncated");
  const unsigned char* nonce = Bytes(body);
  const unsigned char* ct = nonce + kNonceSize;
  const size_t ct_size = body.size() - kNonceSize - kTagSize;
  std::string tag(body.substr(kNonceSize + ct_size));
  CipherCtx ctx = NewCtx();
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.bytes.data(), nonce) != 1 ||
      (!context.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(context),
                                             static_cast<int>(context.size())) != 1)) {
    return Internal("unseal: cipher setup failed");
  }
  std::string plain(ct_size, '\0');
  int written = 0;
  if (ct_size > 0 && EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()),
                                       &written, ct, static_cast<int>(ct_size)) != 1) {
    Wipe(plain.data(), plain.size());
    return Internal("unseal: decryption failed");
  }
  int tail = 0;
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + written,
                          &tail) != 1) {
    // The bytes decrypted so far are unauthenticated: never hand them out.
    Wipe(plain.data(), plain.size());
    return Status(Code::kCorruption,
                  "unseal: authentication failed (wrong key, wrong context or altered data)");
  }
  return plain;
}

}  // namespace shoal::ca
