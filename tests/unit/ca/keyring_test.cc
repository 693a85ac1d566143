#include "shoal/ca/keyring.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace shoal::ca {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  TempDir() {
    std::random_device rd;
    path = (fs::temp_directory_path() / ("shoal-keyring-" + std::to_string(rd()))).string();
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("keyring: create, reopen, same key; the file is 0600") {
  TempDir d;
  auto k = Keyring::Create(d.path);
  REQUIRE(k.ok());
  CHECK(!k->autolocked());
  struct stat st {};
  REQUIRE(::stat(KeyringPath(d.path).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  auto again = Keyring::Open(d.path);
  REQUIRE(again.ok());
  CHECK(again->data_key() == k->data_key());
  CHECK(!*Keyring::IsLocked(d.path));
  // A second Create must not replace the key (the sealed state would be lost).
  CHECK(Keyring::Create(d.path).error().code() == Code::kAlreadyExists);
}

TEST_CASE("keyring: a missing or garbled file") {
  TempDir d;
  CHECK(Keyring::Open(d.path).error().code() == Code::kNotFound);
  fs::create_directories(d.path + "/keys");
  std::ofstream(KeyringPath(d.path)) << "garbage\n";
  CHECK(Keyring::Open(d.path).error().code() == Code::kCorruption);
}

TEST_CASE("keyring: adopt writes the leader's key") {
  TempDir d;
  DataKey key = NewDataKey();
  auto k = Keyring::Adopt(d.path, key);
  REQUIRE(k.ok());
  CHECK(Keyring::Open(d.path)->data_key() == key);
}

TEST_CASE("keyring: autolock round trip") {
  TempDir d;
  auto k = Keyring::Create(d.path);
  REQUIRE(k.ok());
  DataKey key = k->data_key();
  auto unlock = k->EnableAutolock();
  REQUIRE(unlock.ok());
  CHECK(unlock->starts_with(kUnlockKeyPrefix));
  CHECK(unlock->size() == kUnlockKeyPrefix.size() + 64);
  CHECK(k->autolocked());
  CHECK(*Keyring::IsLocked(d.path));
  // The file holds neither the data key nor the unlock key.
  std::string file = ReadAll(KeyringPath(d.path));
  CHECK(file.find(unlock->substr(kUnlockKeyPrefix.size())) == std::string::npos);

  auto locked = Keyring::Open(d.path);
  REQUIRE(!locked.ok());
  CHECK(locked.error().code() == Code::kFailedPrecondition);
  CHECK(locked.error().message().find("shoal cluster unlock") != std::string::npos);

  // Whitespace around the key (a pasted line) is fine.
  auto opened = Keyring::Unlock(d.path, "  " + *unlock + "\n");
  REQUIRE(opened.ok());
  CHECK(opened->data_key() == key);
  CHECK(opened->autolocked());
  CHECK(opened->unlock_key() == *unlock);

  REQUIRE(opened->DisableAutolock().ok());
  CHECK(!*Keyring::IsLocked(d.path));
  CHECK(Keyring::Open(d.path)->data_key() == key);
  CHECK(Keyring::Unlock(d.path, *unlock).error().code() == Code::kFailedPrecondition);
}

TEST_CASE("keyring: a wrong or malformed unlock key is refused without echoing it") {
  TempDir d;
  auto k = Keyring::Create(d.path);
  REQUIRE(k.ok());
  auto unlock = k->EnableAutolock();
  REQUIRE(unlock.ok());
  std::string wrong = std::string(kUnlockKeyPrefix) + std::string(64, 'a');
  auto r = Keyring::Unlock(d.path, wrong);
  REQUIRE(!r.ok());
  CHECK(r.error().code() == Code::kInvalidArgument);
  CHECK(r.error().message().find("wrong unlock key") != std::string::npos);
  CHECK(r.error().message().find(wrong) == std::string::npos);
  for (std::string bad : {std::string("SHOAL-KEY-1-zz"), std::string("nonsense"),
                          std::string(kUnlockKeyPrefix) + std::string(64, 'g')}) {
    auto m = Keyring::Unlock(d.path, bad);
    REQUIRE(!m.ok());
    CHECK(m.error().code() == Code::kInvalidArgument);
    CHECK(m.error().message().find("malformed") != std::string::npos);
  }
}

TEST_CASE("keyring: rotating the unlock key retires the old one") {
  TempDir d;
  auto k = Keyring::Create(d.path);
  REQUIRE(k.ok());
  CHECK(k->RotateUnlockKey().error().code() == Code::kFailedPrecondition);
  auto first = k->EnableAutolock();
  REQUIRE(first.ok());
  auto second = k->RotateUnlockKey();
  REQUIRE(second.ok());
  CHECK(*first != *second);
  CHECK(!Keyring::Unlock(d.path, *first).ok());
  auto opened = Keyring::Unlock(d.path, *second);
  REQUIRE(opened.ok());
  CHECK(opened->data_key() == k->data_key());
}

TEST_CASE("keyring: a rewrite is atomic (a stale temporary file does not matter)") {
  TempDir d;
  auto k = Keyring::Create(d.path);
  REQUIRE(k.ok());
  DataKey key = k->data_key();
  // A crash mid-write leaves a half-written temporary file beside the key.
  std::ofstream(KeyringPath(d.path) + ".tmp") << "shoal-datakey v1 lo";
  CHECK(Keyring::Open(d.path)->data_key() == key);
  auto unlock = k->EnableAutolock();
  REQUIRE(unlock.ok());
  CHECK(!fs::exists(KeyringPath(d.path) + ".tmp"));
  CHECK(Keyring::Unlock(d.path, *unlock)->data_key() == key);
  // A failed write (the directory made read-only is not enough as root, so
  // the temporary path is a directory) leaves the old file in force.
  fs::create_directories(KeyringPath(d.path) + ".tmp");
  CHECK(!k->DisableAutolock().ok());
  CHECK(*Keyring::IsLocked(d.path));
  CHECK(Keyring::Unlock(d.path, *unlock)->data_key() == key);
}

}  // namespace
}  // namespace shoal::ca
