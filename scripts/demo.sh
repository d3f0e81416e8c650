#!/usr/bin/env bash
# Main job on the built-in synthetic cohort. Extra arguments go to `cardiac-atlas demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/cardiac-atlas demo --out "${OUT:-results/demo}" "$@"
