//! The projection manager: runs the live projector into the active schema and performs
//! blue/green rebuilds — a second projector fills a new schema from seq 1 while the active one
//! keeps serving; once it has caught up, the history indexes it deferred are built
//! (`crate::deferred`), and once it has caught up again the pointer swaps in one transaction,
//! the old projector stops, and the new one carries on as live. The write side never pauses.

use crate::access::Upstream;
use crate::deferred::{self, DeferredIndexes};
use crate::projector::{self, Progress, Target};
use crate::schema;
use crate::store;
use crate::watermark::{self, ActiveSchema};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often a running rebuild checks whether it caught up and may swap.
const SWAP_CHECK_MS: u64 = 50;

/// A projector task and its stop switch.
struct Running {
    schema: String,
    stop: watch::Sender<bool>,
}

/// Progress of a rebuild, for `GET /admin/projections`.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildStatus {
    /// Schema being built.
    pub schema: String,
    /// `running`, `swapped` or `failed: …`.
    pub state: String,
    /// Events applied per second (when swapped), measured from start to swap.
    pub events_per_s: Option<f64>,
    /// Seq at the swap.
    pub swapped_at_seq: Option<u64>,
    /// Duration until the swap.
    pub duration_ms: Option<u64>,
}

/// Shared manager handle.
#[derive(Clone)]
pub struct Manager {
    postgres_url: String,
    nats_url: String,
    upstream: Upstream,
    /// The schema queries read.
    pub active: ActiveSchema,
    /// Watermark of the active schema.
    pub watermark: watch::Sender<u64>,
    live: Arc<Mutex<Option<Running>>>,
    rebuild: Arc<Mutex<Option<RebuildStatus>>>,
}

impl Manager {
    /// Sets up the database (active schema, migrations), starts the live projector and the
    /// watermark listener.
    pub async fn start(
        postgres_url: &str,
        nats_url: &str,
        upstream: Upstream,
    ) -> anyhow::Result<Self> {
        let (mut client, conn) = upstream.pg.connect(postgres_url).await?;
        let conn_task = tokio::spawn(conn);
        let active_name = schema::setup(&mut client).await?;
        let (seq, _) = store::checkpoint(&client, &active_name).await?;
        drop(client);
        conn_task.abort();
        let active = ActiveSchema::default();
        active.set(&active_name);
        let (watermark, _) = watch::channel(seq);
        watermark::spawn(
            postgres_url.into(),
            upstream.pg.clone(),
            active.clone(),
            watermark.clone(),
        );
        let m = Self {
            postgres_url: postgres_url.into(),
            nats_url: nats_url.into(),
            upstream,
            active,
            watermark,
            live: Arc::new(Mutex::new(None)),
            rebuild: Arc::new(Mutex::new(None)),
        };
        let running = m.spawn_projector(&active_name, projector::BATCH_EVENTS_MAX);
        *lock(&m.live) = Some(running);
        tracing::info!(schema = %active_name, checkpoint = seq, "readmodel.started");
        Ok(m)
    }

    fn spawn_projector(&self, schema: &str, batch_events_max: usize) -> Running {
        let (stop, stop_rx) = watch::channel(false);
        let target = Target {
            postgres_url: self.postgres_url.clone(),
            nats_url: self.nats_url.clone(),
            upstream: self.upstream.clone(),
            schema: schema.into(),
            batch_events_max,
            cache_accounts_max: crate::cache::CACHE_ACCOUNTS_MAX,
            progress: Some(Progress {
                active: self.active.clone(),
                watermark: self.watermark.clone(),
            }),
        };
        tokio::spawn(projector::run(target, stop_rx));
        Running {
            schema: schema.into(),
            stop,
        }
    }

    /// The current rebuild's status, if one ran.
    pub fn rebuild_status(&self) -> Option<RebuildStatus> {
        lock(&self.rebuild).clone()
    }

