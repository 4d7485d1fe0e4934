//! Data-driven ledger tests: every `testdata/*.txt` script is run against a fresh `LedgerState`.
//!
//! Script format (one command or assertion per line; `#` starts a comment):
//!
//! ```text
//! at <us>                                   stamp later commands with <us> (default 0; the ledger
//!                                           clamps to last+1, so unstamped commands tick by 1us)
//! open <id> <acct> <CUR> [overdraft=N] [meta=TEXT]
//! deposit <id> <acct> <amount>              withdraw <id> <acct> <amount>
//! transfer <id> <from> <to> <amount> [pending] [timeout=S] [memo=TEXT]
//! post <id> <transfer>                      void <id> <transfer>
//! freeze|unfreeze|close <id> <acct>         tick <id>
//! batch <id> atomic|independent             inner commands on the following lines, then `end`
//! ```
//! Each top-level command gets the next log index (1, 2, ...). `<empty>` stands for an empty id.
//! A command may end in `-> EXPECT`; without it the command must be accepted (not replayed).
//! EXPECT is `[replayed] accepted [STATUS] | [replayed] rejected CODE` then optional
//! `seq=F..L` (or `seq=N`), `index=N`, `ts=N`, `events=type,type` (all events of the execute,
//! expiries included; empty for none), `inner=ITEM,...` (ITEM: `[replayed:]ok|CODE`),
//! `failed=I:CODE` (batch_aborted details).
//!
//! Assertions: `balance|pending|version <acct> <n>`, `status <acct> open|frozen|closed`,
//! `missing <acct>`, `tstatus <transfer> <status>`, `seq <n>` (last event seq), `time <us>`,
//! `event <seq> <type> [key=value ...]` (keys: cmd, index, ts, or any field of the event kind;
//! `transfer`, `debit_after`, `credit_after` abbreviate `transfer_id`, `*_balance_after`).
//!
//! After every command the runner also checks: `check_invariants`, dense event seqs continuing
//! the previous command's, event index/timestamp/schema version, and batch inner results carry
//! the batch's index and time. At the end of each script: replaying its commands into a fresh
//! state gives the same hashes, and `restore` of the final state gives the same state hash.

use ledger::{
    AccountId, Command, CommandBody, CommandResult, Currency, Event, LedgerState, Outcome,
    RestoreParts, EVENT_SCHEMA_VERSION,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

type Check = Result<(), String>;

fn fail<T>(msg: impl Into<String>) -> Result<T, String> {
    Err(msg.into())
}

/// Account ids go through serde, so scripts can name invalid and system ids too.
fn acct(s: &str) -> AccountId {
    serde_json::from_value(Value::String(s.to_owned())).expect("account id from a string")
}

fn currency(s: &str) -> Result<Currency, String> {
    Currency::parse(s).map_err(|e| e.to_string())
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn id(s: &str) -> String {
    if s == "<empty>" {
        String::new()
    } else {
        s.to_owned()
    }
}

/// Splits `key=value` options from positional words.
fn split_opts<'a>(words: &[&'a str]) -> (Vec<&'a str>, BTreeMap<&'a str, &'a str>) {
    let mut positional = Vec::new();
    let mut opts = BTreeMap::new();
    for word in words {
        match word.split_once('=') {
            Some((k, v)) => {
                opts.insert(k, v);
            }
            None => positional.push(*word),
        }
    }
    (positional, opts)
}

struct Script<'a> {
    lines: Vec<(usize, &'a str)>,
    pos: usize,
}

struct Runner {
    state: LedgerState,
    index: u64,
    stamp: u64,
    commands: Vec<(u64, Command)>,
    events: BTreeMap<u64, Event>,
}

