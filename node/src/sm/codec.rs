//! Value encoding for everything the state machine persists: one format-version byte, then the
//! value in bincode 2 (serde API, standard config). Decoding refuses unknown versions so a newer
//! file is never misread by an older binary.
//!
//! Large sled values (event blocks, postings pages) are stored packed: `FORMAT_PACKED`, the
//! length of the bincode, then the bincode compressed with zstd. The values stay opaque to
//! sled, whose own compression would have to decompress every page of its log at each open.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;

/// Format version written as the first byte of every persisted value and snapshot record.
pub(crate) const FORMAT_V1: u8 = 1;

/// Format version of a packed value: `[FORMAT_PACKED][len: u32 LE][zstd(bincode(value))]`.
const FORMAT_PACKED: u8 = 2;

/// Values whose encoding is shorter are not packed (zstd gains little on them).
const PACK_BYTES_MIN: usize = 256;

/// zstd level of packed values: the fastest (they are packed on the apply path).
const PACK_ZSTD_LEVEL: i32 = 1;

/// Encodes `value` like [`encode`], compressed when that is at least `PACK_BYTES_MIN` long.
pub(crate) fn encode_packed<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let plain = encode(value)?;
    if plain.len() < PACK_BYTES_MIN {
        return Ok(plain);
    }
    let mut out = vec![FORMAT_PACKED];
    pack_into(&plain[1..], PACK_ZSTD_LEVEL, &mut out)?;
    Ok(out)
}

/// Appends `[len: u32 LE][zstd(data)]` to `out`.
pub(crate) fn pack_into(data: &[u8], level: i32, out: &mut Vec<u8>) -> io::Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| invalid_data(format!("{} bytes to compress", data.len())))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&zstd_compress(data, level)?);
    Ok(())
}

/// The bytes `pack_into` packed; refused when they do not decompress to the length recorded.
pub(crate) fn unpack(packed: &[u8]) -> io::Result<Vec<u8>> {
    let (len, frame) = packed
        .split_first_chunk::<4>()
        .ok_or_else(|| invalid_data("packed bytes without a length".to_owned()))?;
    let len = u32::from_le_bytes(*len) as usize;
    let plain = zstd_decompress(frame, len)?;
    if plain.len() != len {
        return Err(invalid_data(format!(
            "packed bytes decompress to {}, their header says {len}",
            plain.len()
        )));
    }
    Ok(plain)
}

thread_local! {
    /// Each thread's zstd contexts: creating one per call allocated and zeroed its tables
    /// every time (a few percent of a loaded node's CPU on the apply path).
    static ZSTD: std::cell::RefCell<(zstd::block::Compressor, zstd::block::Decompressor)> =
        std::cell::RefCell::new((zstd::block::Compressor::new(), zstd::block::Decompressor::new()));
}

/// `data` compressed as one zstd frame at `level`, with this thread's context.
fn zstd_compress(data: &[u8], level: i32) -> io::Result<Vec<u8>> {
    ZSTD.with(|z| z.borrow_mut().0.compress(data, level))
}

/// A zstd frame decompressed, refused when it holds more than `capacity` bytes.
fn zstd_decompress(data: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    ZSTD.with(|z| z.borrow_mut().1.decompress(data, capacity))
}

/// Encodes `value` as `[FORMAT_V1][bincode(value)]`.
pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    let mut out = vec![FORMAT_V1];
    bincode::serde::encode_into_std_write(value, &mut out, bincode::config::standard())
        .map_err(|e| invalid_data(format!("encode failed: {e}")))?;
    Ok(out)
}

/// Appends `[FORMAT_V1][bincode(value)]` to `out` (reusing its allocation).
pub(crate) fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) -> io::Result<()> {
    out.push(FORMAT_V1);
    bincode::serde::encode_into_std_write(value, out, bincode::config::standard())
        .map_err(|e| invalid_data(format!("encode failed: {e}")))?;
    Ok(())
}

/// Decodes a value written by [`encode`] or [`encode_packed`]; refuses unknown versions and
/// trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| invalid_data("empty value".to_owned()))?;
    match *version {
        FORMAT_V1 => decode_body(body),
        FORMAT_PACKED => decode_body(&unpack(body)?),
        other => Err(invalid_data(format!("unknown format version {other}"))),
    }
}

fn decode_body<T: DeserializeOwned>(body: &[u8]) -> io::Result<T> {
    let (value, read) = bincode::serde::decode_from_slice(body, bincode::config::standard())
        .map_err(|e| invalid_data(format!("decode failed: {e}")))?;
    if read != body.len() {
        return Err(invalid_data(format!(
            "{} trailing bytes after value",
            body.len() - read
        )));
    }
    Ok(value)
}

/// An `InvalidData` I/O error: the bytes on disk are not what this code wrote.
pub(crate) fn invalid_data(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Maps a sled error to an I/O error (sled's own conversion keeps the kind for I/O failures).
pub(crate) fn sled_err(e: sled::Error) -> io::Error {
    match e {
        sled::Error::Io(e) => e,
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let bytes = encode(&(7u64, "x".to_owned())).unwrap();
        assert_eq!(bytes[0], FORMAT_V1);
        let back: (u64, String) = decode(&bytes).unwrap();
        assert_eq!(back, (7, "x".to_owned()));
        let mut bad = bytes.clone();
        bad[0] = 99;
        assert!(decode::<(u64, String)>(&bad).is_err());
        assert!(decode::<u64>(&[]).is_err());
    }

    #[test]
    fn large_values_are_packed_and_read_back() {
        let small = (7u64, "x".to_owned());
        assert_eq!(encode_packed(&small).unwrap(), encode(&small).unwrap());
        let large: Vec<String> = (0..200).map(|i| format!("transfer-{i:06}")).collect();
        let packed = encode_packed(&large).unwrap();
        assert_eq!(packed[0], FORMAT_PACKED);
        assert!(packed.len() < encode(&large).unwrap().len() / 2);
        assert_eq!(decode::<Vec<String>>(&packed).unwrap(), large);
        let mut bad = packed.clone();
        bad[1] ^= 1;
        assert!(decode::<Vec<String>>(&bad).is_err());
        assert!(decode::<Vec<String>>(&packed[..4]).is_err());
    }
}
