//! The narrow storage interface the WAL writes through, and its real implementation.
//!
//! The WAL never touches `std::fs` directly: it goes through [`WalFs`] (directory operations) and
//! [`WalFile`] (positional reads and writes, `set_len`, `sync_data`). [`RealFs`] maps these onto
//! `std::fs`; [`SimFs`](super::SimFs) keeps everything in memory and can simulate a power cut.
//!
//! Durability contract, the same for both implementations:
//! - a write is durable only after a later [`WalFile::sync_data`] on that file returned `Ok`;
//! - a file's or directory's creation or removal is durable only after [`WalFs::sync_dir`] on
//!   the directory holding it returned `Ok` (see [`create_dir_all_durable`](super::create_dir_all_durable)).

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// An open file the WAL reads and writes at explicit offsets.
pub trait WalFile: Send + Sync + Debug {
    /// Writes all of `buf` at `offset` (not durable until [`WalFile::sync_data`]).
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Fills all of `buf` from `offset`; reading past the end of the file is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Current length of the file in bytes.
    fn size_bytes(&self) -> io::Result<u64>;
    /// Grows (zero-filled) or shrinks the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes every completed write and `set_len` on this file durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

/// Directory-level operations, and the factory for [`WalFile`]s.
pub trait WalFs: Send + Sync + Debug {
    /// Creates the directory `dir`, whose parent must exist (not durable until its parent is
    /// synced). Fails with `AlreadyExists` if `dir` exists, `NotFound` if its parent does not.
    fn create_dir(&self, dir: &Path) -> io::Result<()>;
    /// Names (not paths) of the regular files directly inside `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates a new, empty file; fails if it already exists.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>>;
    /// Removes a file (open handles keep working, as with unlink on Unix).
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes creations and removals inside `dir` durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// [`WalFs`] over the real file system (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// A real file: positional I/O through `FileExt`, so concurrent readers need no shared cursor.
#[derive(Debug)]
struct RealFile {
    /// The open file, read-write.
    file: File,
}

impl WalFile for RealFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn size_bytes(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        // `File::sync_data` is `fdatasync(2)` on Linux: it flushes the data and the metadata
        // needed to read it back (including the file size), and waits for the device.
        self.file.sync_data()
    }
}

impl WalFs for RealFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for dirent in std::fs::read_dir(dir)? {
            let dirent = dirent?;
            if dirent.file_type()?.is_file() {
                if let Some(name) = dirent.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        Ok(Box::new(RealFile { file }))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        // A directory is fsync'ed through a read-only handle on it; this persists the entries
        // (creations, removals) so a new segment cannot vanish after a power cut.
        File::open(dir)?.sync_all()
    }
}
