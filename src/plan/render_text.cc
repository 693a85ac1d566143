#include <algorithm>
#include <string>

#include "shoal/plan/render.h"

namespace shoal::plan {
namespace {

constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kReset = "\x1b[0m";

class TextWriter {
 public:
  explicit TextWriter(const RenderOptions& options) : options_(options) {}

  void Marker(char marker) {
    const char* colour = marker == '+' ? kGreen : marker == '-' ? kRed : kYellow;
    Styled(std::string(1, marker), colour);
  }
  void Styled(const std::string& text, const char* style) {
    if (options_.color) out_ += style;
    out_ += text;
    if (options_.color) out_ += kReset;
  }
  std::string& out() { return out_; }

 private:
  const RenderOptions& options_;
  std::string out_;
};

char MarkerOf(Action action) {
  switch (action) {
    case Action::kCreate:
      return '+';
    case Action::kRemove:
      return '-';
    default:
      return '~';
  }
}

char MarkerOf(FieldChange::Op op) {
  switch (op) {
    case FieldChange::Op::kAdd:
      return '+';
    case FieldChange::Op::kRemove:
      return '-';
    default:
      return '~';
  }
}

std::string Tasks(uint64_t n) { return std::to_string(n) + (n == 1 ? " task" : " tasks"); }

// "(rolling replace of 3 tasks)" or "(in place)" for a service update.
std::string HowApplied(const ObjectChange& c) {
  if (!c.replaces_tasks) return " (in place)";
  if (!c.tasks_replaced) return " (rolling replace of all tasks)";
  return " (rolling replace of " + Tasks(*c.tasks_replaced) + ")";
}

void WriteField(const FieldChange& f, bool annotate, TextWriter& w) {
  w.out() += "      ";
  w.Marker(MarkerOf(f.op));
  w.out() += ' ';
  w.out() += f.path;
  w.out() += ": ";
  if (f.sensitive) {
    w.out() += f.op == FieldChange::Op::kChange ? "(sensitive value changed)" : "(sensitive value)";
  } else if (f.op == FieldChange::Op::kAdd) {
    w.out() += f.new_value;
  } else if (f.op == FieldChange::Op::kRemove) {
    w.out() += f.old_value;
  } else {
    w.out() += f.old_value + " -> " + f.new_value;
  }
  // Only where an update mixes both kinds does the reader need telling which
  // fields force the replace; otherwise the object's header says it.
  if (annotate && f.replaces_tasks) w.out() += "  # replaces tasks";
  w.out() += '\n';
}

void WriteObject(const ObjectChange& c, TextWriter& w) {
  w.out() += "  ";
  w.Marker(MarkerOf(c.action));
  w.out() += ' ';
  w.out() += KindName(c.kind);
  w.out() += ' ';
  w.out() += c.name;
  if (c.kind == ObjectKind::kService && c.action == Action::kUpdate) w.out() += HowApplied(c);
  w.out() += '\n';
  bool mixed =
      c.replaces_tasks && std::any_of(c.fields.begin(), c.fields.end(),
                                      [](const FieldChange& f) { return !f.replaces_tasks; });
  for (const FieldChange& f : c.fields) WriteField(f, mixed, w);
}

std::string SummaryLine(const Summary& s) {
  std::string replaced;
  if (s.tasks_replaced > 0) replaced = Tasks(s.tasks_replaced);
  if (s.global_services_replaced > 0) {
    if (!replaced.empty()) replaced += " and ";
    replaced += "all tasks of " + std::to_string(s.global_services_replaced) + " global service";
    if (s.global_services_replaced > 1) replaced += 's';
  }
  std::string line =
      std::to_string(s.create) + " to create, " + std::to_string(s.update) + " to update";
  if (!replaced.empty()) line += " (" + replaced + " replaced)";
  return line + ", " + std::to_string(s.remove) + " to remove, " + std::to_string(s.unchanged) +
         " unchanged.";
}

}  // namespace

std::string RenderText(const Plan& plan, const RenderOptions& options) {
  TextWriter w(options);
  const Summary summary = plan.Summarize();
  w.out() += "Stack " + plan.stack + ":\n";
  for (const ObjectChange& c : plan.changes) {
    if (c.action != Action::kUnchanged) {
      WriteObject(c, w);
    } else if (options.show_unchanged) {
      w.out() += "    " + std::string(KindName(c.kind)) + ' ' + c.name + " (unchanged)\n";
    }
  }
  if (!plan.HasChanges()) {
    if (!options.show_unchanged) {
      w.out() += "  (" + std::to_string(summary.unchanged) + " objects, all up to date)\n";
    }
    w.out() += '\n';
    w.Styled("No changes.", kBold);
    w.out() += " " + std::to_string(summary.unchanged) + " unchanged.\n";
    return std::move(w.out());
  }
  w.out() += '\n';
  w.Styled("Plan:", kBold);
  w.out() += ' ' + SummaryLine(summary) + '\n';
  return std::move(w.out());
}

}  // namespace shoal::plan
