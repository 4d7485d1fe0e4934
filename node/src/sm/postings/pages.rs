//! The on-disk half of the postings index: pages of one account's postings in the sled table
//! `postings`, and the lookups over them.
//!
//! ```text
//! key                                        value
//! acct | b't' | !first timestamp | !seq       Vec<Posting>: one page, consecutive for the account
//! acct | b'i' | !first log index | !seq       first timestamp: finds the page by log index
//! acct | b'p' | first seq (BE)               first timestamp: finds the page by seq
//! acct := len: u8 | account id bytes          (!x: bitwise not, BE: newest page first)
//! ```
//!
//! A page is written once, in the apply batch that made it (three rows per page, so a few
//! rows per hundred postings), and never changes. Along one account's postings the seq, the
//! log index and the timestamp all grow together, so the page holding "the last posting at or
//! before X" is the last page whose first posting is at or before X, for any of the three:
//! by time that is the first row of one forward range read (the time and index keys are
//! stored inverted, newest first, and the page lives under its time key); by log index or seq
//! a range read finds the pointer and a point read the page.

use super::Posting;
use crate::sm::codec::{decode, encode_packed, invalid_data, sled_err};
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
        .ok_or_else(|| invalid_data("postings key too short".to_owned()))
}

/// The key of the page of `account` whose first posting has timestamp `ts_us` and `seq`.
fn page_key(account: &AccountId, ts_us: u64, seq: u64) -> Vec<u8> {
    with_u64(with_u64(prefix(account, Coord::Time), !ts_us), !seq)
}

/// The rows storing `page` (non-empty, in order) of `account`: the page under its time key,
/// and its index and seq keys pointing there (their value: the page's first timestamp).
pub(crate) fn page_rows(account: &AccountId, page: &[Posting]) -> io::Result<Vec<Row>> {
    let Some(first) = page.first() else {
        return Ok(Vec::new());
    };
    let data = page_key(account, first.ts_us, first.seq);
    let by_index = with_u64(
        with_u64(prefix(account, Coord::Index), !first.index),
        !first.seq,
    );
    let by_seq = with_u64(prefix(account, Coord::Seq), first.seq);
    let ts = first.ts_us.to_be_bytes().to_vec();
    Ok(vec![
        (data, encode_packed(&page)?),
        (by_index, ts.clone()),
        (by_seq, ts),
    ])
}

/// The page a seq or index key points at (its value: the page's first timestamp).
fn page_of_pointer(
    table: &Ns,
    account: &AccountId,
    first_seq: u64,
    first_ts: &[u8],
) -> io::Result<Vec<Posting>> {
    let ts = first_ts
        .try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| invalid_data("postings pointer without a timestamp".to_owned()))?;
    match table
        .get(page_key(account, ts, first_seq))
        .map_err(sled_err)?
    {
        Some(v) => decode(&v),
        None => Err(invalid_data(format!(
            "postings page {first_seq} of {account} is indexed but missing"
        ))),
    }
}

/// `account`'s pages whose first posting has `coord` <= `at`, newest first. By time that is
/// one forward range read (the page is under its time key); by index or seq a range read
/// finds the pointer, and a point read the page.
fn pages_at_or_before<'a>(
    table: &'a Ns,
    account: &'a AccountId,
    coord: Coord,
    at: u64,
) -> Box<dyn Iterator<Item = io::Result<Vec<Posting>>> + 'a> {
    let base = prefix(account, coord);
    let follow = move |row: sled::Result<(sled::IVec, sled::IVec)>, inverted: bool| {
        let (key, ts) = row.map_err(sled_err)?;
        let seq = trailing_u64(&key)?;
        let seq = if inverted { !seq } else { seq };
        page_of_pointer(table, account, seq, &ts)
    };
    let inverted_end = with_u64(with_u64(base.clone(), u64::MAX), u64::MAX);
    match coord {
        Coord::Time => {
            let rows = table.range(with_u64(base, !at)..=inverted_end);
            Box::new(rows.map(|row| decode(&row.map_err(sled_err)?.1)))
        }
        Coord::Index => {
            let rows = table.range(with_u64(base, !at)..=inverted_end);
            Box::new(rows.map(move |r| follow(r, true)))
        }
        Coord::Seq => {
            let end = with_u64(base.clone(), at);
            let rows = table.range(base..=end).rev();
            Box::new(rows.map(move |r| follow(r, false)))
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
    for page in pages_at_or_before(table, account, coord, at) {
        let page = page?;
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
    let base = prefix(account, Coord::Time);
    // Pages in seq order are the time keys backwards, from the page holding the first wanted
    // posting (the last one starting at or before it) or from the oldest page.
    let start = pages_at_or_before(table, account, Coord::Seq, after_seq.saturating_add(1))
        .next()
        .transpose()?
        .and_then(|page| page.first().map(|p| page_key(account, p.ts_us, p.seq)))
        .unwrap_or_else(|| with_u64(with_u64(base.clone(), u64::MAX), u64::MAX));
    for row in table.range(base..=start).rev() {
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
