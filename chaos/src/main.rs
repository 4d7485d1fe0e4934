//! `raftledger-chaos`: runs a fault schedule against a local or existing raftledger cluster and
//! prints a verdict plus a report directory. Exit code 0 only for `valid`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = chaos::cli::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("raftledger-chaos: cannot start runtime: {e}");
            return std::process::ExitCode::from(3);
        }
    };
    match cli.command {
        chaos::cli::Command::Run(args) => match rt.block_on(chaos::run::run(args)) {
            Ok(verdict) => std::process::ExitCode::from(verdict.exit_code()),
            Err(e) => {
                // Harness failures are kept apart from system-under-test violations.
                eprintln!("raftledger-chaos: harness error: {e:#}");
                std::process::ExitCode::from(3)
            }
        },
    }
}
