//! One index run file: the `(key hash, record locator)` entries (a locator: the offset of the
//! record's block and its slot in it, see `block`) of the records whose frames lie
//! in the byte range `[start, end)` of `records.bin`, sorted, with what a lookup needs in memory
//! (fence keys and a bloom filter) in a footer, so that opening a run never reads its entries.
//!
//! ```text
//! run     := header | block* | footer | trailer
//! header  := MAGIC (8) | VERSION: u32 | BLOCK_ENTRIES: u32 | start: u64 | end: u64
//!            | count: u64 | last: u64 (offset of the range's last frame)
//! block   := (hash: u64 | locator: u64){BLOCK_ENTRIES, fewer in the last block} | crc32c: u32
//! footer  := fence: u64 per block (its first hash) | bloom words: u64 ...
//!            | crc32c(header | fences | bloom): u32
//! trailer := footer offset: u64 | footer length: u64 | TRAILER_MAGIC (8)
//! ```
//!
//! All integers little-endian. Entries are sorted by (hash, locator); equal hashes (different
//! keys, or a key of each kind) may continue into the next block. A damaged block is an error,
//! never a miss. `RunWriter` writes a run to a temporary file and renames it into place (the
//! store syncs it later, with the records); `Run` is an open run.

use super::bloom::Bloom;
use crate::sm::codec::invalid_data;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: [u8; 8] = *b"rlcoldix";
const TRAILER_MAGIC: [u8; 8] = *b"rlcixend";
const VERSION: u32 = 1;

/// Entries per block (a block's entries are 4 KiB).
pub(super) const BLOCK_ENTRIES: u64 = 256;
const ENTRY_BYTES: u64 = 16;
const CRC_BYTES: u64 = 4;
/// Bytes of the header; the first block starts here.
pub(super) const HEADER_BYTES: u64 = 48;
const TRAILER_BYTES: u64 = 24;
/// Bytes between the starts of two blocks.
const BLOCK_STRIDE_BYTES: u64 = BLOCK_ENTRIES * ENTRY_BYTES + CRC_BYTES;
/// Write buffer of a run being written.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// What a run covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    /// First byte of `records.bin` the run covers.
    pub(super) start: u64,
    /// End (exclusive) of the bytes it covers.
    pub(super) end: u64,
    /// Entries (records) in it.
    pub(super) count: u64,
    /// Offset of the last frame in `[start, end)`.
    pub(super) last: u64,
}

