#!/usr/bin/env bash
# The one gate for humans and CI: formatting, lints, and the whole test suite.
# Read-only: it never rewrites the tree (use `cargo fmt --all` yourself to fix formatting).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p node --all-targets --locked --features sabotage -- -D warnings
echo "== tests"
cargo build --locked -p node --bin raftledger -p readmodel --bin raftledger-readmodel
# (The chaos sabotage tests build their deliberately broken node themselves; see
# chaos/tests/common/mod.rs.)
cargo nextest run --workspace --locked --no-fail-fast
