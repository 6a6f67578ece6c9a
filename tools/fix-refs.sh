#!/usr/bin/env bash
# tools/fix-refs.sh — rewrites old references ("spec §1.2", "design §2", bare "§1.2") into
# references to the repository's docs ("contract §3.2", "architecture §2") with the table in
# tools/refs.py. Idempotent: re-run it after merging a branch written against the old numbering,
# review the diff, then tools/check-refs.sh.
set -euo pipefail
exec python3 "$(dirname "$0")/refs.py" fix "${1:-$(dirname "$0")/..}"