impl Span {
    fn header(&self) -> [u8; HEADER_BYTES as usize] {
        let mut h = [0u8; HEADER_BYTES as usize];
        h[..8].copy_from_slice(&MAGIC);
        h[8..12].copy_from_slice(&VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(BLOCK_ENTRIES as u32).to_le_bytes());
        for (i, v) in [self.start, self.end, self.count, self.last]
            .iter()
            .enumerate()
        {
            h[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        h
    }

    fn from_header(h: &[u8; HEADER_BYTES as usize]) -> io::Result<Self> {
        let word = |i: usize| u64_at(h, 16 + 8 * i);
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        let block_entries = u32::from_le_bytes([h[12], h[13], h[14], h[15]]);
        if h[..8] != MAGIC || version != VERSION || u64::from(block_entries) != BLOCK_ENTRIES {
            return Err(invalid_data("not an index run of this version".to_owned()));
        }
        Ok(Self {
            start: word(0),
            end: word(1),
            count: word(2),
            last: word(3),
        })
    }

    fn blocks(&self) -> u64 {
        self.count.div_ceil(BLOCK_ENTRIES)
    }

    /// Where the footer starts: after every block.
    fn footer_offset(&self) -> u64 {
        let full = self.count / BLOCK_ENTRIES;
        let rest = self.count % BLOCK_ENTRIES;
        let partial = if rest == 0 {
            0
        } else {
            rest * ENTRY_BYTES + CRC_BYTES
        };
        HEADER_BYTES + full * BLOCK_STRIDE_BYTES + partial
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Writes one run from entries pushed in sorted order.
pub(super) struct RunWriter {
    out: BufWriter<File>,
    tmp: PathBuf,
    span: Span,
    pushed: u64,
    prev: Option<(u64, u64)>,
    block: Vec<u8>,
    fences: Vec<u64>,
    bloom: Bloom,
}

impl RunWriter {
    /// Starts writing the run of `span` (whose `count` entries must all be pushed) to `tmp`.
    pub(super) fn create(tmp: PathBuf, span: Span) -> io::Result<Self> {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, File::create(&tmp)?);
        out.write_all(&span.header())?;
        Ok(Self {
            out,
            tmp,
            span,
            pushed: 0,
            prev: None,
            block: Vec::with_capacity((BLOCK_ENTRIES * ENTRY_BYTES) as usize),
            fences: Vec::with_capacity(span.blocks() as usize),
            bloom: Bloom::with_capacity(span.count),
        })
    }

    /// Adds the next entry; entries must come in increasing (hash, offset) order.
    pub(super) fn push(&mut self, hash: u64, offset: u64) -> io::Result<()> {
        if self.prev.is_some_and(|prev| prev >= (hash, offset)) || self.pushed == self.span.count {
            return Err(invalid_data("index run entries out of order".to_owned()));
        }
        self.prev = Some((hash, offset));
        if self.block.is_empty() {
            self.fences.push(hash);
        }
        self.block.extend_from_slice(&hash.to_le_bytes());
        self.block.extend_from_slice(&offset.to_le_bytes());
        self.bloom.insert(hash);
        self.pushed += 1;
        if self.pushed % BLOCK_ENTRIES == 0 {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> io::Result<()> {
        self.out.write_all(&self.block)?;
        self.out
            .write_all(&crc32c::crc32c(&self.block).to_le_bytes())?;
        self.block.clear();
        Ok(())
    }

    /// Writes the footer and trailer; renames the file to `path` and opens it. Not synced: the
    /// store syncs its new runs (and the directory) with the records they index.
    pub(super) fn finish(mut self, path: &Path) -> io::Result<Run> {
        if self.pushed != self.span.count {
            return Err(invalid_data(
                "index run got fewer entries than announced".to_owned(),
            ));
        }
        if !self.block.is_empty() {
            self.end_block()?;
        }
        let footer = footer_bytes(&self.span, &self.fences, &self.bloom);
        self.out.write_all(&footer)?;
        self.out
            .write_all(&self.span.footer_offset().to_le_bytes())?;
        self.out.write_all(&(footer.len() as u64).to_le_bytes())?;
        self.out.write_all(&TRAILER_MAGIC)?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        super::writeback::start(&file, 0, 0);
        drop(file);
        std::fs::rename(&self.tmp, path)?;
        Ok(Run {
            file: File::open(path)?,
            path: path.to_owned(),
            span: self.span,
            fences: self.fences.into_boxed_slice(),
            bloom: self.bloom,
        })
    }
}

fn footer_bytes(span: &Span, fences: &[u64], bloom: &Bloom) -> Vec<u8> {
    let words = bloom.words();
    let mut footer = Vec::with_capacity(8 * (fences.len() + words.len()) + 4);
    for word in fences.iter().chain(words) {
        footer.extend_from_slice(&word.to_le_bytes());
    }
    let mut crc = crc32c::crc32c(&span.header());
    crc = crc32c::crc32c_append(crc, &footer);
    footer.extend_from_slice(&crc.to_le_bytes());
    footer
}

/// An open run: its span, fences and filter in memory, its entries on disk.
#[derive(Debug)]
pub(super) struct Run {
    file: File,
    path: PathBuf,
    pub(super) span: Span,
    /// First hash of every block.
    fences: Box<[u64]>,
    bloom: Bloom,
}

impl Run {
    /// Opens a run, reading its header, footer and trailer only.
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len_bytes = file.metadata()?.len();
        if len_bytes < HEADER_BYTES + TRAILER_BYTES {
            return Err(invalid_data("index run too short".to_owned()));
        }
        let mut header = [0u8; HEADER_BYTES as usize];
        file.read_exact_at(&mut header, 0)?;
        let span = Span::from_header(&header)?;
        let mut trailer = [0u8; TRAILER_BYTES as usize];
        file.read_exact_at(&mut trailer, len_bytes - TRAILER_BYTES)?;
        let (footer_at, footer_len) = (u64_at(&trailer, 0), u64_at(&trailer, 8));
        let blocks = span.blocks();
        let words_bytes = footer_len.checked_sub(8 * blocks + CRC_BYTES);
        let well_formed = trailer[16..] == TRAILER_MAGIC
            && footer_at == span.footer_offset()
            && footer_at.checked_add(footer_len) == Some(len_bytes - TRAILER_BYTES)
            && words_bytes.is_some_and(|w| w > 0 && w % 8 == 0)
            && span.count > 0
            && span.start <= span.last
            && span.last < span.end;
        if !well_formed {
            return Err(invalid_data("index run trailer does not fit".to_owned()));
        }
        let mut footer = vec![0u8; footer_len as usize];
        file.read_exact_at(&mut footer, footer_at)?;
        let (body, crc) = footer.split_at(footer.len() - CRC_BYTES as usize);
        let crc_stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32c::crc32c_append(crc32c::crc32c(&header), body) != crc_stored {
            return Err(invalid_data("index run footer has a bad crc".to_owned()));
        }
        let mut words = body.chunks_exact(8).map(|w| u64_at(w, 0));
        let fences: Box<[u64]> = words.by_ref().take(blocks as usize).collect();
        let bloom = Bloom::from_words(words.collect())
            .ok_or_else(|| invalid_data("index run has no filter".to_owned()))?;
        Ok(Self {
            file,
            path: path.to_owned(),
            span,
            fences,
            bloom,
        })
    }

    /// Bytes of memory its fences and filter take.
    #[cfg(test)]
    pub(super) fn ram_bytes(&self) -> usize {
        8 * (self.fences.len() + self.bloom.words().len())
    }

    /// Where the run file is.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// False when the run certainly holds no entry with this hash.
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        self.bloom.may_contain(hash)
    }

    /// Offsets of the records with this key hash (reads the blocks that may hold it).
    pub(super) fn offsets(&self, hash: u64) -> io::Result<Vec<u64>> {
        let mut found = Vec::new();
        if !self.bloom.may_contain(hash) {
            return Ok(found);
        }
        // The last block starting below `hash` may end with it; later blocks whose fence is
        // `hash` hold more of it.
        let first = self.fences.partition_point(|f| *f < hash).saturating_sub(1);
        let mut block = first;
        while block < self.fences.len() && (block == first || self.fences[block] == hash) {
            for (h, offset) in self.block(block as u64)? {
                if h == hash {
                    found.push(offset);
                }
            }
            block += 1;
        }
        Ok(found)
    }

    /// The entries of one block, after checking its crc.
    fn block(&self, index: u64) -> io::Result<Vec<(u64, u64)>> {
        let entries = (self.span.count - index * BLOCK_ENTRIES).min(BLOCK_ENTRIES);
        let mut bytes = vec![0u8; (entries * ENTRY_BYTES + CRC_BYTES) as usize];
        let at = HEADER_BYTES + index * BLOCK_STRIDE_BYTES;
        self.file.read_exact_at(&mut bytes, at)?;
        decode_block(&bytes).ok_or_else(|| {
            let path = self.path.display();
            invalid_data(format!("index run {path}: block {index} is damaged"))
        })
    }

    /// Every entry in order, block by block (each block's crc checked).
    pub(super) fn entries(&self) -> impl Iterator<Item = io::Result<(u64, u64)>> + '_ {
        let mut reader = std::io::BufReader::with_capacity(
            WRITE_BUFFER_BYTES,
            FileAt {
                file: &self.file,
                offset: HEADER_BYTES,
            },
        );
        (0..self.span.blocks()).flat_map(move |index| {
            let entries = (self.span.count - index * BLOCK_ENTRIES).min(BLOCK_ENTRIES);
            let mut bytes = vec![0u8; (entries * ENTRY_BYTES + CRC_BYTES) as usize];
            let block = reader.read_exact(&mut bytes).and_then(|()| {
                decode_block(&bytes).ok_or_else(|| {
                    let path = self.path.display();
                    invalid_data(format!("index run {path}: block {index} is damaged"))
                })
            });
            let (ok, err) = match block {
                Ok(entries) => (entries, None),
                Err(e) => (Vec::new(), Some(Err(e))),
            };
            ok.into_iter().map(Ok).chain(err)
        })
    }
}

/// The entries of a block with its crc at the end; None when the crc does not match.
fn decode_block(bytes: &[u8]) -> Option<Vec<(u64, u64)>> {
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES as usize);
    if crc32c::crc32c(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return None;
    }
    let entries = body.chunks_exact(ENTRY_BYTES as usize);
    Some(entries.map(|e| (u64_at(e, 0), u64_at(e, 8))).collect())
}

/// A `Read` over `file` from `offset` on, by positioned reads (no shared file offset).
pub(super) struct FileAt<'a> {
    pub(super) file: &'a File,
    pub(super) offset: u64,
}

impl Read for FileAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }
}
