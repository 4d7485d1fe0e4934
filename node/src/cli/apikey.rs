//! `raftledger apikey --name <n> --scope <s>`: makes a client API key. Prints the key (shown
//! once; only its hash is stored) and the line to append to the `--api-keys-file`.

use crate::auth::api_keys::{generate, Scope};

/// Arguments of `raftledger apikey`.
#[derive(Debug, Clone, clap::Args)]
pub struct ApikeyArgs {
    /// Key name (logged on refusals; never the key): 1-64 of A-Z a-z 0-9 - _ . @
    #[arg(long)]
    pub name: String,
    /// `read` (GET), `write` (GET and POST under /v1) or `admin` (also /cluster/* mutations).
    #[arg(long, value_parser = ["read", "write", "admin"])]
    pub scope: String,
}

/// Prints a fresh key and its keys-file line.
pub fn run(args: &ApikeyArgs) -> anyhow::Result<()> {
    let scope = Scope::parse(&args.scope)
        .ok_or_else(|| anyhow::anyhow!("--scope must be read, write or admin"))?;
    let (key, line) = generate(&args.name, scope).map_err(anyhow::Error::msg)?;
    println!("key:  {key}");
    println!("line: {line}");
    eprintln!(
        "Give the key to the client (Authorization: Bearer <key>); it is not shown again. \
         Append the line to every node's --api-keys-file and restart the nodes."
    );
    Ok(())
}
