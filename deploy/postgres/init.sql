-- PostgreSQL roles of the read model, least privilege. Run once on a fresh database as a
-- superuser with psql variables `projector_password` and `reader_password`:
--   psql -v ON_ERROR_STOP=1 -v projector_password=... -v reader_password=... -f init.sql
-- (the compose stack runs it through init-roles.sh on the first start of its volume).
--
-- raftledger_projector — the projector: creates the projection schemas (rm_1, rm_2, …) and
--                        public.readmodel_active, writes them. `--postgres-url` uses it.
-- raftledger_reader    — the query API: SELECT only, read-only transactions by default.
--                        `--pg-read-url` uses it.
--
-- The reader's SELECT on every schema and table the projector creates later (a rebuild makes
-- a new schema) comes from ALTER DEFAULT PRIVILEGES, so nothing has to be granted again on
-- restart or after a rebuild.

CREATE ROLE raftledger_projector LOGIN PASSWORD :'projector_password';
CREATE ROLE raftledger_reader LOGIN PASSWORD :'reader_password';
ALTER ROLE raftledger_reader SET default_transaction_read_only = on;

-- Nobody else connects or creates: PUBLIC loses its default CONNECT/TEMP on this database and
-- CREATE on schema public (already the default from PostgreSQL 15 on).
DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT, CREATE ON DATABASE %I TO raftledger_projector', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO raftledger_reader', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO raftledger_projector;
GRANT USAGE ON SCHEMA public TO raftledger_reader;

-- What the projector creates, the reader may read (and nothing more).
ALTER DEFAULT PRIVILEGES FOR ROLE raftledger_projector GRANT USAGE ON SCHEMAS TO raftledger_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE raftledger_projector GRANT SELECT ON TABLES TO raftledger_reader;
