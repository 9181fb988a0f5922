//! Snapshot folders. `snapshots/v000007/` holds one immutable snapshot (files plus a
//! manifest, written by the engine); `snapshots/LATEST` names the newest complete one.
//! A snapshot is built in a hidden temporary folder and renamed into place, then
//! `LATEST` is replaced atomically, so a reader never sees half a snapshot.

use std::fs;
use std::path::{Path, PathBuf};

use crate::StoreError;

const LATEST: &str = "LATEST";
/// How many published snapshots are kept; older ones are deleted on publish.
const KEEP: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId(pub u64);

impl std::fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v{:06}", self.0)
    }
}

impl SnapshotId {
    pub fn parse(text: &str) -> Option<Self> {
        text.trim().strip_prefix('v')?.parse().ok().map(SnapshotId)
    }
}

#[derive(Debug, Clone)]
pub struct SnapshotDir {
    root: PathBuf,
}

impl SnapshotDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn path_of(&self, id: SnapshotId) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// The newest published snapshot, if any.
    pub fn latest(&self) -> Result<Option<SnapshotId>, StoreError> {
        let path = self.root.join(LATEST);
        match fs::read_to_string(&path) {
            Ok(text) => SnapshotId::parse(&text).map(Some).ok_or_else(|| StoreError::Corrupt {
                path,
                offset: 0,
                reason: format!("expected a snapshot name like v000001, found {text:?}"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path)(e)),
        }
    }

    fn published(&self) -> Result<Vec<SnapshotId>, StoreError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(StoreError::io(&self.root)(e)),
        };
        for entry in entries {
            let name = entry.map_err(StoreError::io(&self.root))?.file_name();
            if let Some(id) = name.to_str().and_then(SnapshotId::parse) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Starts a new snapshot in a temporary folder.
    pub fn begin(&self) -> Result<SnapshotWriter, StoreError> {
        fs::create_dir_all(&self.root).map_err(StoreError::io(&self.root))?;
        let next = self.published()?.last().map_or(1, |id| id.0 + 1);
        let id = SnapshotId(next);
        let tmp = self.root.join(format!(".building-{id}-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(StoreError::io(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(StoreError::io(&tmp))?;
        Ok(SnapshotWriter { dir: self.clone(), id, tmp, published: false })
    }

    fn publish(&self, id: SnapshotId, tmp: &Path) -> Result<(), StoreError> {
        let target = self.path_of(id);
        fs::rename(tmp, &target).map_err(StoreError::io(&target))?;
        let pointer_tmp = self.root.join(format!("{LATEST}.tmp"));
        fs::write(&pointer_tmp, format!("{id}\n")).map_err(StoreError::io(&pointer_tmp))?;
        fs::File::open(&pointer_tmp).and_then(|f| f.sync_all()).map_err(StoreError::io(&pointer_tmp))?;
        fs::rename(&pointer_tmp, self.root.join(LATEST)).map_err(StoreError::io(&self.root))?;
        fs::File::open(&self.root).and_then(|d| d.sync_all()).map_err(StoreError::io(&self.root))?;
        self.prune(id)
    }

    fn prune(&self, newest: SnapshotId) -> Result<(), StoreError> {
        let ids = self.published()?;
        for old in ids.iter().filter(|id| **id < newest).rev().skip(KEEP - 1) {
            let path = self.path_of(*old);
            tracing::info!(snapshot = %old, "removing an old snapshot");
            fs::remove_dir_all(&path).map_err(StoreError::io(path))?;
        }
        Ok(())
    }
}

/// A snapshot being written. Write files under [`path`](Self::path), then
/// [`publish`](Self::publish); dropping it unpublished removes the folder.
#[derive(Debug)]
pub struct SnapshotWriter {
    dir: SnapshotDir,
    id: SnapshotId,
    tmp: PathBuf,
    published: bool,
}

impl SnapshotWriter {
    pub fn id(&self) -> SnapshotId {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn publish(mut self) -> Result<SnapshotId, StoreError> {
        for entry in fs::read_dir(&self.tmp).map_err(StoreError::io(&self.tmp))? {
            let path = entry.map_err(StoreError::io(&self.tmp))?.path();
            fs::File::open(&path).and_then(|f| f.sync_all()).map_err(StoreError::io(&path))?;
        }
        self.dir.publish(self.id, &self.tmp)?;
        self.published = true;
        Ok(self.id)
    }
}

impl Drop for SnapshotWriter {
    fn drop(&mut self) {
        if !self.published {
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishing_moves_latest_and_keeps_three() {
        let root = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(root.path());
        assert_eq!(dir.latest().unwrap(), None);
        for n in 1..=5 {
            let writer = dir.begin().unwrap();
            fs::write(writer.path().join("manifest.json"), "{}").unwrap();
            assert_eq!(writer.publish().unwrap(), SnapshotId(n));
            assert_eq!(dir.latest().unwrap(), Some(SnapshotId(n)));
        }
        assert_eq!(dir.published().unwrap(), vec![SnapshotId(3), SnapshotId(4), SnapshotId(5)]);
    }

    #[test]
    fn an_abandoned_build_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::new(root.path());
        let writer = dir.begin().unwrap();
        let tmp = writer.path().to_owned();
        drop(writer);
        assert!(!tmp.exists());
        assert_eq!(dir.latest().unwrap(), None);
    }
}
