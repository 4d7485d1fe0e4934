//! `raftledger certs`: makes a local CA and the node and operator certificates a TLS cluster
//! needs (see `netserve::generate` for the files and their properties).

use std::path::PathBuf;

/// Flags of `raftledger certs`.
#[derive(Debug, Clone, clap::Args)]
pub struct CertsArgs {
    /// Output directory (created when missing).
    #[arg(long)]
    pub out: PathBuf,
    /// A node id to issue `node<N>.pem`/`node<N>-key.pem` for (repeatable).
    #[arg(long = "node", required = true)]
    pub nodes: Vec<u64>,
    /// Extra DNS name or IP address on every node certificate (repeatable), besides
    /// `localhost`, `127.0.0.1`, `::1` and `node<N>`.
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Replace an existing CA in `--out` (every certificate it signed stops verifying).
    #[arg(long)]
    pub force: bool,
}

/// Generates the files and lists them.
pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let files = netserve::generate::generate(&netserve::generate::CertsRequest {
        out: args.out,
        nodes: args.nodes,
        hosts: args.hosts,
        force: args.force,
    })?;
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}
