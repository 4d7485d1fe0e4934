//! Deferred indexes for rebuilds. A rebuild fills a fresh schema that nobody reads until the
//! swap, and the projector never reads `account_history` (it loads only `balances` and the
//! quarantine set), so that table's indexes — two B-trees per posting, most of PostgreSQL's
//! work per event — are dropped right after the schema is created and built once, in bulk,
//! when the rebuild has caught up, before the swap. The DDL is captured from the catalog
//! before dropping, so exactly what the migrations made is recreated; the swap additionally
//! refuses a schema whose indexes differ from the active one's ([`crate::schema`]).
//!
//! If the process dies in between, the half-built schema is never swapped in: the next
//! rebuild drops it and starts again from seq 1.

use anyhow::Context as _;
use tokio_postgres::GenericClient;

/// Tables whose indexes a rebuild defers: insert-only and never read by the projector.
pub const DEFERRED_TABLES: &[&str] = &["account_history"];
/// Sort memory for the bulk index build (session-local; PostgreSQL's default is 64 MB).
const BUILD_MAINTENANCE_WORK_MEM: &str = "256MB";

/// What was dropped from a schema, and the statements that recreate it.
#[derive(Debug, Clone)]
pub struct DeferredIndexes {
    schema: String,
    /// (index name, statement creating it), constraints first.
    recreate: Vec<(String, String)>,
}

impl DeferredIndexes {
    /// Schema the indexes belong to.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Builds the dropped indexes again, in one transaction; skips those that exist (a retry
    /// after a commit whose answer was lost).
    pub async fn restore(&self, client: &mut tokio_postgres::Client) -> anyhow::Result<()> {
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "SET LOCAL maintenance_work_mem = '{BUILD_MAINTENANCE_WORK_MEM}'"
        ))
        .await?;
        let existing: Vec<String> = tx
            .query(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1",
                &[&self.schema],
            )
            .await?
            .into_iter()
            .map(|r| r.get(0))
            .collect();
        for (index, sql) in &self.recreate {
            if existing.contains(index) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .with_context(|| format!("recreate index: {sql}"))?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Drops the indexes (and the constraints they back) of [`DEFERRED_TABLES`] in `schema`,
/// returning how to recreate them. Call on a schema that is being built and not yet read.
pub async fn drop_indexes(c: &impl GenericClient, schema: &str) -> anyhow::Result<DeferredIndexes> {
    let tables: Vec<String> = DEFERRED_TABLES.iter().map(|t| t.to_string()).collect();
    let rows = c
        .query(
            "SELECT t.relname, i.relname, con.conname, pg_get_constraintdef(con.oid),
                    pg_get_indexdef(ix.indexrelid)
             FROM pg_index ix
             JOIN pg_class i ON i.oid = ix.indexrelid
             JOIN pg_class t ON t.oid = ix.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             LEFT JOIN pg_constraint con ON con.conindid = ix.indexrelid AND con.conrelid = t.oid
             WHERE n.nspname = $1 AND t.relname = ANY($2)
             ORDER BY t.relname, con.conname IS NULL, i.relname",
            &[&schema, &tables],
        )
        .await?;
    let mut recreate = Vec::new();
    for r in rows {
        let (table, index): (String, String) = (r.get(0), r.get(1));
        let constraint: Option<String> = r.get(2);
        let drop = match (constraint, r.get::<_, Option<String>>(3)) {
            (Some(name), Some(def)) => {
                // The constraint's index takes the constraint's name.
                let sql = format!("ALTER TABLE {schema}.{table} ADD CONSTRAINT {name} {def}");
                recreate.push((name.clone(), sql));
                format!("ALTER TABLE {schema}.{table} DROP CONSTRAINT {name}")
            }
            _ => {
                recreate.push((index.clone(), r.get(4)));
                format!("DROP INDEX {schema}.{index}")
            }
        };
        c.batch_execute(&drop).await.with_context(|| drop.clone())?;
    }
    tracing::info!(
        schema,
        indexes = recreate.len(),
        "readmodel.indexes_deferred"
    );
    Ok(DeferredIndexes {
        schema: schema.to_owned(),
        recreate,
    })
}
