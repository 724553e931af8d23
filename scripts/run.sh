#!/usr/bin/env bash
# The main job, offline: install what is needed, then run the whole pipeline for about a minute
# against the built-in simulator (Binance, Coinbase, Kraken x BTC-USDT, ETH-USDT, every
# channel) on the embedded PostgreSQL and Redis (or the configured ones), with live progress
# and a summary at the end. Extra arguments go to `tickvault run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/tickvault run --sim --duration 60 "$@"
