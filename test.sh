#!/usr/bin/env bash
# Set edi up in .venv with its test tools, then lint, type-check and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "edi needs Python >= 3.11 ($python is older)"; exit 1; }
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/ruff check edi tests benchmarks flows tools
.venv/bin/ruff format --check edi tests benchmarks flows tools
.venv/bin/mypy
.venv/bin/mypy --explicit-package-bases benchmarks  # the benchmarks too (they import edi and a few test helpers)
.venv/bin/pytest "$@"
