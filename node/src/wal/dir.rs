//! Creating directories durably: a directory that was created but whose parent was not synced
//! may vanish in a power cut, taking with it every file written (and synced) inside it. The WAL,
//! the state machine and the node's data directory are all created through
//! [`create_dir_all_durable`].

use super::file::WalFs;
use std::io;
use std::path::{Path, PathBuf};

/// The directory holding `path`, `.` for a relative name without one (where `Path::parent` gives
/// an empty path); `None` for a root.
pub(crate) fn parent_dir(path: &Path) -> Option<PathBuf> {
    let parent = path.parent()?;
    Some(if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent.to_path_buf()
    })
}

/// Creates `dir` and whichever of its ancestors are missing, oldest first, and after creating
/// each one syncs its parent ([`WalFs::sync_dir`]), so the new entry survives a power cut.
/// Directories that already exist are left alone (no sync).
pub fn create_dir_all_durable(fs: &dyn WalFs, dir: &Path) -> io::Result<()> {
    match fs.create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
                return Err(e);
            };
            create_dir_all_durable(fs, parent)?;
            match fs.create_dir(dir) {
                Ok(()) => {}
                // Created meanwhile by someone else, who is responsible for syncing it.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    match parent_dir(dir) {
        Some(parent) => fs.sync_dir(&parent),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{RealFs, SimFs, WalFile};
    use std::sync::Mutex;

    /// SimFs that records which directories were synced.
    #[derive(Debug, Default)]
    struct Recording {
        sim: SimFs,
        synced: Mutex<Vec<PathBuf>>,
    }

    impl Recording {
        fn take_synced(&self) -> Vec<PathBuf> {
            std::mem::take(&mut *self.synced.lock().unwrap())
        }
    }

    impl WalFs for Recording {
        fn create_dir(&self, dir: &Path) -> io::Result<()> {
            self.sim.create_dir(dir)
        }
        fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
            self.sim.list(dir)
        }
        fn create(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
            self.sim.create(path)
        }
        fn open(&self, path: &Path) -> io::Result<Box<dyn WalFile>> {
            self.sim.open(path)
        }
        fn remove(&self, path: &Path) -> io::Result<()> {
            self.sim.remove(path)
        }
        fn sync_dir(&self, dir: &Path) -> io::Result<()> {
            self.synced.lock().unwrap().push(dir.to_path_buf());
            self.sim.sync_dir(dir)
        }
    }

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn each_created_directory_is_synced_into_its_parent_and_survives_a_power_cut() {
        let fs = Recording::default();
        create_dir_all_durable(&fs, Path::new("/a/b/c")).unwrap();
        assert_eq!(fs.take_synced(), paths(&["/", "/a", "/a/b"]));
        // Existing directories are left alone; only the new leaf's parent is synced.
        create_dir_all_durable(&fs, Path::new("/a/b/c")).unwrap();
        assert_eq!(fs.take_synced(), Vec::<PathBuf>::new());
        create_dir_all_durable(&fs, Path::new("/a/b/d")).unwrap();
        assert_eq!(fs.take_synced(), paths(&["/a/b"]));
        fs.sim.power_cut();
        assert!(fs.sim.list(Path::new("/a/b/c")).is_ok());
        assert!(fs.sim.list(Path::new("/a/b/d")).is_ok());
    }

    #[test]
    fn relative_paths_sync_the_current_directory() {
        let fs = Recording::default();
        create_dir_all_durable(&fs, Path::new("x/y")).unwrap();
        assert_eq!(fs.take_synced(), paths(&[".", "x"]));
        fs.sim.power_cut();
        assert!(fs.sim.list(Path::new("x/y")).is_ok());
    }

    #[test]
    fn works_on_the_real_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data/sm");
        create_dir_all_durable(&RealFs, &dir).unwrap();
        assert!(dir.is_dir());
        create_dir_all_durable(&RealFs, &dir).unwrap();
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        let err = create_dir_all_durable(&RealFs, &tmp.path().join("file/sub")).unwrap_err();
        assert_ne!(err.kind(), io::ErrorKind::AlreadyExists, "{err}");
    }
}
