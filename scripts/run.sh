#!/usr/bin/env sh
# Runs Baton with demo data: builds what is missing, then `baton demo` (see README).
set -eu
cd "$(dirname "$0")/.."
if ! command -v cargo >/dev/null 2>&1; then
  echo "run.sh: cargo is required: install Rust from https://rustup.rs" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/baton/target}"
exec cargo run -q -p xtask -- run "$@"
