//! raftledger node: replicates ledger commands through openraft and serves the client API.
//!
//! Modules:
//! - `raft_types` — the one place openraft types are named (type config, aliases).
//! - `wal`        — project-owned segmented write-ahead log (CRC-framed, group-commit fdatasync).
//! - `clock`      — the wall clock a leader stamps commands with: the system's, or a simulation's.
//! - `execution`  — where blocking and background work runs: threads, or inline for a simulation.
//! - `log_store`  — openraft `RaftLogStorage` over the WAL (log entries, vote, committed).
//! - `sm`         — openraft `RaftStateMachine` over sled: ledger state, indexes, snapshots, reads.
//! - `network`    — Raft RPC (client + server) on its own listener, HMAC-authenticated both ways.
//! - `auth`       — exposure rule, peer MACs, member URL checks, API keys, the client API gate.
//! - `failover`   — fast failover: campaign once a dead leader's lease ends.
//! - `proposer`   — write batching, leader stamping, one-hop forwarding to the leader.
//! - `api`        — the client HTTP API.
//! - `metrics`    — Prometheus recorder, HTTP latency and Raft gauges.
//! - `relay`      — leader-only relay of committed events to the JetStream stream `LEDGER`.
//! - `history_bound` — moves finished history to disk once more than the bound is in memory.
//! - `spare_cpu`  — CPU the host left over recently (`/proc/stat`), for background priorities.
//! - `config`     — node configuration (flags + env).
//! - `app`        — assembles and runs a node; used by the binary and the tests.
//! - `local_cluster` — launches real node processes on loopback (demo, bench, tests).
//! - `client`     — small typed HTTP client for the API.
//! - `cli`        — `raftledger demo` and `raftledger bench`.
//! - `tls`        — `--tls-*` flags, listener acceptors (API TLS, Raft mutual TLS), outbound
//!   client TLS.
//! - `sabotage`   — test-only deliberate defects (feature `sabotage`) for the chaos harness.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod execution;
pub mod failover;
pub mod history_bound;
pub mod local_cluster;
pub mod log_store;
pub mod metrics;
pub mod network;
pub mod proposer;
pub mod raft_types;
pub mod relay;
pub mod sabotage;
pub mod sm;
pub mod spare_cpu;
pub mod tls;
pub mod wal;
