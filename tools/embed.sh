#!/bin/sh
# embed.sh FILE NAME - prints a C file that defines `const unsigned char
# NAME[]` (FILE's bytes plus a NUL) and `const size_t NAME_len` (without
# the NUL), so that the binary carries the web page with no run-time file.
# Plain od and sed: no xxd on a fresh machine.
set -eu
printf '/* Generated from %s by tools/embed.sh; do not edit. */\n#include <stddef.h>\n' "$1"
printf 'extern const unsigned char %s[];\nextern const size_t %s_len;\n' "$2" "$2"
printf 'const unsigned char %s[] = {\n' "$2"
od -An -v -tx1 "$1" | sed 's/ *\([0-9a-f][0-9a-f]\)/0x\1,/g'
printf '0x00};\nconst size_t %s_len = sizeof %s - 1;\n' "$2" "$2"
