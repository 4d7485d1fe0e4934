//! The projection logic with no I/O: folds a batch of stream messages into the rows to write
//! (balances, history, daily totals, parked events, quarantines). Each event applies
//! atomically: either all its effects or it is parked. Money is checked, never trusted: a
//! posting whose `balance_after` disagrees with the projected balance is poison.

use crate::event::{accounts_of_raw, decode, Kind, WireEvent};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One account's projected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// Account id.
    pub account: String,
    /// ISO 4217 code.
    pub currency: String,
    /// Posted balance, minor units.
    pub balance: i64,
    /// Reserved by pending transfers.
    pub pending_debits: i64,
    /// Overdraft limit.
    pub overdraft_limit: i64,
    /// Postings applied.
    pub version: i64,
    /// open | frozen | closed.
    pub status: String,
    /// Seq of its account_opened event.
    pub opened_seq: i64,
    /// Timestamp of its account_opened event.
    pub opened_at_us: i64,
    /// Seq of the last event that changed it.
    pub updated_seq: i64,
    /// Timestamp of that event.
    pub updated_at_us: i64,
}

/// One posting (account side of a transfer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Account.
    pub account: String,
    /// Event seq.
    pub seq: i64,
    /// Leader timestamp.
    pub ts_us: i64,
    /// Transfer id.
    pub transfer_id: String,
    /// The other account.
    pub counterparty: String,
    /// Signed amount (negative on the debit side).
    pub amount: i64,
    /// Balance after the posting.
    pub balance_after: i64,
}

/// Increments of one (day, currency) row of `daily_totals`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyDelta {
    /// Postings.
    pub transfer_count: i64,
    /// Sum of posted amounts.
    pub volume_minor: i128,
    /// Postings debiting the system account.
    pub deposit_count: i64,
    /// Their sum.
    pub deposits_minor: i128,
    /// Postings crediting the system account.
    pub withdrawal_count: i64,
    /// Their sum.
    pub withdrawals_minor: i128,
}

/// A poison event, parked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// Stream sequence (== event seq).
    pub seq: i64,
    /// NATS subject.
    pub subject: String,
    /// Raw payload.
    pub payload: String,
    /// Why it was parked.
    pub reason: String,
    /// Accounts it touches (now quarantined).
    pub accounts: Vec<String>,
}

/// One raw stream message.
#[derive(Debug, Clone)]
pub struct RawEvent {
    /// Stream sequence.
    pub stream_seq: u64,
    /// Subject.
    pub subject: String,
    /// JSON payload.
    pub payload: bytes::Bytes,
}

/// A message with its payload decoded once, and the accounts it touches (best-effort for
/// poison).
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The message.
    pub raw: RawEvent,
    /// The event, or why it is poison.
    pub event: Result<WireEvent, String>,
    /// Accounts it touches.
    pub accounts: Vec<String>,
}

impl Decoded {
    /// Decodes `raw`.
    pub fn new(raw: RawEvent) -> Self {
        let event = decode(&raw.payload);
        let accounts = match &event {
            Ok(e) => e.kind.accounts().into_iter().map(str::to_owned).collect(),
            Err(_) => accounts_of_raw(&raw.payload),
        };
        Self {
            raw,
            event,
            accounts,
        }
    }
}

/// Everything one batch writes, applied in one transaction with the checkpoint.
#[derive(Debug, Default)]
pub struct BatchWrite {
    /// Changed accounts, final state.
    pub accounts: BTreeMap<String, AccountRow>,
    /// New postings.
    pub history: Vec<HistoryRow>,
    /// Daily total increments keyed by (day `YYYY-MM-DD`, currency).
    pub daily: BTreeMap<(String, String), DailyDelta>,
    /// Parked events.
    pub parked: Vec<Parked>,
    /// Newly quarantined accounts: (account, first parked seq, reason).
    pub quarantined: Vec<(String, i64, String)>,
    /// Last seq in the batch.
    pub last_seq: u64,
    /// Its timestamp (0 if it did not decode).
    pub last_ts_us: i64,
}

/// Folds events into a [`BatchWrite`] given the current rows of the accounts they touch.
pub struct Fold {
    known: HashMap<String, AccountRow>,
    quarantined: HashSet<String>,
    /// Accounts whose rows changed: copied into `write.accounts` by [`Fold::finish`].
    changed: HashSet<String>,
    /// The last UTC day computed: (days since the epoch, `YYYY-MM-DD`).
    day: (i64, String),
    write: BatchWrite,
}

