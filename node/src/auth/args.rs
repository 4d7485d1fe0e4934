//! The authentication flags of a node, flattened into `NodeConfig` (the admin token and the
//! cluster secret predate them and stay there).

use std::path::PathBuf;

/// Authentication and exposure flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AuthArgs {
    /// Allow binding `--api`/`--raft` to a non-loopback address without an admin token and a
    /// strong cluster secret. Logs a warning on every start saying what is open.
    #[arg(long, env = "RAFTLEDGER_INSECURE")]
    pub insecure: bool,
    /// Allow-list of member URLs (learners, `--join`, `--peers`, `/cluster/init`): `host`,
    /// `host:port` or `*.domain` patterns, comma separated. Unset: any http(s) host.
    #[arg(long, env = "RAFTLEDGER_PEER_ALLOW", value_delimiter = ',')]
    pub peer_allow: Vec<String>,
    /// File of client API keys, one `name scope sha256_hex` per line (scope `read`, `write` or
    /// `admin`; `#` comments). When set, every `/v1/*` route needs `Authorization: Bearer
    /// <key>`. Make entries with `raftledger apikey`.
    #[arg(long, env = "RAFTLEDGER_API_KEYS_FILE")]
    pub api_keys_file: Option<PathBuf>,
    /// Accepted `Host` header values (names, optionally with `:port`), comma separated; other
    /// hosts get 400 `bad_host` (DNS-rebinding defence). Unset: any host.
    #[arg(long, env = "RAFTLEDGER_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
}
