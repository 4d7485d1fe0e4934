//! Value encoding for everything the state machine persists: one format-version byte, then the
//! value in bincode 2 (serde API, standard config). Decoding refuses unknown versions so a newer
//! file is never misread by an older binary.

use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io;

/// Format version written as the first byte of every persisted value and snapshot record.
pub(crate) const FORMAT_V1: u8 = 1;

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

/// Decodes a value written by [`encode`]; refuses unknown versions and trailing bytes.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    let (version, body) = bytes
        .split_first()
        .ok_or_else(|| invalid_data("empty value".to_owned()))?;
    if *version != FORMAT_V1 {
        return Err(invalid_data(format!("unknown format version {version}")));
    }
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
}
