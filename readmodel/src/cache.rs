//! The writer's cache of its schema's `balances` rows and quarantine set, so a batch folds
//! from memory instead of loading the rows it touches (one round trip and most of the read
//! work per batch saved). A session loads the whole set when the schema holds at most its
//! bound of accounts ([`CACHE_ACCOUNTS_MAX`] by default); past the bound (at start or later)
//! it falls back to loading per batch.
//!
//! Why it stays exact: the cache is the state at the writer's checkpoint, updated only after
//! a batch commits. Every batch moves the checkpoint from exactly the seq it started after, in
//! the same transaction as its rows, so a commit succeeds only if no one else wrote the
//! schema since — i.e. only if the database still equals the cache. Any error ends the
//! session and drops the cache; the next session loads again from PostgreSQL.

use crate::fold::{AccountRow, BatchWrite};
use std::collections::{HashMap, HashSet};

/// Accounts a session keeps in memory at most by default (a row is ~200 bytes: ~40 MB).
pub const CACHE_ACCOUNTS_MAX: usize = 200_000;

/// Rows of the accounts a batch touches, and which of them are quarantined.
pub type Loaded = (HashMap<String, AccountRow>, HashSet<String>);

/// See the module docs.
#[derive(Debug, Default)]
pub struct AccountCache {
    /// `Some` while every account of the schema is in memory.
    all: Option<(HashMap<String, AccountRow>, HashSet<String>)>,
    /// Accounts held at most.
    accounts_max: usize,
}

impl AccountCache {
    /// A cache holding `rows` and `quarantined` as the complete state, or a disabled one if
    /// there are more than `accounts_max` rows.
    pub fn complete(
        rows: Vec<AccountRow>,
        quarantined: HashSet<String>,
        accounts_max: usize,
    ) -> Self {
        if rows.len() > accounts_max {
            return Self::disabled();
        }
        let rows = rows.into_iter().map(|r| (r.account.clone(), r)).collect();
        Self {
            all: Some((rows, quarantined)),
            accounts_max,
        }
    }

    /// A cache that holds nothing: every batch loads its rows.
    pub fn disabled() -> Self {
        Self {
            all: None,
            accounts_max: 0,
        }
    }

    /// The rows of `touched` and which of them are quarantined, or `None` if they must be
    /// loaded from PostgreSQL. Accounts absent from a complete cache do not exist.
    pub fn lookup(&self, touched: &[String]) -> Option<Loaded> {
        let (rows, quarantined) = self.all.as_ref()?;
        let known = touched
            .iter()
            .filter_map(|a| rows.get(a).map(|r| (a.clone(), r.clone())))
            .collect();
        let q = touched
            .iter()
            .filter(|a| quarantined.contains(*a))
            .cloned()
            .collect();
        Some((known, q))
    }

    /// Records a committed batch's final rows and new quarantines; disables itself past the
    /// bound.
    pub fn committed(&mut self, w: &BatchWrite) {
        let Some((rows, quarantined)) = self.all.as_mut() else {
            return;
        };
        for (account, row) in &w.accounts {
            match rows.get_mut(account) {
                Some(r) => r.clone_from(row),
                None => {
                    rows.insert(account.clone(), row.clone());
                }
            }
        }
        quarantined.extend(w.quarantined.iter().map(|(a, _, _)| a.clone()));
        if rows.len() > self.accounts_max {
            tracing::info!(accounts = rows.len(), "readmodel.account_cache_disabled");
            self.all = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(a: &str, balance: i64) -> AccountRow {
        AccountRow {
            account: a.into(),
            currency: "USD".into(),
            balance,
            pending_debits: 0,
            overdraft_limit: 0,
            version: 0,
            status: "open".into(),
            opened_seq: 1,
            opened_at_us: 0,
            updated_seq: 1,
            updated_at_us: 0,
        }
    }

    #[test]
    fn serves_committed_state_and_knows_absent_accounts() {
        let mut c = AccountCache::complete(vec![row("a", 1)], HashSet::new(), 2);
        let mut w = BatchWrite::default();
        w.accounts.insert("a".into(), row("a", 5));
        w.accounts.insert("b".into(), row("b", 2));
        w.quarantined.push(("b".into(), 9, "why".into()));
        c.committed(&w);
        let (known, q) = c.lookup(&["a".into(), "b".into(), "z".into()]).unwrap();
        assert_eq!(known["a"].balance, 5);
        assert_eq!(known["b"].balance, 2);
        assert!(!known.contains_key("z"), "absent means not opened");
        assert_eq!(q, HashSet::from(["b".to_string()]));
        assert!(AccountCache::disabled().lookup(&["a".into()]).is_none());
        w.accounts.insert("c".into(), row("c", 0));
        c.committed(&w);
        assert!(
            c.lookup(&["a".into()]).is_none(),
            "past the bound it turns off"
        );
    }
}
