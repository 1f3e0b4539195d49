//! Watching the policy files: any change under the watched directories reloads the store.
//!
//! Directories are watched, not files: editors that save by writing a temporary file and
//! renaming it (vim, many IDEs) replace the inode, and a watch on the file itself would go
//! silent. Kubernetes updates a mounted ConfigMap by swapping a `..data` symlink inside the
//! mounted directory, which a directory watch sees too. A directory can be replaced as a
//! whole (`mv policies.new policies`, `rm -rf` and a copy, a symlink swapped with `ln -sfn`):
//! a watch follows the inode it was armed on, so the parent of every watched directory is
//! watched too, and the watch is armed again on the new directory when the parent says its
//! entry changed. A rescan every [`RESCAN`] reloads when the files' digest moved without an
//! event (an inotify queue overflow, a file system that sends none) and arms again any watch
//! that could not be armed.
//!
//! Bursts of events are debounced into one reload, made on a thread of the watcher's own
//! with [`PolicyStore::reload_watched`]; a set held back (files that have not settled) is
//! asked about again when its time comes, even if no event arrives.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use notify_debouncer_full::notify::RecursiveMode as Recursion;
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use super::inputs_of;
use super::store::PolicyStore;

/// How long a burst of file events must be quiet before the reload.
pub const DEBOUNCE: Duration = Duration::from_millis(50);

/// How often the files' digest is compared with the last one read, whatever the events say.
pub const RESCAN: Duration = Duration::from_secs(5);

type Inner = Debouncer<RecommendedWatcher, RecommendedCache>;

/// A running watch; dropping it stops watching (and the reloading thread, once its reload
/// in progress ends).
pub struct Watcher {
    /// Held for as long as the watch lives (the reloading thread holds it too).
    _debouncer: Arc<Mutex<Inner>>,
    dirs: Vec<PathBuf>,
    stop: Option<Sender<Event>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("dirs", &self.dirs).finish()
    }
}

impl Watcher {
    /// The directories watched for their content (their parents are watched too).
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(Event::Stop);
        }
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

/// What the reloading thread is told.
enum Event {
    /// A debounced burst touched these paths (`rescan`: events were lost).
    Changed { paths: Vec<PathBuf>, rescan: bool },
    /// The watcher is gone.
    Stop,
}

/// One directory whose content is watched, and how.
#[derive(Debug, Clone)]
struct Watched {
    dir: PathBuf,
    mode: RecursiveMode,
    /// Whether any file in it matters (else only `names`, and `..` entries: a ConfigMap's).
    any: bool,
    names: Vec<std::ffi::OsString>,
}

impl Watched {
    fn relevant(&self, path: &Path) -> bool {
        if path == self.dir {
            return true;
        }
        let inside = match self.mode {
            RecursiveMode::Recursive => path.starts_with(&self.dir),
            RecursiveMode::NonRecursive => path.parent() == Some(self.dir.as_path()),
        };
        let name = path.file_name().unwrap_or_default();
        inside
            && (self.any
                || self.names.iter().any(|n| n == name)
                || name.to_string_lossy().starts_with(".."))
    }
}

/// Starts watching the store's sources (and its gate's inputs); every relevant change
/// calls [`PolicyStore::reload_watched`] on the watcher's own thread.
pub fn watch(store: Arc<PolicyStore>) -> Result<Watcher, WatchError> {
    let watched = watched(&store);
    let (tx, rx) = channel();
    let events = tx.clone();
    let debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        if let Some(event) = changed(result) {
            let _ = events.send(event);
        }
    })
    .map_err(|source| WatchError {
        dir: store.sources().policies.clone(),
        source,
    })?;
    let debouncer = Arc::new(Mutex::new(debouncer));
    let mut arms = Arms {
        debouncer: Arc::clone(&debouncer),
        watched: watched.clone(),
        unarmed: Vec::new(),
    };
    for w in &watched {
        arms.arm(&w.dir, w.mode).map_err(|source| WatchError {
            dir: w.dir.clone(),
            source,
        })?;
    }
    for parent in parents(&watched) {
        // A parent that cannot be watched (`/`, a read-only mount) only loses the
        // replacement of the directory as a whole, which the rescan still catches.
        if let Err(error) = arms.arm(&parent, RecursiveMode::NonRecursive) {
            tracing::debug!(dir = %parent.display(), %error, "cannot watch a parent directory");
        }
    }
    let dirs = watched.iter().map(|w| w.dir.clone()).collect();
    std::thread::Builder::new()
        .name("policy-watch".into())
        .spawn(move || reload_loop(&store, &rx, &mut arms))
        .map_err(|e| WatchError {
            dir: PathBuf::new(),
            source: notify_debouncer_full::notify::Error::io(e),
        })?;
    Ok(Watcher {
        _debouncer: debouncer,
        dirs,
        stop: Some(tx),
    })
}

/// The directories to watch for `store`: its policies directory (any file), the
/// directories of its schema and entities files (those files, and `..` entries), and its
/// gate's inputs (recursively).
fn watched(store: &PolicyStore) -> Vec<Watched> {
    let sources = store.sources();
    let mut watched = vec![Watched {
        dir: absolute(&sources.policies),
        mode: RecursiveMode::NonRecursive,
        any: true,
        names: Vec::new(),
    }];
    let files = std::iter::once(&sources.schema).chain(sources.entities.as_ref());
    for file in files.map(|f| absolute(f)) {
        let dir = file
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let name = file.file_name().unwrap_or_default().to_os_string();
        match watched.iter_mut().find(|w| w.dir == dir) {
            Some(w) => w.names.push(name),
            None => watched.push(Watched {
                dir,
                mode: RecursiveMode::NonRecursive,
                any: false,
                names: vec![name],
            }),
        }
    }
    for input in store.gate_inputs().iter().map(|p| absolute(p)) {
        if input.is_dir() {
            watched.push(Watched {
                dir: input,
                mode: RecursiveMode::Recursive,
                any: true,
                names: Vec::new(),
            });
        } else if let Some(dir) = input.parent() {
            watched.push(Watched {
                dir: dir.to_path_buf(),
                mode: RecursiveMode::NonRecursive,
                any: false,
                names: vec![input.file_name().unwrap_or_default().to_os_string()],
            });
        }
    }
    watched
}