impl<'a> Script<'a> {
    /// Parses the command on `line` (consuming inner lines for batches); returns it and its
    /// expectation text.
    fn command(&mut self, line: &'a str, stamp: u64) -> Result<(Command, Option<&'a str>), String> {
        let (cmd_text, expect) = match line.split_once("->") {
            Some((c, e)) => (c, Some(e.trim())),
            None => (line, None),
        };
        let words: Vec<&str> = cmd_text.split_whitespace().collect();
        let (pos, opts) = split_opts(&words);
        let arg = |i: usize| {
            pos.get(i)
                .copied()
                .ok_or_else(|| format!("missing argument {i}"))
        };
        let amount = |i: usize| arg(i).and_then(num::<i64>);
        let body = match arg(0)? {
            "open" => CommandBody::OpenAccount {
                account: acct(arg(2)?),
                currency: currency(arg(3)?)?,
                overdraft_limit: opts.get("overdraft").map_or(Ok(0), |v| num(v))?,
                metadata: opts.get("meta").copied().unwrap_or("{}").to_owned(),
            },
            "deposit" => CommandBody::Deposit {
                account: acct(arg(2)?),
                amount: amount(3)?,
            },
            "withdraw" => CommandBody::Withdraw {
                account: acct(arg(2)?),
                amount: amount(3)?,
            },
            "transfer" => CommandBody::Transfer {
                from: acct(arg(2)?),
                to: acct(arg(3)?),
                amount: amount(4)?,
                pending: pos.get(5) == Some(&"pending"),
                timeout_s: opts.get("timeout").map(|v| num(v)).transpose()?,
                memo: opts.get("memo").map(|m| (*m).to_owned()),
            },
            "post" => CommandBody::PostPending {
                transfer_id: arg(2)?.to_owned(),
            },
            "void" => CommandBody::VoidPending {
                transfer_id: arg(2)?.to_owned(),
            },
            "freeze" => CommandBody::Freeze {
                account: acct(arg(2)?),
            },
            "unfreeze" => CommandBody::Unfreeze {
                account: acct(arg(2)?),
            },
            "close" => CommandBody::Close {
                account: acct(arg(2)?),
            },
            "tick" => CommandBody::Tick,
            "batch" => {
                let atomic = match arg(2)? {
                    "atomic" => true,
                    "independent" => false,
                    other => return fail(format!("batch mode {other:?}")),
                };
                let mut commands = Vec::new();
                loop {
                    let Some(&(_, inner)) = self.lines.get(self.pos) else {
                        return fail("batch without `end`");
                    };
                    self.pos += 1;
                    if inner.trim() == "end" {
                        break;
                    }
                    commands.push(self.command(inner, stamp)?.0);
                }
                CommandBody::Batch { atomic, commands }
            }
            other => return fail(format!("unknown command {other:?}")),
        };
        Ok((
            Command {
                id: id(arg(1)?),
                timestamp_us: stamp,
                body,
            },
            expect,
        ))
    }
}

fn outcome_item(result: &CommandResult) -> String {
    let base = match &result.outcome {
        Outcome::Accepted { .. } => "ok".to_owned(),
        Outcome::Rejected(r) => r.code().to_owned(),
    };
    if result.replayed {
        format!("replayed:{base}")
    } else {
        base
    }
}

