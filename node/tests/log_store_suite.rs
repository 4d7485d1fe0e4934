//! openraft's storage conformance suite (`openraft::testing::log::Suite::test_all`) against
//! `LogStore` with the real state machine, each case in a fresh temporary directory: once on the
//! real file system, once on `SimFs` (small segments, so rotation is exercised too).

use node::log_store::LogStore;
use node::raft_types::TypeConfig;
use node::sm::StateMachineStore;
use node::wal::{SimFs, WalOptions, SEGMENT_BYTES_MIN};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::StorageError;
use std::io;
use std::sync::Arc;
use tempfile::TempDir;

/// Which storage the log store runs on.
#[derive(Clone, Copy)]
enum Fs {
    Real,
    Sim,
}

struct Builder(Fs);

fn storage_error(e: io::Error) -> StorageError<TypeConfig> {
    StorageError::write(TypeConfig::err_from_error(&e))
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().map_err(storage_error)?;
        let log_dir = dir.path().join("log");
        let log = match self.0 {
            Fs::Real => LogStore::open(&log_dir),
            Fs::Sim => {
                let options = WalOptions {
                    segment_bytes: SEGMENT_BYTES_MIN,
                    entry_cache_max: 4,
                    ..WalOptions::default()
                };
                LogStore::open_with_options(Arc::new(SimFs::new()), &log_dir, options)
            }
        }
        .map_err(storage_error)?;
        // The suite applies synthetic entries with gaps (e.g. 3 then 5), which a real store
        // refuses.
        let sm = StateMachineStore::open_accepting_apply_gaps_for_tests(&dir.path().join("sm"))
            .map_err(storage_error)?;
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_on_real_files_passes_the_openraft_suite() {
    Suite::test_all(Builder(Fs::Real)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_store_on_simfs_passes_the_openraft_suite() {
    Suite::test_all(Builder(Fs::Sim)).await.unwrap();
}
