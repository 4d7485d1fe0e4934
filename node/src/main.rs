//! `raftledger` binary: run a node, a local demo cluster, the benchmark, make an API key or
//! certificates.

use clap::{Parser, Subcommand};
use node::cli;
use node::config::NodeConfig;

/// mimalloc instead of the system allocator: the apply path allocates and frees many small
/// objects per transfer, and glibc's malloc spent about 30% of a loaded node's CPU on it
/// (batch API +20–30% with mimalloc, BENCHMARKS.md). Built without transparent huge pages
/// (`no_thp`): faulting in and zeroing 2 MiB pages for small allocations cost more than it
/// saved. The `system-alloc` feature leaves the system allocator in place for heap profiling.
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Index of `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (the sys crate names only
/// the options of older versions); the test below checks it against the option's default.
#[cfg(not(feature = "system-alloc"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps memory a node freed before returning it to the OS, in ms (its
/// default is 1000). `MIMALLOC_PURGE_DELAY` in the environment wins.
#[cfg(not(feature = "system-alloc"))]
const PURGE_DELAY_MS: std::ffi::c_long = 100;

/// How often a node asks mimalloc to return the memory whose purge delay has passed, in ms.
/// mimalloc purges only when some thread next calls into it after the delay, so a node that
/// went quiet after moving history or merging index runs kept what it had freed. At 10M
/// postings, largest node after a snapshot (BENCHMARKS.md): 1 s delay and no purge thread,
/// 403 MB and 22 B per posting of slope; 10 ms delay, 328–357 MB but the batch phase ~10%
/// slower (more `madvise` calls under load); this thread alone, 383 MB and 16.8 B; with a
/// 100 ms delay, 346 MB and 15.5 B, the batch phase unchanged within its noise.
#[cfg(not(feature = "system-alloc"))]
const PURGE_EVERY_MS: u64 = 1000;

#[cfg(not(feature = "system-alloc"))]
#[allow(unsafe_code)]
fn start_allocator_purger() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it takes no
        // pointers and may be called at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
    let purger = std::thread::Builder::new()
        .name("mem-purge".into())
        .spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_millis(PURGE_EVERY_MS));
            // SAFETY: `mi_collect` takes no pointers and frees only memory no longer in use;
            // mimalloc allows it from any thread at any time.
            unsafe { libmimalloc_sys::mi_collect(false) }
        });
    if let Err(e) = purger {
        tracing::warn!(error = %e, "could not start the allocator's purge thread");
    }
}

#[cfg(feature = "system-alloc")]
fn start_allocator_purger() {}

/// raftledger: a Raft-replicated double-entry ledger.
#[derive(Parser)]
#[command(name = "raftledger", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one node.
    Node(NodeConfig),
    /// Start a local cluster of real node processes and keep it running until Ctrl-C.
    Demo(cli::demo::DemoArgs),
    /// Measure throughput, latency, failover, time travel, RSS and disk.
    Bench(cli::bench::BenchArgs),
    /// Make a client API key: prints the key once and the line for `--api-keys-file`.
    Apikey(cli::apikey::ApikeyArgs),
    /// Make a local CA plus node and operator certificates for `--tls-*`.
    Certs(cli::certs::CertsArgs),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn,sled=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Node(cfg) => {
            init_tracing();
            abort_on_panic();
            start_allocator_purger();
            node::sabotage::init()?;
            rt.block_on(async move {
                let node = node::app::start(cfg).await?;
                shutdown_signal().await;
                tracing::info!("node.stopping");
                node.shutdown().await;
                Ok(())
            })
        }
        Cmd::Demo(args) => rt.block_on(cli::demo::run(args)),
        Cmd::Bench(args) => rt.block_on(cli::bench::run(args)),
        Cmd::Apikey(args) => cli::apikey::run(&args),
        Cmd::Certs(args) => cli::certs::run(args),
    }
}

/// A panic anywhere in a node (e.g. inside the Raft core task) leaves a process that looks
/// alive but cannot make progress. Exit instead, so a supervisor restarts it; the WAL makes
/// that safe.
fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        tracing::error!(%info, "node.panic: aborting");
        std::process::abort();
    }));
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

#[cfg(all(test, not(feature = "system-alloc")))]
mod tests {
    use super::*;

    /// The hard-coded index names the purge delay: before a node sets it, the option reads as
    /// mimalloc v3's purge-delay default (or the environment's value); after, as ours.
    #[test]
    #[allow(unsafe_code)]
    fn purge_delay_index_names_the_purge_delay() {
        let from_env = std::env::var("MIMALLOC_PURGE_DELAY").ok();
        // SAFETY: reads an integer from mimalloc's option table.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let expected = from_env
            .as_deref()
            .map_or(1000, |v| v.parse().unwrap_or(-2));
        assert_eq!(before, expected);
        start_allocator_purger();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        let ours = if from_env.is_some() {
            before
        } else {
            PURGE_DELAY_MS
        };
        assert_eq!(after, ours);
    }
}
