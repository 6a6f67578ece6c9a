#!/usr/bin/env bash
# tools/check-prefixes.sh [SRC] — one public prefix per module: every name a public header declares
# starts with its module's prefix, or is an exception listed with its reason in tools/prefixes.py
# (`tools/prefixes.py list SRC` shows each header's names by prefix).
set -euo pipefail
exec python3 "$(dirname "$0")/prefixes.py" check "${1:-$(dirname "$0")/..}"
