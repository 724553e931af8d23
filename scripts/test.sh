#!/usr/bin/env bash
# The test command: lint, type-check, then the whole suite against real servers.
# Without TICKVAULT_TEST_DATABASE_URL / TICKVAULT_TEST_REDIS_URL the suite starts throwaway
# PostgreSQL and Redis servers of its own.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
echo "== ruff"; .venv/bin/ruff check src tests bench
echo "== mypy"; .venv/bin/mypy
echo "== pytest"; .venv/bin/pytest -q "$@"
