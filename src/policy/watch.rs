//! Watching the policy files: any change under the watched directories reloads the store.
//!
//! Directories are watched, not files: editors that save by writing a temporary file and
//! renaming it (vim, many IDEs) replace the inode, and a watch on the file itself would go
//! silent. Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink inside the
//! mounted directory, which a directory watch sees too. Bursts of events are debounced into
//! one reload.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use notify_debouncer_full::notify::RecursiveMode as Recursion;
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::store::PolicyStore;

/// How long a burst of file events must be quiet before the reload.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// A running watch; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
    dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("dirs", &self.dirs).finish()
    }
}

impl Watcher {
    /// The directories watched.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// Why the files cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch `{}`: {source}", dir.display())]
pub struct WatchError {
    /// The directory that could not be watched (the first one, if the watcher itself could
    /// not start).
    pub dir: PathBuf,
    /// What the operating system said.
    #[source]
    pub source: notify_debouncer_full::notify::Error,
}

/// Starts watching the store's sources; every relevant change calls [`PolicyStore::reload`]
/// on the watcher's own thread.
pub fn watch(store: Arc<PolicyStore>) -> Result<Watcher, WatchError> {
    let sources = store.sources().clone();
    let mut files: Vec<PathBuf> = vec![absolute(&sources.schema)];
    files.extend(sources.entities.as_deref().map(absolute));
    let policies_dir = absolute(&sources.policies);
    let mut dirs = vec![policies_dir.clone()];
    for file in &files {
        let dir = file
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    let relevant = move |path: &Path| {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        path.parent() == Some(policies_dir.as_path())
            || files.iter().any(|f| f.file_name() == path.file_name())
            || name.starts_with("..")
    };
    watch_dirs(&dirs, RecursiveMode::NonRecursive, move |changed| {
        if changed.iter().any(|p| relevant(p)) {
            store.reload();
        }
    })
}

/// Watches `dirs` and calls `on_change` on the watcher's thread with the paths a debounced
/// burst of events touched (reads left out). What [`watch`] and `gatehouse test --watch`
/// share.
pub fn watch_dirs(
    dirs: &[PathBuf],
    mode: RecursiveMode,
    mut on_change: impl FnMut(Vec<PathBuf>) + Send + 'static,
) -> Result<Watcher, WatchError> {
    let mut debouncer =
        new_debouncer(
            DEBOUNCE,
            None,
            move |result: DebounceEventResult| match result {
                Ok(events) => {
                    let changed: Vec<PathBuf> = events
                        .iter()
                        .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                        .flat_map(|e| e.event.paths.iter().cloned())
                        .collect();
                    if !changed.is_empty() {
                        on_change(changed);
                    }
                }
                Err(errors) => {
                    for error in errors {
                        tracing::error!(%error, "file watch error");
                    }
                }
            },
        )
        .map_err(|source| WatchError {
            dir: dirs.first().cloned().unwrap_or_default(),
            source,
        })?;
    for dir in dirs {
        debouncer.watch(dir, mode).map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    }
    Ok(Watcher {
        _debouncer: debouncer,
        dirs: dirs.to_vec(),
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
