//! What the reload watcher knows of the policy files: for each, read through symlinks, its
//! modification time, size, inode and a hash of its content.
//!
//! The hash is what catches a change that keeps the time and size: a symlink swapped to
//! another file of the same modification time (Kubernetes' ConfigMap `..data` swap), or an
//! edit within the file system's timestamp granularity. It detects change, not tampering:
//! whoever can write the policy file decides the policy anyway.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One file's state; `None` fields mean it could not be read (a missing file is a state too).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    inode: (u64, u64),
    content: u64,
}

impl FileState {
    /// The file's state now, following symlinks; `None` if it cannot be read.
    pub fn read(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        let bytes = std::fs::read(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: (meta.dev(), meta.ino()),
            content: poolgate_policies::content_hash(&bytes),
        })
    }
}

/// The states of a set of files, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot(Vec<(PathBuf, Option<FileState>)>);

impl Snapshot {
    pub fn of(files: &[PathBuf]) -> Self {
        Self(
            files
                .iter()
                .map(|f| (f.clone(), FileState::read(f)))
                .collect(),
        )
    }

    /// The same files read again.
    pub fn again(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(f, _)| (f.clone(), FileState::read(f)))
                .collect(),
        )
    }

    /// This snapshot plus the files of `files` it does not cover (read now).
    pub fn extended(mut self, files: &[PathBuf]) -> Self {
        for f in files {
            if !self.0.iter().any(|(p, _)| p == f) {
                self.0.push((f.clone(), FileState::read(f)));
            }
        }
        self
    }

    /// Whether every file a load read (`(path, content hash)`) is in this snapshot with the
    /// same content: the load read exactly what this snapshot saw.
    pub fn holds(&self, read: &[(PathBuf, u64)]) -> bool {
        read.iter().all(|(path, hash)| {
            self.0
                .iter()
                .any(|(p, s)| p == path && s.as_ref().is_some_and(|s| s.content == *hash))
        })
    }

    /// The entries of `files` only, in that order (a file not covered is read now).
    pub fn restricted(&self, files: &[PathBuf]) -> Self {
        Self(
            files
                .iter()
                .map(|f| match self.0.iter().find(|(p, _)| p == f) {
                    Some(entry) => entry.clone(),
                    None => (f.clone(), FileState::read(f)),
                })
                .collect(),
        )
    }

    /// The files covered.
    pub fn files(&self) -> Vec<PathBuf> {
        self.0.iter().map(|(p, _)| p.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use std::fs::File;

    #[test]
    fn a_symlink_swapped_to_a_file_of_the_same_time_and_size_is_a_change() {
        let dir = std::env::temp_dir().join(format!("poolgate-fs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b, link) = (dir.join("a"), dir.join("b"), dir.join("policy.yaml"));
        std::fs::write(&a, "deny: [x]\n").unwrap();
        std::fs::write(&b, "deny: [y]\n").unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        let touch = |f: &Path| {
            File::options()
                .write(true)
                .open(f)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        touch(&a);
        touch(&b);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let before = Snapshot::of(std::slice::from_ref(&link));
        assert_eq!(before, before.again());
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&b, &link).unwrap();
        assert_ne!(before, before.again());
        // Same inode, time and size, other bytes: still a change.
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert_eq!(before, before.again());
        std::fs::write(&a, "deny: [z]\n").unwrap();
        touch(&a);
        assert_ne!(before, before.again());
        // A missing file is a state of its own.
        std::fs::remove_file(&a).unwrap();
        assert_eq!(before.again().0[0].1, None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn extended_adds_only_new_files() {
        let s = Snapshot::of(&[PathBuf::from("/nonexistent/a")]);
        let e = s.clone().extended(&[
            PathBuf::from("/nonexistent/a"),
            PathBuf::from("/nonexistent/b"),
        ]);
        assert_eq!(e.0.len(), 2);
        assert_eq!(e.0[0], s.0[0]);
    }
}