impl Fold {
    /// Starts from the loaded rows and quarantine set.
    pub fn new(known: HashMap<String, AccountRow>, quarantined: HashSet<String>) -> Self {
        Self {
            known,
            quarantined,
            changed: HashSet::new(),
            day: (i64::MIN, String::new()),
            write: BatchWrite::default(),
        }
    }

    /// The accumulated writes, with the final rows of the changed accounts.
    pub fn finish(mut self) -> BatchWrite {
        for account in self.changed {
            if let Some(row) = self.known.remove(&account) {
                self.write.accounts.insert(account, row);
            }
        }
        self.write
    }

    /// Accounts (decodable or best-effort) a batch touches, to load before folding.
    pub fn touched<'a>(batch: impl IntoIterator<Item = &'a Decoded>) -> Vec<String> {
        let mut set = HashSet::new();
        for d in batch {
            set.extend(d.accounts.iter().cloned());
        }
        set.into_iter().collect()
    }

    /// Applies one message: its effects, or parks it and quarantines its accounts.
    pub fn apply(&mut self, raw: &RawEvent) {
        self.apply_decoded(&Decoded::new(raw.clone()));
    }

    /// [`Fold::apply`] for a message decoded beforehand (by the projector's reader task).
    pub fn apply_decoded(&mut self, d: &Decoded) {
        let raw = &d.raw;
        self.write.last_seq = raw.stream_seq;
        let result = match &d.event {
            Ok(e) => {
                self.write.last_ts_us = e.ts_us;
                if e.seq != raw.stream_seq {
                    Err(format!(
                        "event seq {} at stream seq {}",
                        e.seq, raw.stream_seq
                    ))
                } else if let Some(q) = d.accounts.iter().find(|a| self.quarantined.contains(*a)) {
                    Err(format!("account {q} is quarantined"))
                } else {
                    self.apply_event(e)
                }
            }
            Err(why) => Err(why.clone()),
        };
        if let Err(reason) = result {
            self.park(raw, d.accounts.clone(), reason);
        }
    }

    fn park(&mut self, raw: &RawEvent, accounts: Vec<String>, reason: String) {
        let seq = raw.stream_seq as i64;
        tracing::warn!(seq, reason = %reason, accounts = ?accounts, "readmodel.event_parked");
        // System accounts are not quarantined: see `posted`.
        for a in accounts.iter().filter(|a| !is_system(a)) {
            if self.quarantined.insert(a.clone()) {
                self.write
                    .quarantined
                    .push((a.clone(), seq, reason.clone()));
            }
        }
        self.write.parked.push(Parked {
            seq,
            subject: raw.subject.clone(),
            payload: String::from_utf8_lossy(&raw.payload).into_owned(),
            reason,
            accounts,
        });
    }

    fn row(&self, id: &str) -> Result<AccountRow, String> {
        self.known
            .get(id)
            .cloned()
            .ok_or_else(|| format!("account {id} not open"))
    }

    fn store(&mut self, row: AccountRow) {
        if !self.changed.contains(&row.account) {
            self.changed.insert(row.account.clone());
        }
        match self.known.get_mut(&row.account) {
            Some(r) => *r = row,
            None => {
                self.known.insert(row.account.clone(), row);
            }
        }
    }

    /// [`day_of`], recomputed only when the day changes.
    fn day_of(&mut self, ts_us: i64) -> String {
        let day = ts_us.div_euclid(US_PER_DAY);
        if self.day.0 != day {
            self.day = (day, day_of(ts_us));
        }
        self.day.1.clone()
    }

    fn apply_event(&mut self, e: &WireEvent) -> Result<(), String> {
        let (seq, ts) = (e.seq as i64, e.ts_us);
        match &e.kind {
            Kind::Opened {
                account,
                currency,
                overdraft_limit,
            } => {
                if self.known.contains_key(account) {
                    return Err(format!("account {account} opened twice"));
                }
                self.store(AccountRow {
                    account: account.clone(),
                    currency: currency.clone(),
                    balance: 0,
                    pending_debits: 0,
                    overdraft_limit: *overdraft_limit,
                    version: 0,
                    status: "open".into(),
                    opened_seq: seq,
                    opened_at_us: ts,
                    updated_seq: seq,
                    updated_at_us: ts,
                });
            }
            Kind::Posted {
                transfer_id,
                debit,
                credit,
                amount,
                debit_balance_after,
                credit_balance_after,
                from_pending,
            } => {
                let (mut d, mut c) = (self.row(debit)?, self.row(credit)?);
                check_pair(&d, &c, *amount)?;
                d.balance = posted(&d, d.balance.checked_sub(*amount), *debit_balance_after)?;
                c.balance = posted(&c, c.balance.checked_add(*amount), *credit_balance_after)?;
                if *from_pending {
                    d.pending_debits = release(d.pending_debits, *amount)?;
                }
                for (row, other, signed) in [(&mut d, credit, -*amount), (&mut c, debit, *amount)] {
                    row.version += 1;
                    (row.updated_seq, row.updated_at_us) = (seq, ts);
                    self.write.history.push(HistoryRow {
                        account: row.account.clone(),
                        seq,
                        ts_us: ts,
                        transfer_id: transfer_id.clone(),
                        counterparty: other.clone(),
                        amount: signed,
                        balance_after: row.balance,
                    });
                }
                self.add_daily(ts, &d, &c, *amount);
                self.store(d);
                self.store(c);
            }
            Kind::Pending {
                debit,
                credit,
                amount,
            } => {
                let (mut d, c) = (self.row(debit)?, self.row(credit)?);
                check_pair(&d, &c, *amount)?;
                d.pending_debits = d.pending_debits.checked_add(*amount).ok_or("overflow")?;
                (d.updated_seq, d.updated_at_us) = (seq, ts);
                self.store(d);
            }
            Kind::Released {
                debit,
                credit,
                amount,
            } => {
                let (mut d, c) = (self.row(debit)?, self.row(credit)?);
                check_pair(&d, &c, *amount)?;
                d.pending_debits = release(d.pending_debits, *amount)?;
                (d.updated_seq, d.updated_at_us) = (seq, ts);
                self.store(d);
            }
            Kind::Status { account, status } => {
                let mut a = self.row(account)?;
                a.status = (*status).into();
                (a.updated_seq, a.updated_at_us) = (seq, ts);
                self.store(a);
            }
        }
        Ok(())
    }

    fn add_daily(&mut self, ts_us: i64, d: &AccountRow, c: &AccountRow, amount: i64) {
        let key = (self.day_of(ts_us), d.currency.clone());
        let t = self.write.daily.entry(key).or_default();
        let amount = i128::from(amount);
        t.transfer_count += 1;
        t.volume_minor += amount;
        if is_system(&d.account) {
            t.deposit_count += 1;
            t.deposits_minor += amount;
        } else if is_system(&c.account) {
            t.withdrawal_count += 1;
            t.withdrawals_minor += amount;
        }
    }
}

