//! `raftledger-readmodel`: runs the read model until Ctrl-C / SIGTERM, or, with `bench`,
//! measures it against self-started nats-server and PostgreSQL.

use clap::Parser;

/// Command line: the read model's flags, or the `bench` subcommand.
#[derive(Parser)]
#[command(
    name = "raftledger-readmodel",
    about = "raftledger read model: JetStream -> PostgreSQL projections + query API",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    #[command(flatten)]
    run: readmodel::config::ReadModelConfig,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Benchmark: sustained events/s, publish -> PostgreSQL latency, rebuild events/s.
    Bench(readmodel::bench::BenchArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Cmd::Bench(args)) = cli.cmd {
        return readmodel::bench::run(args).await;
    }
    let running = readmodel::start(cli.run).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = running.wait() => {}
    }
    tracing::info!("readmodel.shutdown");
    Ok(())
}
