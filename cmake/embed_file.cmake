# embed_file.cmake: writes OUT, a C file defining `const unsigned char
# NAME[]` (IN's bytes, then a NUL so it can be used as text) and `const
# size_t NAME_len` (without the NUL). Run with cmake -P.
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n_hex)
math(EXPR n "${n_hex} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
# about 20 bytes a line, so the file stays readable in a diff tool
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){20})" "\\1\n" body "${body}")
file(WRITE "${OUT}.tmp" "/* generated from ${IN} by cmake/embed_file.cmake: do not edit */\n#include <stddef.h>\n"
  "const unsigned char ${NAME}[] = {\n${body}0x00};\nconst size_t ${NAME}_len = ${n};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
