#pragma once

// Printing a plan for people (RenderText, in the manner of `terraform plan` and
// `nomad job plan`) and for machines (RenderJson). Both are pure functions of the
// plan; neither ever prints a sensitive value, because a FieldChange marked
// sensitive carries none.

#include <string>

#include "shoal/plan/plan.h"

namespace shoal::plan {

struct RenderOptions {
  // Colour the +, ~ and - markers with ANSI escapes. The caller decides, usually
  // from isatty(stdout) and NO_COLOR; the renderer never looks at the terminal.
  bool color = false;
  // List unchanged objects by name too; by default only their count is printed.
  bool show_unchanged = false;
};

// Multi-line text ending in a newline, for example:
//
//   ~ service demo_api (rolling replace of 3 tasks)
//       ~ container.image: "nginx:1.25" -> "nginx:1.27"
//       + container.env.DEBUG: "1"
//   + network demo_back
//
//   Plan: 1 to create, 1 to update (3 tasks replaced), 0 to remove, 4 unchanged.
//
// or "No changes. ..." when the plan has none.
std::string RenderText(const Plan& plan, const RenderOptions& options);

// A JSON document with a stable key order:
//   {"stack": s, "changes": [{"kind", "name", "action", "replaces_tasks",
//    "tasks_replaced", "fields": [{"path", "op", "old", "new", "replaces_tasks",
//    "sensitive"}]}], "summary": {"create", "update", "remove", "unchanged",
//    "tasks_replaced", "global_services_replaced", "has_changes"}}
// Unchanged objects are included with an empty "fields". "tasks_replaced" is a
// number, or "all" for a replaced global service. "old" and "new" are null for
// an absent side and for sensitive fields.
std::string RenderJson(const Plan& plan);

}  // namespace shoal::plan
