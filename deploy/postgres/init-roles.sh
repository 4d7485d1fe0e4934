#!/bin/sh
# First start of the compose PostgreSQL volume (docker-entrypoint-initdb.d): creates the read
# model's two roles from deploy/postgres/init.sql with passwords from the environment.
set -eu
: "${RAFTLEDGER_PG_PROJECTOR_PASSWORD:?set RAFTLEDGER_PG_PROJECTOR_PASSWORD}"
: "${RAFTLEDGER_PG_READER_PASSWORD:?set RAFTLEDGER_PG_READER_PASSWORD}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v projector_password="$RAFTLEDGER_PG_PROJECTOR_PASSWORD" \
  -v reader_password="$RAFTLEDGER_PG_READER_PASSWORD" \
  -f /etc/raftledger/init.sql
