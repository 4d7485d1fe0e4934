//! The on-disk half of the postings index: pages of one account's postings in the sled table
//! `postings`, and the lookups over them.
//!
//! ```text
//! key                                        value
//! acct | b'p' | first seq (BE)               Vec<Posting>: one page, consecutive for the account
//! acct | b't' | !first timestamp | !seq       empty: find the page by time
//! acct | b'i' | !first log index | !seq       empty: find the page by log index
//! acct := len: u8 | account id bytes          (!x: bitwise not, BE: newest page first)
//! ```
//!
//! A page is written once, in the apply batch that made it (three rows per page, so a few
//! rows per hundred postings), and never changes. Along one account's postings the seq, the
//! log index and the timestamp all grow together, so the page holding "the last posting at or
//! before X" is the last page whose first posting is at or before X, for any of the three:
//! one range read finds it, one point read fetches it. The time and index keys are stored
//! inverted so that read is the first row of a forward range (sled walks forward ranges much
//! faster than backward ones).

use super::Posting;
use crate::sm::codec::{decode, encode, sled_err};
use crate::sm::ns::Ns;
use ledger::AccountId;
use std::io;

/// A row to write: (unprefixed key, value).
pub(crate) type Row = (Vec<u8>, Vec<u8>);

/// Which of a posting's ordered coordinates a lookup bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coord {
    /// Leader timestamp (µs).
    Time,
    /// Log index.
    Index,
    /// Event sequence.
    Seq,
}

impl Coord {
    fn tag(self) -> u8 {
        match self {
            Self::Time => b't',
            Self::Index => b'i',
            Self::Seq => b'p',
        }
    }

    /// The coordinate of `p`.
    pub(crate) fn of(self, p: &Posting) -> u64 {
        match self {
            Self::Time => p.ts_us,
            Self::Index => p.index,
            Self::Seq => p.seq,
        }
    }
}

/// Key prefix of `account`'s rows of `coord`.
fn prefix(account: &AccountId, coord: Coord) -> Vec<u8> {
    let id = account.as_str().as_bytes();
    let mut k = Vec::with_capacity(id.len() + 18);
    // Account ids are at most 64 bytes (`ledger::ACCOUNT_ID_LEN_MAX`).
    k.push(id.len() as u8);
    k.extend_from_slice(id);
    k.push(coord.tag());
    k
}

fn with_u64(mut key: Vec<u8>, n: u64) -> Vec<u8> {
    key.extend_from_slice(&n.to_be_bytes());
    key
}

fn trailing_u64(key: &[u8]) -> io::Result<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| crate::sm::codec::invalid_data("postings key too short".to_owned()))
}

/// The rows storing `page` (non-empty, in order) of `account`.
pub(crate) fn page_rows(account: &AccountId, page: &[Posting]) -> io::Result<Vec<Row>> {
    let Some(first) = page.first() else {
        return Ok(Vec::new());
    };
    let data = with_u64(prefix(account, Coord::Seq), first.seq);
    let inverted = |coord: Coord| {
        let key = with_u64(prefix(account, coord), !coord.of(first));
        with_u64(key, !first.seq)
    };
    let (by_time, by_index) = (inverted(Coord::Time), inverted(Coord::Index));
    Ok(vec![
        (data, encode(&page)?),
        (by_time, Vec::new()),
        (by_index, Vec::new()),
    ])
}

/// The page of `account` starting at `first_seq`.
fn read_page(table: &Ns, account: &AccountId, first_seq: u64) -> io::Result<Vec<Posting>> {
    let key = with_u64(prefix(account, Coord::Seq), first_seq);
    match table.get(&key).map_err(sled_err)? {
        Some(v) => decode(&v),
        None => Err(crate::sm::codec::invalid_data(format!(
            "postings page {first_seq} of {account} is indexed but missing"
        ))),
    }
}

/// First seqs of `account`'s pages whose first posting has `coord` <= `at`, newest first.
fn pages_at_or_before(
    table: &Ns,
    account: &AccountId,
    coord: Coord,
    at: u64,
) -> Box<dyn Iterator<Item = io::Result<u64>>> {
    let base = prefix(account, coord);
    let first_seq = |row: sled::Result<(sled::IVec, sled::IVec)>, inverted: bool| {
        let (key, _) = row.map_err(sled_err)?;
        let seq = trailing_u64(&key)?;
        Ok(if inverted { !seq } else { seq })
    };
    match coord {
        Coord::Seq => {
            let end = with_u64(base.clone(), at);
            let rows = table.range(base..=end).rev();
            Box::new(rows.map(move |r| first_seq(r, false)))
        }
        Coord::Time | Coord::Index => {
            let end = with_u64(with_u64(base.clone(), u64::MAX), u64::MAX);
            let rows = table.range(with_u64(base, !at)..=end);
            Box::new(rows.map(move |r| first_seq(r, true)))
        }
    }
}

/// The last stored posting of `account` with `coord` <= `at` and seq <= `cap_seq`.
pub(crate) fn last_at_or_before(
    table: &Ns,
    account: &AccountId,
    coord: Coord,
    at: u64,
    cap_seq: u64,
) -> io::Result<Option<Posting>> {
    for first_seq in pages_at_or_before(table, account, coord, at) {
        let page = read_page(table, account, first_seq?)?;
        let n = page.partition_point(|p| coord.of(p) <= at && p.seq <= cap_seq);
        if let Some(p) = n.checked_sub(1).and_then(|i| page.get(i)) {
            return Ok(Some(*p));
        }
    }
    Ok(None)
}

/// The last stored posting of `account` (None when it has no page).
pub(crate) fn last_stored(table: &Ns, account: &AccountId) -> io::Result<Option<Posting>> {
    last_at_or_before(table, account, Coord::Seq, u64::MAX, u64::MAX)
}

/// Stored postings of `account` with `after_seq` < seq <= `cap_seq`, in order, at most `limit`.
pub(crate) fn seqs_after(
    table: &Ns,
    account: &AccountId,
    after_seq: u64,
    cap_seq: u64,
    limit: usize,
    out: &mut Vec<u64>,
) -> io::Result<()> {
    let base = prefix(account, Coord::Seq);
    // The page holding the first wanted posting starts at or before it.
    let from = match pages_at_or_before(table, account, Coord::Seq, after_seq.saturating_add(1))
        .next()
        .transpose()?
    {
        Some(first_seq) => with_u64(base.clone(), first_seq),
        None => base.clone(),
    };
    let end = with_u64(base, u64::MAX);
    for row in table.range(from..=end) {
        let (_, value) = row.map_err(sled_err)?;
        let page: Vec<Posting> = decode(&value)?;
        for p in page {
            if p.seq > cap_seq || out.len() >= limit {
                return Ok(());
            }
            if p.seq > after_seq {
                out.push(p.seq);
            }
        }
    }
    Ok(())
}
