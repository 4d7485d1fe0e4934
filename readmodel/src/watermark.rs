//! The watermark: the active schema's checkpoint as last announced by the projector's
//! `NOTIFY readmodel_progress` (LISTEN on a dedicated connection, re-seeded from the checkpoint
//! table on every (re)connect and on a swap), and raised directly by this process's projector
//! right after each of its commits (`crate::projector::Progress`). `min_seq` reads wait on it.

use crate::store::{self, PROGRESS_CHANNEL};
use futures::StreamExt;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Back-off between LISTEN reconnects.
const RECONNECT_BACKOFF_MS: u64 = 500;
/// Notifications buffered between the connection driver and the watermark loop; the loop only
/// keeps the maximum, so a small bound suffices (the driver waits when it is full).
const NOTIFICATIONS_QUEUED_MAX: usize = 1024;

/// The schema queries read, shared by the API, the watermark and the rebuild manager.
#[derive(Clone, Default)]
pub struct ActiveSchema(Arc<RwLock<String>>);

impl ActiveSchema {
    /// Current name.
    pub fn get(&self) -> String {
        self.0.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces it.
    pub fn set(&self, s: &str) {
        if let Ok(mut g) = self.0.write() {
            *g = s.to_owned();
        }
    }
}

/// Raises the watermark to `seq` (never lowers it).
pub fn raise(tx: &watch::Sender<u64>, seq: u64) {
    tx.send_if_modified(|w| {
        let up = seq > *w;
        if up {
            *w = seq;
        }
        up
    });
}

/// Starts the LISTEN loop; it runs for the life of the process.
pub fn spawn(
    postgres_url: String,
    pg: crate::access::PgAccess,
    active: ActiveSchema,
    tx: watch::Sender<u64>,
) {
    tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&postgres_url, &pg, &active, &tx).await {
                tracing::warn!(error = %e, "readmodel.listen_failed");
            }
            tokio::time::sleep(Duration::from_millis(RECONNECT_BACKOFF_MS)).await;
        }
    });
}

async fn listen(
    url: &str,
    pg: &crate::access::PgAccess,
    active: &ActiveSchema,
    tx: &watch::Sender<u64>,
) -> anyhow::Result<()> {
    let (client, mut conn) = pg.connect(url).await?;
    let (ntx, mut nrx) = mpsc::channel::<String>(NOTIFICATIONS_QUEUED_MAX);
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                    if ntx.send(n.payload().to_owned()).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "readmodel.listen_connection_lost");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {PROGRESS_CHANNEL}"))
        .await?;
    let (seq, _) = store::checkpoint(&client, &active.get()).await?;
    raise(tx, seq);
    while let Some(payload) = nrx.recv().await {
        if let Some((schema, seq)) = payload.rsplit_once(':') {
            if schema == active.get() {
                if let Ok(seq) = seq.parse() {
                    raise(tx, seq);
                }
            }
        }
    }
    driver.abort();
    anyhow::bail!("listen connection closed")
}
