//! PostgreSQL binary COPY encoding of `account_history` rows: the 19-byte header, per row a
//! field count and length-prefixed big-endian fields (`text` as its UTF-8 bytes, `int8` as 8
//! bytes), and the `-1` trailer. Encoded into one buffer and sent as one message.

use crate::fold::HistoryRow;
use bytes::{BufMut, Bytes, BytesMut};

/// The columns, in the order [`encode_history`] writes them.
pub const HISTORY_COLUMNS: &str =
    "account, seq, ts_us, transfer_id, counterparty, amount, balance_after";
/// Fields per row.
const HISTORY_FIELDS: i16 = 7;
/// The 11-byte signature; the flags and the header-extension length (both 0) follow it.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The whole COPY payload for `rows`.
pub fn encode_history(rows: &[HistoryRow]) -> Bytes {
    let text_bytes: usize = rows
        .iter()
        .map(|r| r.account.len() + r.transfer_id.len() + r.counterparty.len())
        .sum();
    let mut b = BytesMut::with_capacity(SIGNATURE.len() + 10 + rows.len() * 78 + text_bytes);
    b.put_slice(SIGNATURE);
    b.put_i32(0);
    b.put_i32(0);
    for r in rows {
        b.put_i16(HISTORY_FIELDS);
        text(&mut b, &r.account);
        int8(&mut b, r.seq);
        int8(&mut b, r.ts_us);
        text(&mut b, &r.transfer_id);
        text(&mut b, &r.counterparty);
        int8(&mut b, r.amount);
        int8(&mut b, r.balance_after);
    }
    b.put_i16(-1);
    b.freeze()
}

fn text(b: &mut BytesMut, s: &str) {
    // Field lengths are i32; ids are validated far below that by the node.
    b.put_i32(i32::try_from(s.len()).unwrap_or(i32::MAX));
    b.put_slice(s.as_bytes());
}

fn int8(b: &mut BytesMut, v: i64) {
    b.put_i32(8);
    b.put_i64(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_binary_copy_format() {
        let row = HistoryRow {
            account: "a".into(),
            seq: 2,
            ts_us: 3,
            transfer_id: "t".into(),
            counterparty: "b".into(),
            amount: -4,
            balance_after: 5,
        };
        let b = encode_history(&[row]);
        assert_eq!(&b[..11], SIGNATURE);
        assert_eq!(&b[11..19], &[0; 8]);
        assert_eq!(&b[19..21], &7i16.to_be_bytes());
        assert_eq!(&b[21..26], &[0, 0, 0, 1, b'a']);
        assert_eq!(&b[26..30], &8i32.to_be_bytes());
        assert_eq!(&b[30..38], &2i64.to_be_bytes());
        assert_eq!(&b[b.len() - 2..], &(-1i16).to_be_bytes());
        // 2 + 3 texts of (4 + 1) + 4 int8 of (4 + 8)
        assert_eq!(b.len(), 19 + 2 + 15 + 48 + 2);
    }
}
