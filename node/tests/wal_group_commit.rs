//! Group commit: queued writes share one `fdatasync`, completions fire in submission order, a
//! vote is ordered with the appends around it, and a failed sync fails that round and every
//! later write (the WAL is poisoned, never silently continuing).

use node::raft_types::{Entry, TypeConfig, Vote};
use node::wal::{SimFs, Wal, WalFile, WalFs, WalOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn entry(index: u64) -> Entry {
    openraft::testing::blank_ent::<TypeConfig>(1, 1, index)
}

/// SimFs whose `sync_data` is slow (as a real device's is) and can be made to fail.
#[derive(Debug, Clone)]
struct SlowFs {
    sim: SimFs,
    fail_syncs: Arc<AtomicBool>,
    syncs: Arc<AtomicU64>,
}

#[derive(Debug)]
struct SlowFile {
    inner: Box<dyn WalFile>,
    fs: SlowFs,
}

impl WalFile for SlowFile {
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        self.inner.write_at(offset, buf)
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.inner.size_bytes()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        std::thread::sleep(Duration::from_millis(2));
        if self.fs.fail_syncs.load(Ordering::SeqCst) {
            return Err(io::Error::other("injected fdatasync failure"));
        }
        self.fs.syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_data()
    }
}

impl WalFs for SlowFs {
    fn create_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.create_dir(dir)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.sim.list(dir)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(SlowFile {
            inner: self.sim.create(path)?,
            fs: self.clone(),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
        Ok(Box::new(SlowFile {
            inner: self.sim.open(path)?,
            fs: self.clone(),
        }))
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.sim.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.sim.sync_dir(dir)
    }
}

fn open() -> (Wal, SlowFs) {
    let fs = SlowFs {
        sim: SimFs::new(),
        fail_syncs: Arc::default(),
        syncs: Arc::default(),
    };
    let wal = Wal::open(
        Arc::new(fs.clone()),
        Path::new("/wal"),
        WalOptions::default(),
    )
    .unwrap();
    (wal, fs)
}

type Fired = Arc<Mutex<Vec<(u64, bool)>>>;

/// Appends entry `index` alone, recording `(index, ok)` when its completion fires.
async fn append_recorded(wal: &Wal, index: u64, fired: &Fired) -> io::Result<()> {
    let fired = fired.clone();
    wal.append(vec![entry(index)], move |result| {
        fired.lock().unwrap().push((index, result.is_ok()))
    })
    .await
}

#[tokio::test]
async fn queued_appends_share_syncs_and_complete_in_order() {
    let (wal, fs) = open();
    let syncs_before = fs.syncs.load(Ordering::SeqCst);
    let fired: Fired = Arc::default();
    const APPENDS: u64 = 300;
    for index in 0..APPENDS {
        append_recorded(&wal, index, &fired).await.unwrap();
    }
    wal.sync().await.unwrap();
    let fired = fired.lock().unwrap().clone();
    let expected: Vec<(u64, bool)> = (0..APPENDS).map(|i| (i, true)).collect();
    assert_eq!(fired, expected, "completions out of order or failed");
    let syncs = fs.syncs.load(Ordering::SeqCst) - syncs_before;
    // Appends queue up while each (slow) sync runs, so rounds hold many of them.
    assert!(
        syncs * 10 <= APPENDS,
        "{syncs} syncs for {APPENDS} appends: no group commit"
    );
    assert_eq!(
        wal.stats().records,
        APPENDS + 1,
        "entries plus the first segment's start record"
    );
}

#[tokio::test]
async fn a_vote_completes_after_the_appends_queued_before_it() {
    let (wal, _fs) = open();
    let fired: Fired = Arc::default();
    for index in 0..20 {
        append_recorded(&wal, index, &fired).await.unwrap();
    }
    wal.save_vote(&Vote::new(3, 2)).await.unwrap();
    assert_eq!(
        fired.lock().unwrap().len(),
        20,
        "the vote was reported durable before earlier appends"
    );
    assert_eq!(wal.vote(), Some(Vote::new(3, 2)));
}

#[tokio::test]
async fn a_failed_sync_fails_its_round_and_every_later_write() {
    let (wal, fs) = open();
    let fired: Fired = Arc::default();
    append_recorded(&wal, 0, &fired).await.unwrap();
    wal.sync().await.unwrap();
    fs.fail_syncs.store(true, Ordering::SeqCst);
    append_recorded(&wal, 1, &fired).await.unwrap();
    assert!(
        wal.save_vote(&Vote::new(1, 1)).await.is_err(),
        "vote reported saved without a sync"
    );
    assert_eq!(*fired.lock().unwrap(), vec![(0, true), (1, false)]);
    assert_eq!(wal.vote(), None, "an unsynced vote became visible");
    // Even once the device "recovers", the WAL stays failed: the page cache is not trusted.
    fs.fail_syncs.store(false, Ordering::SeqCst);
    assert!(append_recorded(&wal, 2, &fired).await.is_err());
    assert!(wal.save_vote(&Vote::new(2, 1)).await.is_err());
}
