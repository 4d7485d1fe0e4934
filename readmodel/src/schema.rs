//! Projection schemas and migrations. Each projection generation lives in its own PostgreSQL
//! schema (`rm_1`, `rm_2`, …) built by the numbered migrations in `readmodel/migrations/`;
//! `public.readmodel_active` names the one queries read. A rebuild fills a new generation
//! while the active one serves, then swaps the pointer in one transaction.

use anyhow::Context as _;
use tokio_postgres::GenericClient;

/// The numbered migrations, applied in order to every projection schema.
pub const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "balances",
        include_str!("../migrations/0001_balances.sql"),
    ),
    (
        2,
        "account_history",
        include_str!("../migrations/0002_account_history.sql"),
    ),
    (
        3,
        "daily_totals",
        include_str!("../migrations/0003_daily_totals.sql"),
    ),
    (
        4,
        "projection_checkpoint",
        include_str!("../migrations/0004_projection_checkpoint.sql"),
    ),
    (
        5,
        "parked_events",
        include_str!("../migrations/0005_parked_events.sql"),
    ),
];

/// Lock id serializing schema set-up and swaps between processes.
const SETUP_LOCK_ID: i64 = 0x7261_6674_6c65_6467; // "raftledg"

/// Name of generation `n`.
pub fn schema_name(generation: i32) -> String {
    format!("rm_{generation}")
}

/// Returns the active schema, creating generation 1 on a blank database and applying any
/// migrations the active schema lacks.
pub async fn setup(client: &mut tokio_postgres::Client) -> anyhow::Result<String> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK_ID])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS public.readmodel_active (
             id boolean PRIMARY KEY DEFAULT true CHECK (id),
             schema_name text NOT NULL,
             generation int NOT NULL,
             swapped_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    let schema = match active(&tx).await? {
        Some((s, _)) => s,
        None => {
            let s = schema_name(1);
            create(&tx, &s).await?;
            tx.execute(
                "INSERT INTO public.readmodel_active (schema_name, generation) VALUES ($1, 1)",
                &[&s],
            )
            .await?;
            s
        }
    };
    migrate(&tx, &schema).await?;
    tx.commit().await?;
    Ok(schema)
}

/// The active (schema, generation).
pub async fn active(c: &impl GenericClient) -> anyhow::Result<Option<(String, i32)>> {
    let row = c
        .query_opt(
            "SELECT schema_name, generation FROM public.readmodel_active",
            &[],
        )
        .await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// Creates the next generation's schema (dropping leftovers of older, inactive ones except the
/// previous, kept for inspection) and returns its name.
pub async fn create_next(client: &mut tokio_postgres::Client) -> anyhow::Result<String> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK_ID])
        .await?;
    let (_, gen) = active(&tx).await?.context("no active schema")?;
    let rows = tx
        .query(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^rm_[0-9]+$'",
            &[],
        )
        .await?;
    for r in rows {
        let name: String = r.get(0);
        let n: i32 = name[3..].parse().unwrap_or(0);
        if n != gen && n != gen - 1 {
            tx.batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                .await?;
        }
    }
    let s = schema_name(gen + 1);
    create(&tx, &s).await?;
    tx.commit().await?;
    Ok(s)
}

/// Swaps the active pointer from `old` to `new` iff `new` has caught up with `old` (checked
/// with `old`'s checkpoint row locked, so `old` cannot move meanwhile). Returns whether it did;
/// errors if `new` is not indexed exactly like `old` (a rebuild whose deferred indexes were
/// not built again).
pub async fn swap_if_caught_up(
    client: &mut tokio_postgres::Client,
    old: &str,
    new: &str,
) -> anyhow::Result<bool> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK_ID])
        .await?;
    let old_seq: i64 = tx
        .query_one(
            &format!("SELECT last_seq FROM {old}.projection_checkpoint FOR UPDATE"),
            &[],
        )
        .await?
        .get(0);
    let new_seq: i64 = tx
        .query_one(
            &format!("SELECT last_seq FROM {new}.projection_checkpoint"),
            &[],
        )
        .await?
        .get(0);
    if new_seq < old_seq {
        return Ok(false);
    }
    let (old_ix, new_ix) = (indexes(&tx, old).await?, indexes(&tx, new).await?);
    anyhow::ensure!(
        old_ix == new_ix,
        "{new} is not indexed like {old}: {new_ix:?} vs {old_ix:?}"
    );
    let gen: i32 = new[3..].parse().context("generation of schema")?;
    tx.execute(
        "UPDATE public.readmodel_active SET schema_name = $1, generation = $2, swapped_at = now()",
        &[&new, &gen],
    )
    .await?;
    tx.commit().await?;
    tracing::info!(old, new, seq = new_seq, "readmodel.swapped");
    Ok(true)
}

/// The index definitions of `schema` (schema name stripped), sorted: what a swap compares.
pub async fn indexes(c: &impl GenericClient, schema: &str) -> anyhow::Result<Vec<String>> {
    let rows = c
        .query(
            "SELECT replace(indexdef, schemaname || '.', '') FROM pg_indexes
             WHERE schemaname = $1 ORDER BY tablename, indexname",
            &[&schema],
        )
        .await?;
    Ok(rows.into_iter().map(|r| r.get(0)).collect())
}

async fn create(c: &impl GenericClient, schema: &str) -> anyhow::Result<()> {
    c.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    migrate(c, schema).await
}

/// Applies the migrations `schema` lacks, each recorded in `<schema>.schema_migrations`.
pub async fn migrate(c: &impl GenericClient, schema: &str) -> anyhow::Result<()> {
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version int PRIMARY KEY, name text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now())"
    ))
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let done = c
            .query_opt(
                &format!("SELECT 1 FROM {schema}.schema_migrations WHERE version = $1"),
                &[version],
            )
            .await?
            .is_some();
        if done {
            continue;
        }
        c.batch_execute(&format!(
            "SET LOCAL search_path TO {schema}; {sql}; RESET search_path"
        ))
        .await
        .with_context(|| format!("migration {version} ({name}) on {schema}"))?;
        c.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[version, name],
        )
        .await?;
        tracing::info!(schema, version, name, "readmodel.migrated");
    }
    Ok(())
}
