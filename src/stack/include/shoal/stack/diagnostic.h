#pragma once

// Diagnostics name the place of a problem in the user's files, so that every
// error and warning of the stack loader reads "file:line:column: key.path: what".

#include <memory>
#include <string>
#include <vector>

namespace shoal::stack {

// A position in a source file. Lines and columns are 1-based; 0 means unknown
// (a value that came from the environment or from a default).
struct Mark {
  std::shared_ptr<const std::string> file;
  int line = 0;
  int column = 0;

  std::string ToString() const;  // "stack.yml:12:7", "stack.yml" or ""
};

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
