#include "shoal/ca/keyring.h"

#include <fcntl.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace shoal::ca {
namespace {

namespace fs = std::filesystem;

// File format, one field a line, so that a person can see the mode:
//   shoal-datakey v1 plain\n<64 hex digits of the data key>\n
//   shoal-datakey v1 locked\n<32 hex digits of salt>\n<hex of the sealed data key>\n
constexpr std::string_view kPlainHeader = "shoal-datakey v1 plain";
constexpr std::string_view kLockedHeader = "shoal-datakey v1 locked";
// The AAD of the sealed data key, and the HKDF info: neither can be reused elsewhere.
constexpr std::string_view kDataKeyContext = "shoal datakey";
constexpr std::string_view kKekInfo = "shoal unlock key v1";
constexpr size_t kSaltSize = 16;

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out += kDigits[p[i] >> 4];
    out += kDigits[p[i] & 15];
  }
  return out;
}

int Nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// False for odd length or a non-hex digit.
bool FromHex(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->assign(hex.size() / 2, '\0');
  for (size_t i = 0; i < out->size(); ++i) {
    int hi = Nibble(hex[2 * i]), lo = Nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    (*out)[i] = static_cast<char>(hi << 4 | lo);
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

std::string NewUnlockKey() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) {
    std::fprintf(stderr, "shoal: RAND_bytes failed while making an unlock key\n");
    std::abort();
  }
  std::string key = std::string(kUnlockKeyPrefix) + Hex(raw, sizeof raw);
  Wipe(raw, sizeof raw);
  return key;
}

namespace {

// The 32 secret bytes of a well-formed unlock key.
Result<std::string> UnlockKeyBytes(std::string_view key) {
  key = Trim(key);
  std::string raw;
  if (!key.starts_with(kUnlockKeyPrefix) || key.size() != kUnlockKeyPrefix.size() + 64 ||
      !FromHex(key.substr(kUnlockKeyPrefix.size()), &raw)) {
    return InvalidArgument("malformed unlock key: expected " + std::string(kUnlockKeyPrefix) +
                           "followed by 64 hex digits");
  }
  return raw;
}

// The key-encryption key: HKDF-SHA256 over the unlock key's bytes. The unlock
// key is 256 random bits, so a slow password hash would add nothing.
Result<DataKey> DeriveKek(std::string_view unlock_key, std::string_view salt) {
  auto raw = UnlockKeyBytes(unlock_key);
  if (!raw.ok()) return raw.error();
  DataKey kek;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> ctx(
      EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr), EVP_PKEY_CTX_free);
  size_t len = kek.bytes.size();
  auto u = [](std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); };
  bool ok =
      ctx && EVP_PKEY_derive_init(ctx.get()) == 1 &&
      EVP_PKEY_CTX_set_hkdf_md(ctx.get(), EVP_sha256()) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_salt(ctx.get(), u(salt), static_cast<int>(salt.size())) == 1 &&
      EVP_PKEY_CTX_set1_hkdf_key(ctx.get(), u(*raw), static_cast<int>(raw->size())) == 1 &&
      EVP_PKEY_CTX_add1_hkdf_info(ctx.get(), u(kKekInfo), static_cast<int>(kKekInfo.size())) == 1 &&
      EVP_PKEY_derive(ctx.get(), kek.bytes.data(), &len) == 1 && len == kek.bytes.size();
  Wipe(raw->data(), raw->size());
  if (!ok) return Internal("unlock key derivation (HKDF) failed");
  return kek;
}

Status ErrnoStatus(const std::string& what, const std::string& path) {
  return {Code::kIo, what + " " + path + ": " + std::strerror(errno)};
}

// Writes `content` to `path` atomically: a 0600 temporary file, fsync, rename,
// fsync of the directory.
Status AtomicWrite(const std::string& path, const std::string& content) {
  fs::path dir = fs::path(path).parent_path();
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return {Code::kIo, "cannot create " + dir.string() + ": " + ec.message()};
  ::chmod(dir.c_str(), 0700);
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus("cannot write", tmp);
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = ErrnoStatus("cannot write", tmp);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    Status s = ErrnoStatus("cannot sync", tmp);
    ::close(fd);
    return s;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) return ErrnoStatus("cannot rename into", path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
  return Status::Ok();
}

struct KeyFile {
  bool locked = false;
  std::string key_hex;     // plain
  std::string salt;        // locked, raw
  std::string sealed_key;  // locked, raw
};

Result<KeyFile> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!fs::exists(path)) return NotFound("no data key at " + path);
    return ErrnoStatus("cannot read", path);
  }
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  KeyFile f;
  auto corrupt = [&] { return Status(Code::kCorruption, path + ": unreadable data key file"); };
  if (lines.size() == 2 && lines[0] == kPlainHeader && lines[1].size() == 64) {
    f.key_hex = lines[1];
    return f;
  }
  if (lines.size() == 3 && lines[0] == kLockedHeader) {
    f.locked = true;
    if (!FromHex(lines[1], &f.salt) || f.salt.size() != kSaltSize ||
        !FromHex(lines[2], &f.sealed_key)) {
      return corrupt();
    }
    return f;
  }
  return corrupt();
}

}  // namespace

std::string KeyringPath(const std::string& data_dir) { return data_dir + "/keys/datakey"; }

Keyring::Keyring(std::string path, const DataKey& key, std::string unlock_key)
    : path_(std::move(path)),
      key_(std::make_unique<DataKey>(key)),
      unlock_key_(std::move(unlock_key)) {}

