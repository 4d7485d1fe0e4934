#!/usr/bin/env bash
# Installs what the build and tests need, idempotently. Safe to run repeatedly.
set -euo pipefail

need_rustup_component() {
  rustup component list --installed 2>/dev/null | grep -q "^$1" || rustup component add "$1"
}

command -v cargo >/dev/null || { echo "cargo is required (install Rust with rustup)"; exit 1; }
need_rustup_component rustfmt
need_rustup_component clippy
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
