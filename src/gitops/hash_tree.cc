#include "hash_tree.h"

#include <openssl/evp.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "shoal/gitops/source.h"

namespace shoal::gitops::internal {
namespace fs = std::filesystem;
namespace {

std::string Hex(const unsigned char* d, unsigned int len) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[d[i] >> 4];
    out += kHex[d[i] & 15];
  }
  return out;
}

}  // namespace

std::string Sha256Hex(const std::string& bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &len, EVP_sha256(), nullptr);
  return Hex(digest, len);
}

}  // namespace shoal::gitops::internal

namespace shoal::gitops {
std::string SourceKey(const std::string& describe) {
  return internal::Sha256Hex(describe).substr(0, 16);
}
}  // namespace shoal::gitops

namespace shoal::gitops::internal {

Result<std::string> HashTree(const std::string& dir) {
  std::error_code ec;
  std::vector<fs::path> files;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return IoError(dir + ": " + ec.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) return IoError(dir + ": " + ec.message());
    if (it->path().filename() == ".git") {
      it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec)) files.push_back(fs::relative(it->path(), dir, ec));
  }
  std::sort(files.begin(), files.end());
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 16);
  for (const fs::path& rel : files) {
    std::string header = rel.string();
    header.push_back('\0');
    const fs::path full = fs::path(dir) / rel;
    std::ifstream in(full, std::ios::binary);
    if (!in) return IoError(full.string() + ": cannot be read");
    header += std::to_string(fs::file_size(full, ec));
    header.push_back('\0');
    EVP_DigestUpdate(ctx.get(), header.data(), header.size());
    while (in) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
    }
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx.get(), digest, &len);
  return Hex(digest, len);
}

}  // namespace shoal::gitops::internal