    /// Starts a rebuild; `Err` if one is already running.
    pub async fn start_rebuild(&self) -> Result<RebuildStatus, RebuildError> {
        {
            let mut r = lock(&self.rebuild);
            if r.as_ref().is_some_and(|s| s.state == "running") {
                return Err(RebuildError::AlreadyRunning);
            }
            *r = Some(RebuildStatus {
                schema: String::new(),
                state: "running".into(),
                events_per_s: None,
                swapped_at_seq: None,
                duration_ms: None,
            });
        }
        let (new_schema, deferred) = match self.create_schema().await {
            Ok(s) => s,
            Err(e) => {
                self.set_rebuild_state(format!("failed: {e:#}"));
                return Err(RebuildError::Db(format!("{e:#}")));
            }
        };
        // The rebuilt projector stays live after the swap with the bigger batch bound; it only
        // matters while there is a backlog (batches are as large as what has arrived).
        let building = self.spawn_projector(&new_schema, projector::REBUILD_BATCH_EVENTS_MAX);
        if let Some(r) = lock(&self.rebuild).as_mut() {
            r.schema = new_schema.clone();
        }
        tracing::info!(schema = %new_schema, "readmodel.rebuild_started");
        let me = self.clone();
        tokio::spawn(async move { me.supervise(building, deferred, Instant::now()).await });
        Ok(self.rebuild_status().expect("set above"))
    }

    /// Creates the next generation's schema, its history indexes deferred.
    async fn create_schema(&self) -> anyhow::Result<(String, DeferredIndexes)> {
        let mut c = Conn::open(&self.postgres_url, &self.upstream.pg).await?;
        let s = schema::create_next(&mut c.client).await?;
        let deferred = deferred::drop_indexes(&c.client, &s).await?;
        Ok((s, deferred))
    }

    fn set_rebuild_state(&self, state: String) {
        if let Some(r) = lock(&self.rebuild).as_mut() {
            r.state = state;
        }
    }

    /// Waits until the new schema caught up, builds its deferred indexes, waits until it
    /// caught up again, swaps, and hands the live role over. One connection, reopened after an
    /// error.
    async fn supervise(self, building: Running, deferred: DeferredIndexes, started: Instant) {
        let mut deferred = Some(deferred);
        let mut conn: Option<Conn> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(SWAP_CHECK_MS)).await;
            let old = self.active.get();
            let step = self.step(&mut conn, &old, &building.schema, &mut deferred);
            match step.await {
                Ok(Some(seq)) => {
                    self.active.set(&building.schema);
                    watermark::raise(&self.watermark, seq);
                    let previous = lock(&self.live).replace(building);
                    if let Some(p) = previous {
                        let _ = p.stop.send(true);
                    }
                    let secs = started.elapsed().as_secs_f64();
                    if let Some(r) = lock(&self.rebuild).as_mut() {
                        r.state = "swapped".into();
                        r.swapped_at_seq = Some(seq);
                        r.duration_ms = Some((secs * 1000.0) as u64);
                        r.events_per_s = Some(seq as f64 / secs.max(1e-3));
                    }
                    return;
                }
                Ok(None) => {}
                Err(e) => {
                    conn = None;
                    tracing::warn!(error = format!("{e:#}"), "readmodel.swap_check_failed");
                }
            }
        }
    }

    /// One supervision step: when `new` has caught up with `old`, builds the deferred indexes
    /// if still pending, else swaps. Returns the new schema's checkpoint when it swapped.
    async fn step(
        &self,
        conn: &mut Option<Conn>,
        old: &str,
        new: &str,
        deferred: &mut Option<DeferredIndexes>,
    ) -> anyhow::Result<Option<u64>> {
        if conn.is_none() {
            *conn = Some(Conn::open(&self.postgres_url, &self.upstream.pg).await?);
        }
        let c = &mut conn.as_mut().expect("opened above").client;
        let (old_seq, _) = store::checkpoint(c, old).await?;
        let (new_seq, _) = store::checkpoint(c, new).await?;
        if new_seq < old_seq {
            return Ok(None);
        }
        if let Some(d) = deferred.as_ref() {
            let t = Instant::now();
            d.restore(c).await?;
            tracing::info!(
                schema = d.schema(),
                at_seq = new_seq,
                ms = t.elapsed().as_millis() as u64,
                "readmodel.indexes_built"
            );
            *deferred = None;
            // The projector waited for the build: catch up again before swapping.
            return Ok(None);
        }
        if schema::swap_if_caught_up(c, old, new).await? {
            Ok(Some(store::checkpoint(c, new).await?.0))
        } else {
            Ok(None)
        }
    }
}

/// A PostgreSQL connection with its driver task, aborted on drop.
struct Conn {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
}

impl Conn {
    async fn open(url: &str, pg: &crate::access::PgAccess) -> anyhow::Result<Self> {
        let (client, conn) = pg.connect(url).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self { client, driver })
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Why a rebuild could not start.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// Another rebuild is running.
    #[error("a rebuild is already running")]
    AlreadyRunning,
    /// PostgreSQL failed.
    #[error("database error: {0}")]
    Db(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
