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

#[cfg(not(feature = "system-alloc"))]
/// Index of `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (the sys crate names only
/// the options of older versions); the test below checks it against the option's default.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long mimalloc keeps freed memory before returning it to the OS, in ms (its v3 default
/// is 1000). A purge runs only when some thread next calls into the allocator after the delay,
/// so with the default a node that had just moved history or merged index runs and then went
/// quiet kept that memory: RSS 397 MB at 10M postings and 16–18 B per posting of slope; with
/// 10 ms, 343 MB and 15.7 B, time travel unchanged; with 0 (purge on every free), 330 MB but
/// time-travel p99 up to 6 ms (BENCHMARKS.md). `MIMALLOC_PURGE_DELAY` in the environment wins.
#[cfg(not(feature = "system-alloc"))]
const PURGE_DELAY_MS: std::ffi::c_long = 10;

#[cfg(not(feature = "system-alloc"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` stores an integer in mimalloc's option table; it takes no
    // pointers and may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
}

#[cfg(feature = "system-alloc")]
fn tune_allocator() {}

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
    tune_allocator();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Node(cfg) => {
            init_tracing();
            abort_on_panic();
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

    /// The hard-coded index names the purge delay: before it is set, the option reads as
    /// mimalloc v3's purge-delay default (or the environment's value), and after, as ours.
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
        tune_allocator();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(
            after,
            if from_env.is_some() {
                before
            } else {
                PURGE_DELAY_MS
            }
        );
    }
}
