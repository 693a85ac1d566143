#pragma once

// A client of the Docker Engine API over its unix socket: HTTP/1.1 through
// boost.beast, one connection per call (a unix connect costs microseconds),
// every path under the version this executor speaks (/v1.41, Engine 20.10).
// JSON is the caller's business (rapidjson); this file moves bytes.

#include <rapidjson/document.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "shoal/common/status.h"

namespace shoal::executor::docker {

// The API version every request names. Engines older than it refuse the
// versioned path; Open() checks the engine's own version first.
inline constexpr std::string_view kApiVersion = "1.41";

// Limits on what the engine may send (docs/security.md, "Hostile input"): a
// reply body larger than kMaxResponseBytes (a Content-Length that claims
// more is refused before anything is allocated), or an event line longer
// than kMaxEventLineBytes, is an error rather than memory spent. Real
// replies are kilobytes; the limit is for container logs, which Logs() reads
// whole.
inline constexpr uint64_t kMaxResponseBytes = uint64_t{256} << 20;
inline constexpr size_t kMaxEventLineBytes = size_t{1} << 20;

struct HttpResponse {
  int status = 0;
  std::string body;
};

// The engine's explanation of a failed call: its JSON body's "message", or
// "HTTP <status>" with the start of the body.
std::string EngineMessage(const HttpResponse& response);

class EngineClient {
 public:
  // `host` is "unix:///path/docker.sock" or a bare absolute path.
  // InvalidArgument for other schemes (tcp:// is not supported: secrets are
  // bind-mounted from this host, so the engine must run here).
  static Result<EngineClient> Make(std::string_view host,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // One request to `/v1.41<path>` (path starts with '/'; its query already
  // escaped). Any HTTP status is a success here; kUnavailable when the socket
  // is absent or refuses, the call ran past the timeout (the connection is
  // then closed), or the reply is not HTTP or is larger than
  // kMaxResponseBytes. Thread-safe: each call has its own connection.
  Result<HttpResponse> Call(std::string_view method, std::string_view path,
                            std::string_view body = {},
                            std::string_view content_type = "application/json") const;

  // Like Call, for an unversioned path ("/_ping", "/version").
  Result<HttpResponse> CallRaw(std::string_view method, std::string_view target,
                               std::string_view body = {},
                               std::string_view content_type = "application/json") const;

  // Ok when the engine answers and speaks API 1.41 or later; otherwise
  // kUnavailable (absent, refuses: "no Docker Engine at unix:///x: ...") or
  // kFailedPrecondition (too old: "the Docker Engine at ... speaks API 1.38;
  // shoal needs 1.41 or later"). On success `*description` (optional) gets
  // "Docker Engine 20.10.24 (API 1.41)".
  Status Check(std::string* description = nullptr) const;

  const std::string& socket_path() const { return socket_; }
  // "unix://<socket_path>", for messages.
  std::string host() const { return "unix://" + socket_; }

 private:
  EngineClient(std::string socket, std::chrono::milliseconds timeout)
      : socket_(std::move(socket)), timeout_(timeout) {}
  std::string socket_;
  std::chrono::milliseconds timeout_;
};

// A long GET whose body is a stream of newline-separated JSON objects (the
// engine's /events). Open() sends the request and reads the headers; Next()
// then blocks until the next line. Interrupt() may be called from any other
// thread to make a blocked Next() return kUnavailable; nothing else may.
class LineStream {
 public:
  LineStream();
  ~LineStream();
  LineStream(const LineStream&) = delete;
  LineStream& operator=(const LineStream&) = delete;

  // kUnavailable when the engine cannot be reached or answers other than 200
  // (with its message).
  Status Open(const EngineClient& client, std::string_view path);
  // The next line without its '\n'; kUnavailable at the end of the stream,
  // on an error, after Interrupt(), or for a line longer than
  // kMaxEventLineBytes (the stream is then over).
  Result<std::string> Next();
  void Interrupt();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses the engine's JSON into *doc; false (doc holding the parse error)
// for text that is not JSON. Iterative: rapidjson's default parser recurses
// once per nesting level, so a reply of a few hundred kilobytes of '['
// overflowed the agent's stack. Every parse of an engine reply goes here.
bool ParseEngineJson(std::string_view text, rapidjson::Document* doc);

// Escapes `s` for a URL query value.
std::string UrlEncode(std::string_view s);

// The payload of a non-tty container's log stream, whose frames are an
// 8-byte header (stream, 0, 0, 0, big-endian length) and the bytes. Stops at
// a truncated frame.
std::string DemuxLogStream(std::string_view raw);

}  // namespace shoal::executor::docker
