#include "dotenv.h"

#include <map>

namespace shoal::stack {

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

bool ValidKey(std::string_view k) {
  if (k.empty()) return false;
  for (char c : k) {
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-')) return false;
  }
  return true;
}

}  // namespace

std::vector<DotenvEntry> ParseDotenv(std::string_view text, const std::string* file,
                                     const VariableLookup& lookup, Diagnostics& diags) {
  std::vector<DotenvEntry> out;
  std::map<std::string, std::string, std::less<>> defined;
  VariableLookup scoped = [&](std::string_view name) -> std::optional<std::string> {
    if (auto v = lookup(name)) return v;  // the environment wins, as in compose
    auto it = defined.find(name);
    if (it != defined.end()) return it->second;
    return std::nullopt;
  };
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    size_t next = nl + 1;
    ++line_no;
    Mark mark{file, line_no, 1};
    std::string_view t = Trim(line);
    if (t.empty() || t[0] == '#') {
      pos = next;
      continue;
    }
    if (t.substr(0, 7) == "export ") t = Trim(t.substr(7));
    size_t eq = t.find('=');
    std::string_view key = Trim(t.substr(0, eq));
    if (!ValidKey(key)) {
      diags.Error(mark, "", "invalid variable name \"" + std::string(key) + "\" in env file");
      pos = next;
      continue;
    }
    DotenvEntry e;
    e.key = std::string(key);
    e.line = line_no;
    if (eq == std::string_view::npos) {
      out.push_back(std::move(e));
      pos = next;
      continue;
    }
    std::string_view raw = Trim(t.substr(eq + 1));
    std::string value;
    if (!raw.empty() && (raw[0] == '\'' || raw[0] == '"')) {
      char q = raw[0];
      // A quoted value may span lines: search the rest of the text for the closing quote.
      size_t start = pos + (raw.data() - line.data()) + 1;
      size_t i = start;
      bool closed = false;
      std::string body;
      while (i < text.size()) {
        char c = text[i];
        if (c == q) {
          closed = true;
          break;
        }
        if (q == '"' && c == '\\' && i + 1 < text.size()) {
          char n = text[i + 1];
          switch (n) {
            case 'n':
              body.push_back('\n');
              break;
            case 't':
              body.push_back('\t');
              break;
            case 'r':
              body.push_back('\r');
              break;
            case '"':
              body.push_back('"');
              break;
            case '\\':
              body.push_back('\\');
              break;
            case '$':
              body.append("$$");
              break;
            default:
              body.push_back('\\');
              body.push_back(n);
          }
          i += 2;
          continue;
        }
        if (c == '\n') ++line_no;
        body.push_back(c);
        ++i;
      }
      if (!closed) {
        diags.Error(
            mark, e.key,
            std::string("unterminated ") + (q == '"' ? "double" : "single") + " quote in env file");
        return out;
      }
      size_t eol = text.find('\n', i);
      next = eol == std::string_view::npos ? text.size() + 1 : eol + 1;
      if (q == '"') {
        std::string error;
        if (!InterpolateString(body, scoped, &value, nullptr, &error)) {
          diags.Error(mark, e.key, error);
          pos = next;
          continue;
        }
      } else {
        value = body;
      }
    } else {
      // Unquoted: a " #" starts a comment.
      size_t hash = raw.find(" #");
      if (hash != std::string_view::npos) raw = Trim(raw.substr(0, hash));
      std::string error;
      if (!InterpolateString(raw, scoped, &value, nullptr, &error)) {
        diags.Error(mark, e.key, error);
        pos = next;
        continue;
      }
    }
    defined[e.key] = value;
    e.value = std::move(value);
    out.push_back(std::move(e));
    pos = next;
  }
  return out;
}

}  // namespace shoal::stack
