#!/usr/bin/env bash
# tools/check-refs.sh — fails when a section reference (contract §N, architecture §N) in the tree
# names a section that docs/wave-contract.md or docs/architecture.md does not have, or cites a
# document outside the repository (tools/refs.py says how references are read).
set -euo pipefail
exec python3 "$(dirname "$0")/refs.py" check "${1:-$(dirname "$0")/..}"
