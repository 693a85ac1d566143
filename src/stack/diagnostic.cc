#include "shoal/stack/diagnostic.h"

#include <algorithm>
#include <mutex>
#include <set>

namespace shoal::stack {

const std::string* InternFileName(std::string_view name) {
  static std::mutex mu;
  static std::set<std::string, std::less<>>* names = new std::set<std::string, std::less<>>();
  std::lock_guard<std::mutex> lock(mu);
  auto it = names->find(name);
  if (it == names->end()) it = names->emplace(name).first;
  return &*it;
}

std::string Mark::ToString() const {
  if (!file) return "";
  std::string s = *file;
  if (line > 0) {
    s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
  }
  return s;
}

std::string Diagnostic::ToString() const {
  std::string s = mark.ToString();
  if (!s.empty()) s += ": ";
  if (!path.empty()) s += path + ": ";
  return s + message;
}

void Diagnostics::Error(const Mark& mark, std::string path, std::string message) {
  items_.push_back({Severity::kError, mark, std::move(path), std::move(message)});
}

void Diagnostics::Warning(const Mark& mark, std::string path, std::string message) {
  items_.push_back({Severity::kWarning, mark, std::move(path), std::move(message)});
}

void Diagnostics::Append(const Diagnostics& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

bool Diagnostics::HasErrors() const { return ErrorCount() > 0; }

size_t Diagnostics::ErrorCount() const {
  return std::count_if(items_.begin(), items_.end(),
                       [](const Diagnostic& d) { return d.severity == Severity::kError; });
}

std::vector<Diagnostic> Diagnostics::Errors() const {
  std::vector<Diagnostic> out;
  for (const auto& d : items_)
    if (d.severity == Severity::kError) out.push_back(d);
  return out;
}

std::vector<Diagnostic> Diagnostics::Warnings() const {
  std::vector<Diagnostic> out;
  for (const auto& d : items_)
    if (d.severity == Severity::kWarning) out.push_back(d);
  return out;
}

void Diagnostics::Sort() {
  std::stable_sort(items_.begin(), items_.end(), [](const Diagnostic& a, const Diagnostic& b) {
    const std::string fa = a.mark.file ? *a.mark.file : "";
    const std::string fb = b.mark.file ? *b.mark.file : "";
    if (fa != fb) return fa < fb;
    if (a.mark.line != b.mark.line) return a.mark.line < b.mark.line;
    return a.mark.column < b.mark.column;
  });
  // The same problem found twice (a file loaded as base and as override) is said once.
  items_.erase(std::unique(items_.begin(), items_.end(),
                           [](const Diagnostic& a, const Diagnostic& b) {
                             return a.severity == b.severity && a.ToString() == b.ToString();
                           }),
               items_.end());
}

std::string Diagnostics::ToString() const {
  std::string out;
  for (const auto& d : items_) {
    out += d.severity == Severity::kError ? "error: " : "warning: ";
    out += d.ToString();
    out += '\n';
  }
  return out;
}

}  // namespace shoal::stack
