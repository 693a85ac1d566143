# Turns a text file into a C++ source defining shoal::schema::kComposeSpecJson.
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "// Generated from ${IN}; do not edit.\n#include <cstddef>\n"
  "namespace shoal::schema {\nextern const char kComposeSpecJson[];\nextern const std::size_t kComposeSpecJsonSize;\n"
  "const char kComposeSpecJson[] = {${bytes} 0x00};\n"
  "const std::size_t kComposeSpecJsonSize = sizeof(kComposeSpecJson) - 1;\n}\n")
