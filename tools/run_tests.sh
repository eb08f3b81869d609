#!/usr/bin/env bash
# Install everything (idempotent), lint as pre-commit does, and run the test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh -m slow` for the long checks.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash tools/install.sh
echo "[tests] lint (pre-commit hooks: ruff)"
.venv/bin/pre-commit run --all-files --show-diff-on-failure
echo "[tests] pytest"
exec .venv/bin/python -m pytest -q -p no:randomly --durations=15 "$@"
