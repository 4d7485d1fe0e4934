//! `raftledger` binary: run a node, a local demo cluster, the benchmark, make an API key or
//! certificates.

use clap::{Parser, Subcommand};
use node::cli;
use node::config::NodeConfig;

/// mimalloc instead of the system allocator: the apply path allocates and frees many small
/// objects per transfer, and glibc's malloc spent about 30% of a loaded node's CPU on it
/// (batch API +20–30% with mimalloc, BENCHMARKS.md). Built without transparent huge pages
/// (`no_thp`): faulting in and zeroing 2 MiB pages for small allocations cost more than it
/// saved.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
