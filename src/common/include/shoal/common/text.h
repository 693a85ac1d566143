#pragma once

// Small text helpers shared by the modules that print values for people.

#include <string>
#include <string_view>

namespace shoal {

// `s` in double quotes with JSON-style escapes (\" \\ \n \t \r, \xNN for other
// control bytes). The result is also a valid YAML double-quoted scalar.
std::string Quote(std::string_view s);

}  // namespace shoal
