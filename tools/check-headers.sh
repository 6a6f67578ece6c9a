#!/usr/bin/env bash
# tools/check-headers.sh SRC [BUILD] — compiles every public header of waved (all *.h of core/,
# storage/, http/, registry/, scan/, build/ and their sub-folders, but not the private *_int.h)
# into one translation unit, so two headers can never define one name differently (one name per
# thing), and every header includes what it uses. BUILD (default SRC/out) gives version.h.
# Then the internal marker (tools/internal_names.py check).
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
bld=${2:-$src/out}
tu=$(mktemp /tmp/waved-headers.XXXXXX.c)
trap 'rm -f "$tu"' EXIT
(cd "$src" && find core storage http registry scan build -name '*.h' ! -name '*_int.h' | LC_ALL=C sort) |
  sed 's/.*/#include "&"/' >"$tu"
echo "int waved_headers_compile_together(void);" >>"$tu"
n=$(grep -c '^#include' "$tu")
# shellcheck disable=SC2046
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -fsyntax-only \
  -I"$src" -I"$bld/generated" -I/usr/share/include/llhttp \
  $(pkg-config --cflags libuv json-c lmdb yaml-0.1 libzstd libcurl openssl zlib) "$tu"
echo "$n headers compile together"
# The internal marker: what a *_int.h declares is wv__<module>_..., a public header declares no wv__.
python3 "$src/tools/internal_names.py" check "$src"
echo "internal names carry wv__, public ones do not"