fn check_expect(result: &CommandResult, events: &[Event], expect: Option<&str>) -> Check {
    let words: Vec<&str> = expect.unwrap_or("accepted").split_whitespace().collect();
    let (pos, opts) = split_opts(&words);
    let mut pos = pos.into_iter().peekable();
    let replayed = pos.next_if_eq(&"replayed").is_some();
    if result.replayed != replayed {
        return fail(format!("expected replayed={replayed}, got {result:?}"));
    }
    match (pos.next(), &result.outcome) {
        (Some("accepted"), Outcome::Accepted { status, .. }) => {
            if let Some(want) = pos.next() {
                if want != status {
                    return fail(format!("expected status {want}, got {status}"));
                }
            }
        }
        (Some("rejected"), Outcome::Rejected(rejection)) => {
            let want = pos.next().ok_or("rejected needs a code")?;
            if want != rejection.code() {
                return fail(format!("expected rejection {want}, got {rejection:?}"));
            }
        }
        (want, _) => return fail(format!("expected {want:?}, got {:?}", result.outcome)),
    }
    for (key, want) in opts {
        let got = match key {
            "seq" => match &result.outcome {
                Outcome::Accepted {
                    first_event_seq: f,
                    last_event_seq: l,
                    ..
                } if f == l && !want.contains("..") => f.to_string(),
                Outcome::Accepted {
                    first_event_seq: f,
                    last_event_seq: l,
                    ..
                } => format!("{f}..{l}"),
                Outcome::Rejected(_) => "none".to_owned(),
            },
            "index" => result.index.to_string(),
            "ts" => result.timestamp_us.to_string(),
            "events" => events
                .iter()
                .map(|e| e.kind.type_name())
                .collect::<Vec<_>>()
                .join(","),
            "inner" => match &result.outcome {
                Outcome::Accepted { inner, .. } => {
                    inner.iter().map(outcome_item).collect::<Vec<_>>().join(",")
                }
                Outcome::Rejected(_) => "none".to_owned(),
            },
            "failed" => match &result.outcome {
                Outcome::Rejected(ledger::Rejection::BatchAborted {
                    failed_index,
                    failed_code,
                }) => {
                    format!("{failed_index}:{failed_code}")
                }
                other => format!("{other:?}"),
            },
            other => return fail(format!("unknown expectation key {other:?}")),
        };
        if got != want {
            return fail(format!("{key}: expected {want}, got {got}"));
        }
    }
    Ok(())
}

fn event_field(event: &Event, key: &str) -> Result<String, String> {
    let key = match key {
        "transfer" => "transfer_id",
        "debit_after" => "debit_balance_after",
        "credit_after" => "credit_balance_after",
        "cmd" => "command_id",
        "ts" => "timestamp_us",
        other => other,
    };
    let top = serde_json::to_value(event).map_err(|e| e.to_string())?;
    let kind = top["kind"]
        .as_object()
        .and_then(|o| o.values().next())
        .cloned()
        .unwrap_or(Value::Null);
    let value = match (&top[key], &kind[key]) {
        (Value::Null, v) | (v, _) => v.clone(),
    };
    Ok(match value {
        Value::String(s) => s,
        Value::Null => return fail(format!("event has no field {key}")),
        other => other.to_string(),
    })
}

impl Runner {
    fn execute(&mut self, cmd: Command, expect: Option<&str>) -> Check {
        self.index += 1;
        let seq_before = self.state.last_event_seq();
        let applied = self.state.execute(self.index, &cmd);
        self.commands.push((self.index, cmd.clone()));
        self.state
            .check_invariants()
            .map_err(|v| format!("after command: {v}"))?;
        for (offset, event) in applied.events.iter().enumerate() {
            let ok = event.seq == seq_before + 1 + offset as u64
                && event.index == self.index
                && event.timestamp_us == self.state.last_timestamp_us()
                && event.schema_version == EVENT_SCHEMA_VERSION;
            if !ok {
                return fail(format!(
                    "bad event envelope (seq_before={seq_before}): {event:?}"
                ));
            }
            self.events.insert(event.seq, event.clone());
        }
        if self.state.last_event_seq() != seq_before + applied.events.len() as u64 {
            return fail("last_event_seq does not match the events returned");
        }
        if let Outcome::Accepted { inner, .. } = &applied.result.outcome {
            let fresh = inner.iter().filter(|r| !r.replayed);
            if !applied.result.replayed
                && fresh.clone().any(|r| {
                    r.index != self.index || r.timestamp_us != self.state.last_timestamp_us()
                })
            {
                return fail("inner result with another index or timestamp than its batch");
            }
        }
        check_expect(&applied.result, &applied.events, expect)
    }

