//! A deterministic synthetic event stream for the benchmark: accounts opened, then deposits
//! and transfers with correct `balance_after` values, rendered as the node renders events.

use crate::event::format_ts_us;
use serde_json::json;

/// The system account the deposits come from.
const WORLD: &str = "@world:USD";

/// Generates events 1, 2, 3, … in the node's wire format.
pub struct Gen {
    accounts: Vec<String>,
    balances: Vec<i64>,
    world: i64,
    seq: u64,
    ts_us: i64,
}

impl Gen {
    /// `accounts` customer accounts.
    pub fn new(accounts: usize) -> Self {
        Self {
            accounts: (0..accounts).map(|i| format!("acct-{i}")).collect(),
            balances: vec![0; accounts],
            world: 0,
            seq: 0,
            ts_us: 1_795_392_000_000_000,
        }
    }

    /// Seq of the last event generated.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The next event's JSON bytes.
    pub fn next_event(&mut self) -> Vec<u8> {
        self.seq += 1;
        self.ts_us += 100;
        let n = self.accounts.len() as u64;
        let (kind, data) = if self.seq == 1 {
            (
                "account_opened",
                json!({"account": WORLD, "currency": "USD", "overdraft_limit": 0, "metadata": "{}"}),
            )
        } else if self.seq <= n + 1 {
            let a = &self.accounts[(self.seq - 2) as usize];
            (
                "account_opened",
                json!({"account": a, "currency": "USD", "overdraft_limit": 0, "metadata": "{}"}),
            )
        } else {
            let k = self.seq - n - 2;
            let i = (k % n) as usize;
            if k % 4 == 0 || self.balances[i] == 0 {
                self.world -= 100;
                self.balances[i] += 100;
                (
                    "transfer_posted",
                    self.posting(WORLD.into(), i, 100, self.world, self.balances[i]),
                )
            } else {
                let j = ((k * 7 + 3) % n) as usize;
                let j = if j == i { (j + 1) % n as usize } else { j };
                self.balances[i] -= 1;
                self.balances[j] += 1;
                let d = self.accounts[i].clone();
                (
                    "transfer_posted",
                    self.posting(d, j, 1, self.balances[i], self.balances[j]),
                )
            }
        };
        json!({"seq": self.seq, "index": self.seq, "timestamp": format_ts_us(self.ts_us), "type": kind,
               "schema_version": 1, "command_id": format!("c{}", self.seq), "data": data})
        .to_string()
        .into_bytes()
    }

    fn posting(
        &self,
        debit: String,
        credit: usize,
        amount: i64,
        da: i64,
        ca: i64,
    ) -> serde_json::Value {
        json!({"transfer_id": format!("t{}", self.seq), "debit": debit, "credit": self.accounts[credit],
               "amount": amount, "debit_balance_after": da, "credit_balance_after": ca,
               "from_pending": false, "memo": null})
    }
}
