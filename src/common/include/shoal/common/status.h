#pragma once

// Errors are values in shoal: every module edge returns a Status or a Result<T>.
// Exceptions from third-party libraries (yaml-cpp, protobuf, boost) are caught
// where they are raised and turned into one of these.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace shoal {

// Add a code only when some caller reacts to it differently.
enum class Code {
  kOk = 0,
  kInvalidArgument,     // the input is wrong; retrying will not help
  kNotFound,            // a named object or file does not exist
  kAlreadyExists,       // a create met an existing object
  kFailedPrecondition,  // the state does not allow it now (stale version, not leader)
  kUnavailable,         // transient: retry later, possibly elsewhere
  kIo,                  // the operating system refused a read or write
  kCorruption,          // stored data failed a check; never silently ignored
  kInternal,            // a bug in shoal
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid argument: <message>", or "ok".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status IoError(std::string m) { return {Code::kIo, std::move(m)}; }
inline Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }

// Either a value or an error. E defaults to Status; modules whose callers need
// structured errors (the stack loader's diagnostics list) supply their own E.
template <class T, class E = Status>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const E& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  E&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, E> v_;
};

}  // namespace shoal