    fn assert(&self, words: &[&str]) -> Check {
        let arg = |i: usize| {
            words
                .get(i)
                .copied()
                .ok_or_else(|| format!("missing argument {i}"))
        };
        let account = |i: usize| {
            let name = arg(i)?;
            self.state
                .account(&acct(name))
                .ok_or_else(|| format!("no account {name}"))
        };
        let (got, want) = match words[0] {
            "balance" => (account(1)?.balance.to_string(), arg(2)?),
            "pending" => (account(1)?.pending_debits.to_string(), arg(2)?),
            "version" => (account(1)?.version.to_string(), arg(2)?),
            "status" => (account(1)?.status.as_str().to_owned(), arg(2)?),
            "missing" => (
                self.state.account(&acct(arg(1)?)).is_some().to_string(),
                "false",
            ),
            "tstatus" => {
                let t = self.state.transfer(arg(1)?).ok_or("no such transfer")?;
                (t.status.as_str().to_owned(), arg(2)?)
            }
            "seq" => (self.state.last_event_seq().to_string(), arg(1)?),
            "time" => (self.state.last_timestamp_us().to_string(), arg(1)?),
            "event" => {
                let seq: u64 = num(arg(1)?)?;
                let event = self
                    .events
                    .get(&seq)
                    .ok_or_else(|| format!("no event {seq}"))?;
                if event.kind.type_name() != arg(2)? {
                    return fail(format!("event {seq} is {:?}", event.kind));
                }
                for (key, want) in split_opts(&words[3..]).1 {
                    let got = event_field(event, key)?;
                    if got != want {
                        return fail(format!("event {seq} {key}: expected {want}, got {got}"));
                    }
                }
                return Ok(());
            }
            other => return fail(format!("unknown assertion {other:?}")),
        };
        if got != want {
            return fail(format!("{}: expected {want}, got {got}", words.join(" ")));
        }
        Ok(())
    }

    /// Replay and restore must reproduce the final state.
    fn finish(&self) -> Check {
        let mut replay = LedgerState::new();
        for (index, cmd) in &self.commands {
            replay.execute(*index, cmd);
        }
        if replay.state_hash() != self.state.state_hash()
            || replay.applied_hash() != self.state.applied_hash()
        {
            return fail("replaying the script gives different hashes");
        }
        let parts = RestoreParts {
            accounts: self.state.accounts().cloned().collect(),
            transfers: self.state.transfers().map(|t| t.into_owned()).collect(),
            idempotency: self
                .state
                .idempotency_entries()
                .map(|(k, e)| (k.into_owned(), e.into_owned()))
                .collect(),
            last_event_seq: self.state.last_event_seq(),
            last_timestamp_us: self.state.last_timestamp_us(),
            applied_hash: self.state.applied_hash(),
        };
        let restored = LedgerState::restore(parts);
        if restored.state_hash() != self.state.state_hash() {
            return fail("restore gives a different state hash");
        }
        restored.check_invariants().map_err(|v| v.to_string())
    }
}

/// Runs one script; returns (commands executed, first failure as `file:line: message`).
fn run_script(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.split('#').next().unwrap_or("")))
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    let mut script = Script { lines, pos: 0 };
    let mut runner = Runner {
        state: LedgerState::new(),
        index: 0,
        stamp: 0,
        commands: Vec::new(),
        events: BTreeMap::new(),
    };
    while let Some(&(line_no, line)) = script.lines.get(script.pos) {
        script.pos += 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        let step = match words[0] {
            "at" => num(words.get(1).copied().unwrap_or("")).map(|us| runner.stamp = us),
            "balance" | "pending" | "version" | "status" | "missing" | "tstatus" | "seq"
            | "time" | "event" => runner.assert(&words),
            _ => script
                .command(line, runner.stamp)
                .and_then(|(cmd, expect)| runner.execute(cmd, expect)),
        };
        step.map_err(|e| format!("{name}:{line_no}: {e}\n    {}", line.trim()))?;
    }
    runner.finish().map_err(|e| format!("{name}: {e}"))?;
    Ok(runner.commands.len())
}

#[test]
fn scripts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= 5,
        "expected the testdata scripts, found {paths:?}"
    );
    let mut failures = Vec::new();
    let mut commands = 0;
    for path in &paths {
        match run_script(path) {
            Ok(n) => commands += n,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "script failures:\n{}",
        failures.join("\n")
    );
    println!("{} scripts, {commands} commands", paths.len());
}