/// The balance after a posting: the projected one, which must equal the event's. System
/// accounts are the exception: they are never quarantined (every deposit touches them), so
/// after a parked event their projected balance is resynced from the event's `balance_after`.
fn posted(row: &AccountRow, projected: Option<i64>, event_says: i64) -> Result<i64, String> {
    match projected {
        Some(b) if b == event_says => Ok(b),
        _ if is_system(&row.account) => {
            metrics::counter!("raftledger_readmodel_system_resyncs_total").increment(1);
            tracing::warn!(account = %row.account, projected = ?projected, event_says, "readmodel.system_account_resynced");
            Ok(event_says)
        }
        _ => Err(format!(
            "balance_after mismatch on {}: projected {projected:?}, event says {event_says}",
            row.account
        )),
    }
}

fn check_pair(d: &AccountRow, c: &AccountRow, amount: i64) -> Result<(), String> {
    if d.currency != c.currency {
        return Err(format!(
            "currency mismatch: {} is {}, {} is {}",
            d.account, d.currency, c.account, c.currency
        ));
    }
    if amount <= 0 {
        return Err(format!("amount {amount} is not positive"));
    }
    Ok(())
}

fn release(pending: i64, amount: i64) -> Result<i64, String> {
    match pending.checked_sub(amount) {
        Some(p) if p >= 0 => Ok(p),
        _ => Err(format!("release of {amount} exceeds pending {pending}")),
    }
}

/// System accounts (`@world:USD`) are the other side of deposits and withdrawals.
pub fn is_system(account: &str) -> bool {
    account.starts_with('@')
}

/// Microseconds per UTC day.
const US_PER_DAY: i64 = 86_400_000_000;

/// UTC day (`YYYY-MM-DD`) of a timestamp.
pub fn day_of(ts_us: i64) -> String {
    crate::event::format_ts_us(ts_us)[..10].to_owned()
}