Keyring::Keyring(Keyring&&) noexcept = default;
Keyring& Keyring::operator=(Keyring&& other) noexcept {
  if (this != &other) {
    if (key_) Wipe(key_->bytes.data(), key_->bytes.size());
    Wipe(unlock_key_.data(), unlock_key_.size());
    path_ = std::move(other.path_);
    key_ = std::move(other.key_);
    unlock_key_ = std::move(other.unlock_key_);
  }
  return *this;
}

Keyring::~Keyring() {
  if (key_) Wipe(key_->bytes.data(), key_->bytes.size());
  Wipe(unlock_key_.data(), unlock_key_.size());
}

Status Keyring::Write(const std::string& unlock_key) {
  std::string content;
  if (unlock_key.empty()) {
    content = std::string(kPlainHeader) + "\n" + Hex(key_->bytes.data(), key_->bytes.size()) + "\n";
  } else {
    unsigned char salt[kSaltSize];
    if (RAND_bytes(salt, sizeof salt) != 1) return Internal("RAND_bytes failed");
    std::string_view salt_view(reinterpret_cast<const char*>(salt), sizeof salt);
    auto kek = DeriveKek(unlock_key, salt_view);
    if (!kek.ok()) return kek.error();
    std::string_view key_view(reinterpret_cast<const char*>(key_->bytes.data()),
                              key_->bytes.size());
    auto sealed = Seal(*kek, key_view, kDataKeyContext);
    Wipe(kek->bytes.data(), kek->bytes.size());
    if (!sealed.ok()) return sealed.error();
    content = std::string(kLockedHeader) + "\n" + Hex(salt, sizeof salt) + "\n" +
              Hex(reinterpret_cast<const unsigned char*>(sealed->data()), sealed->size()) + "\n";
  }
  Status s = AtomicWrite(path_, content);
  Wipe(content.data(), content.size());
  return s;
}

Result<Keyring> Keyring::Create(const std::string& data_dir) {
  std::string path = KeyringPath(data_dir);
  if (fs::exists(path)) {
    return Status(Code::kAlreadyExists, path + " exists: refusing to replace a data key");
  }
  return Adopt(data_dir, NewDataKey());
}

Result<Keyring> Keyring::Adopt(const std::string& data_dir, const DataKey& key) {
  Keyring k(KeyringPath(data_dir), key, "");
  if (Status s = k.Write(""); !s.ok()) return s;
  return k;
}

Result<Keyring> Keyring::Open(const std::string& data_dir) {
  std::string path = KeyringPath(data_dir);
  auto f = ReadKeyFile(path);
  if (!f.ok()) return f.error();
  if (f->locked) {
    return Status(Code::kFailedPrecondition,
                  "locked: this manager's data key is autolocked; run shoal cluster unlock");
  }
  std::string raw;
  DataKey key;
  if (!FromHex(f->key_hex, &raw) || raw.size() != key.bytes.size()) {
    return Status(Code::kCorruption, path + ": unreadable data key file");
  }
  std::memcpy(key.bytes.data(), raw.data(), raw.size());
  Wipe(raw.data(), raw.size());
  Wipe(f->key_hex.data(), f->key_hex.size());
  Keyring k(path, key, "");
  Wipe(key.bytes.data(), key.bytes.size());
  return k;
}

Result<Keyring> Keyring::Unlock(const std::string& data_dir, std::string_view unlock_key) {
  std::string path = KeyringPath(data_dir);
  auto f = ReadKeyFile(path);
  if (!f.ok()) return f.error();
  if (!f->locked) return Status(Code::kFailedPrecondition, "not locked: autolock is off");
  auto kek = DeriveKek(unlock_key, f->salt);
  if (!kek.ok()) return kek.error();
  auto plain = Unseal(*kek, f->sealed_key, kDataKeyContext);
  Wipe(kek->bytes.data(), kek->bytes.size());
  DataKey key;
  if (!plain.ok() || plain->size() != key.bytes.size()) {
    return InvalidArgument("wrong unlock key: it does not open this manager's data key");
  }
  std::memcpy(key.bytes.data(), plain->data(), plain->size());
  Wipe(plain->data(), plain->size());
  Keyring k(path, key, std::string(Trim(unlock_key)));
  Wipe(key.bytes.data(), key.bytes.size());
  return k;
}

Result<bool> Keyring::IsLocked(const std::string& data_dir) {
  auto f = ReadKeyFile(KeyringPath(data_dir));
  if (!f.ok()) return f.error();
  return f->locked;
}

Result<std::string> Keyring::EnableAutolock() {
  std::string key = NewUnlockKey();
  if (Status s = SealUnder(key); !s.ok()) return s;
  return key;
}

Status Keyring::SealUnder(std::string_view unlock_key) {
  unlock_key = Trim(unlock_key);
  auto raw = UnlockKeyBytes(unlock_key);
  if (!raw.ok()) return raw.error();
  Wipe(raw->data(), raw->size());
  if (unlock_key == unlock_key_) return Status::Ok();
  std::string key(unlock_key);
  if (Status s = Write(key); !s.ok()) return s;
  Wipe(unlock_key_.data(), unlock_key_.size());
  unlock_key_ = std::move(key);
  return Status::Ok();
}

Status Keyring::DisableAutolock() {
  if (Status s = Write(""); !s.ok()) return s;
  Wipe(unlock_key_.data(), unlock_key_.size());
  unlock_key_.clear();
  return Status::Ok();
}

Result<std::string> Keyring::RotateUnlockKey() {
  if (!autolocked()) {
    return Status(Code::kFailedPrecondition, "autolock is off: there is no unlock key to rotate");
  }
  return EnableAutolock();
}

}  // namespace shoal::ca
