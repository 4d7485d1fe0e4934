//! raftledger chaos harness (real processes, not a simulation): real `raftledger node` processes,
//! every node-to-node Raft link through a harness-owned proxy, a seeded fault schedule, a
//! Jepsen-style bank workload, checkers for invariants L1–L8 and a per-run report; optionally
//! (`--readmodel`) the CQRS read side too.
//!
//! Modules:
//! - `cli`      — command-line arguments of `raftledger-chaos run`.
//! - `proxy`    — one userspace TCP proxy per directed link: cut, blackhole, delay, drop.
//! - `ports`    — loopback ports, each handed out once per harness process.
//! - `procs`    — node processes owned by the harness: spawn, SIGKILL, SIGSTOP/SIGCONT, wipe.
//! - `cluster`  — the cluster under test (owned or `--target`): status, leader, admin calls.
//! - `launch`   — binaries and start-up of an owned cluster (and its read side).
//! - `compaction` — `--compaction default|aggressive`: the snapshot and WAL flags of launched nodes.
//! - `wal_watch` — samples each owned node's WAL directory: segment deletions as evidence.
//! - `readside` — `--readmodel`: nats-server, PostgreSQL, `raftledger-readmodel`, their
//!   faults, the read-your-writes/lag probe and the post-heal observation.
//! - `schedule` — the seed-derived fault schedule (pure).
//! - `nemesis`  — applies and heals each scheduled fault, recording evidence that it fired.
//! - `monitor`  — samples every node's role, term and leader while the run goes on.
//! - `history`  — Jepsen-style operation records (invoke / ok / fail / info).
//! - `workload` — the bank workload: concurrent logical clients, retries with the same id.
//! - `log`      — fetches every node's committed events and replays balances from them.
//! - `check`    — the checkers and the three-valued verdict.
//! - `report`   — run directory: run.json, history.jsonl, nemesis.jsonl, results.json, report.html.
//! - `run`      — one drill from start to verdict.

pub mod check;
pub mod cli;
pub mod cluster;
pub mod compaction;
pub mod history;
pub mod launch;
pub mod log;
pub mod monitor;
pub mod nemesis;
pub mod ports;
pub mod procs;
pub mod proxy;
pub mod readside;
pub mod report;
pub mod run;
pub mod schedule;
pub mod wal_watch;
pub mod workload;
