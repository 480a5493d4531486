#!/usr/bin/env sh
# Runs every test: Rust (store suite on SQLite and PostgreSQL) and Playwright in Chromium.
set -eu
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "test.sh: cargo is required: install Rust from https://rustup.rs" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: node and npm are required for the browser tests" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}"
# Each fresh clone (as CI makes) would add its own incremental-compilation state to the shared
# cache and never reuse it: the cache would only grow. Dependencies are cached either way.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
exec cargo run -q -p xtask -- test "$@"
