#pragma once

// Diagnostics name the place of a problem in the user's files, so that every
// error and warning of the stack loader reads "file:line:column: key.path: what".

#include <string>
#include <string_view>
#include <vector>

namespace shoal::stack {

// A position in a source file. Lines and columns are 1-based; 0 means unknown
// (a value that came from the environment or from a default).
struct Mark {
  // Interned (InternFileName): every value of a file shares one name, and a
  // Mark copies as cheaply as an integer.
  const std::string* file = nullptr;
  int line = 0;
  int column = 0;

  std::string ToString() const;  // "stack.yml:12:7", "stack.yml" or ""
};

// The one lasting copy of a file name, for Mark::file. Names live until the
// process ends; a process loads a bounded set of files. Thread-safe.
const std::string* InternFileName(std::string_view name);

enum class Severity { kError, kWarning };

struct Diagnostic {
  Severity severity = Severity::kError;
  Mark mark;
  std::string path;  // key path, "services.web.deploy.replicas"
  std::string message;

  // "stack.yml:12:7: services.web.deploy.replicas: expected an integer, got \"three\""
  std::string ToString() const;
};

// Every problem found in one load, errors and warnings, in file order.
class Diagnostics {
 public:
  void Error(const Mark& mark, std::string path, std::string message);
  void Warning(const Mark& mark, std::string path, std::string message);
  void Add(Diagnostic d) { items_.push_back(std::move(d)); }
  void Append(const Diagnostics& other);

  bool HasErrors() const;
  size_t ErrorCount() const;
  const std::vector<Diagnostic>& items() const { return items_; }
  std::vector<Diagnostic> Errors() const;
  std::vector<Diagnostic> Warnings() const;
  // Sorts by file, line, column (stable), so that messages read top to bottom.
  void Sort();
  // One diagnostic per line, errors prefixed "error: " and warnings "warning: ".
  std::string ToString() const;

 private:
  std::vector<Diagnostic> items_;
};

}  // namespace shoal::stack
