//! The framing shared by the snapshot file and the cold history file:
//!
//! ```text
//! frame := len: u32 LE | crc32c(payload): u32 LE | payload (len bytes)
//! ```
//!
//! Each reader decides what a short or damaged frame means: the snapshot file refuses it, the
//! cold history file takes it as the torn tail of an append a crash cut short.

use std::io::{self, Read, Write};

/// Bytes of a frame's header (length and crc).
pub(crate) const FRAME_HEAD_BYTES: u64 = 8;

/// What the next frame of a stream is.
pub(crate) enum ReadFrame {
    /// A whole frame with a matching crc.
    Payload(Vec<u8>),
    /// The stream ended before a frame header.
    End,
    /// A frame cut short, too long, or with a bad crc (the reason).
    Damaged(String),
}

/// Writes one frame of `payload`, refusing payloads over `len_max`; returns the bytes written.
pub(crate) fn write_frame(out: &mut impl Write, payload: &[u8], len_max: usize) -> io::Result<u64> {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|l| *l as usize <= len_max)
        .ok_or_else(|| {
            let msg = format!("frame of {} bytes is over the limit", payload.len());
            io::Error::new(io::ErrorKind::InvalidData, msg)
        })?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&crc32c::crc32c(payload).to_le_bytes())?;
    out.write_all(payload)?;
    Ok(FRAME_HEAD_BYTES + u64::from(len))
}

/// Reads the next frame, refusing lengths over `len_max` (a corrupt length must not allocate
/// gigabytes).
pub(crate) fn read_frame(inp: &mut impl Read, len_max: usize) -> io::Result<ReadFrame> {
    let mut head = [0u8; FRAME_HEAD_BYTES as usize];
    if !filled(inp.read_exact(&mut head))? {
        return Ok(ReadFrame::End);
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > len_max {
        return Ok(ReadFrame::Damaged(format!(
            "frame length {len} is over the limit"
        )));
    }
    let mut payload = vec![0u8; len];
    if !filled(inp.read_exact(&mut payload))? {
        return Ok(ReadFrame::Damaged("truncated inside a frame".to_owned()));
    }
    if crc32c::crc32c(&payload) != crc {
        return Ok(ReadFrame::Damaged("bad crc".to_owned()));
    }
    Ok(ReadFrame::Payload(payload))
}

/// `read_exact`'s result as "filled" (true) or "the stream ended first" (false).
fn filled(read: io::Result<()>) -> io::Result<bool> {
    match read {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}