/// The parents of the watched directories that are not watched themselves.
fn parents(watched: &[Watched]) -> Vec<PathBuf> {
    let mut parents: Vec<PathBuf> = Vec::new();
    for parent in watched.iter().filter_map(|w| w.dir.parent()) {
        if !watched.iter().any(|w| w.dir == parent) && !parents.iter().any(|p| p == parent) {
            parents.push(parent.to_path_buf());
        }
    }
    parents
}

/// The paths a debounced burst touched (reads left out), or that events were lost.
fn changed(result: DebounceEventResult) -> Option<Event> {
    match result {
        Ok(events) => {
            let rescan = events.iter().any(|e| e.event.need_rescan());
            let paths: Vec<PathBuf> = events
                .iter()
                .filter(|e| !matches!(e.event.kind, EventKind::Access(_)))
                .flat_map(|e| e.event.paths.iter().cloned())
                .collect();
            (rescan || !paths.is_empty()).then_some(Event::Changed { paths, rescan })
        }
        Err(errors) => {
            for error in &errors {
                tracing::error!(%error, "file watch error");
            }
            // An error may have cost events: read the files again.
            Some(Event::Changed {
                paths: Vec::new(),
                rescan: true,
            })
        }
    }
}

/// The watches, and those that could not be armed (a directory that is gone for now).
struct Arms {
    debouncer: Arc<Mutex<Inner>>,
    watched: Vec<Watched>,
    unarmed: Vec<Watched>,
}

impl Arms {
    fn arm(&self, dir: &Path, mode: RecursiveMode) -> notify_debouncer_full::notify::Result<()> {
        self.debouncer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .watch(dir, mode)
    }

    /// Arms the watch of `w` again, on whatever `w.dir` now is.
    fn rearm(&mut self, w: &Watched) {
        {
            let mut debouncer = self
                .debouncer
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // The old inode may be gone with its watch: nothing to remove is no error.
            let _ = debouncer.unwatch(&w.dir);
        }
        self.unarmed.retain(|u| u.dir != w.dir);
        match self.arm(&w.dir, w.mode) {
            Ok(()) => tracing::info!(dir = %w.dir.display(), "watching the replaced directory"),
            Err(error) => {
                tracing::warn!(dir = %w.dir.display(), %error, "the watched directory is gone; watching for it to come back");
                self.unarmed.push(w.clone());
            }
        }
    }

    /// Arms again every watched directory that `paths` name themselves (replaced through
    /// their parent) and every one not armed yet; whether any was.
    fn follow(&mut self, paths: &[PathBuf]) -> bool {
        let replaced: Vec<Watched> = self
            .watched
            .iter()
            .filter(|w| paths.contains(&w.dir) || self.unarmed.iter().any(|u| u.dir == w.dir))
            .cloned()
            .collect();
        for w in &replaced {
            self.rearm(w);
        }
        !replaced.is_empty()
    }
}

/// The reloading thread: reloads on relevant events, asks a held set again when its time
/// comes, and rescans every [`RESCAN`].
fn reload_loop(store: &PolicyStore, rx: &Receiver<Event>, arms: &mut Arms) {
    let mut retry_at: Option<Instant> = None;
    let mut next_scan = Instant::now() + RESCAN;
    let mut last_read = inputs_of(store.sources());
    loop {
        let wake = retry_at.map_or(next_scan, |r| r.min(next_scan));
        let due = match rx.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(Event::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Ok(Event::Changed { paths, rescan }) => {
                let rearmed = arms.follow(&paths);
                rescan
                    || rearmed
                    || paths
                        .iter()
                        .any(|p| arms.watched.iter().any(|w| w.relevant(p)))
            }
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                let retry = retry_at.is_some_and(|r| r <= now);
                let mut scan = false;
                if next_scan <= now {
                    next_scan = now + RESCAN;
                    arms.follow(&[]);
                    scan = inputs_of(store.sources()) != last_read;
                    if scan {
                        tracing::info!("the policy files changed without a file event; reloading");
                    }
                }
                retry || scan
            }
        };
        if due {
            let outcome = store.reload_watched();
            retry_at = outcome.retry_in().map(|d| Instant::now() + d);
            last_read = inputs_of(store.sources());
        }
    }
}

/// Watches `dirs` and calls `on_change` on the watcher's thread with the paths a debounced
/// burst of events touched (reads left out). What `gatehouse test --watch` uses.
pub fn watch_dirs(
    dirs: &[PathBuf],
    mode: RecursiveMode,
    mut on_change: impl FnMut(Vec<PathBuf>) + Send + 'static,
) -> Result<Watcher, WatchError> {
    let mut debouncer = new_debouncer(DEBOUNCE, None, move |result: DebounceEventResult| {
        if let Some(Event::Changed { paths, .. }) = changed(result) {
            on_change(paths);
        }
    })
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
        _debouncer: Arc::new(Mutex::new(debouncer)),
        dirs: dirs.to_vec(),
        stop: None,
    })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
