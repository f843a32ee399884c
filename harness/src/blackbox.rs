//! The black box: what happened to the files under test, seen by the kernel, not the child.
//!
//! Before the child starts, the parent watches (inotify) the folder of every file under test
//! and snapshots each file. While the child runs, the supervisor drains the queue whenever it
//! is readable; after the child and its process group are gone, [`BlackBox::finish`] drains the
//! rest and snapshots again. No settle delay is needed: inotify queues an event inside the
//! system call that causes it, so every event of a reaped process is already queued.
//!
//! Per file it counts renames onto the name (`IN_MOVED_TO`) and closes after writing
//! (`IN_CLOSE_WRITE`, and separately those preceded by an `IN_MODIFY`: writes in place). It
//! never reads the journal.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::observation::{BlackBoxCounts, FileObservation, FileSnapshot, FolderObservation, TEXT_KEPT};
use crate::spec::{FileUnderTest, FolderUnderTest, Limits, Validator};

/// Why the black box could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum BlackBoxError {
    /// A file under test could not be prepared (folder created, seed written) or snapshotted.
    #[error("file under test {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// inotify failed.
    #[error("inotify: {0}")]
    Inotify(#[source] io::Error),
}

struct Watched {
    name: String,
    path: PathBuf,
    validator: Option<Validator>,
    before: FileSnapshot,
    counts: BlackBoxCounts,
    modified_since_close: bool,
}

/// The inotify watches and the counts of one run.
pub struct BlackBox {
    inotify: Inotify,
    /// (watch, file name in that folder) -> index in `files`.
    by_name: HashMap<(WatchDescriptor, OsString), usize>,
    files: Vec<Watched>,
    folders: Vec<WatchedFolder>,
    overflowed: bool,
    buffer: Vec<u8>,
    file_cap: u64,
}

struct WatchedFolder {
    name: String,
    path: PathBuf,
    wd: WatchDescriptor,
    before: BTreeSet<String>,
    events: Vec<String>,
}

/// The most events kept per folder under test (the rest are counted).
const MAX_FOLDER_EVENTS: usize = 1000;

/// What the black box saw of one run.
pub struct Seen {
    /// The files under test.
    pub files: Vec<FileObservation>,
    /// The folders under test.
    pub folders: Vec<FolderObservation>,
    /// Whether the inotify queue overflowed (counts are then lower bounds).
    pub overflowed: bool,
}

impl BlackBox {
    /// Seeds the files under test (creating their folders), snapshots them and starts watching.
    pub fn arm(
        files: &[FileUnderTest],
        folders: &[FolderUnderTest],
        scratch: &Path,
        limits: &Limits,
    ) -> Result<Self, BlackBoxError> {
        let inotify = match POOL.lock().ok().and_then(|mut pool| pool.pop()) {
            Some(inotify) => inotify,
            None => Inotify::init().map_err(BlackBoxError::Inotify)?,
        };
        // One mask for every watch: adding a folder twice replaces its mask.
        let mask = WatchMask::MOVED_TO
            | WatchMask::CLOSE_WRITE
            | WatchMask::MODIFY
            | WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM;
        let mut by_name = HashMap::new();
        let mut watched = Vec::with_capacity(files.len());
        // Seed every file before the first watch exists: seeding is setup, not a save.
        for file in files {
            let path = file.resolve(scratch);
            let file_err = |source| BlackBoxError::File { path: path.clone(), source };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(file_err)?;
            }
            if let Some(seed) = &file.seed {
                // 0600 whatever the umask: a seeded file stands for one its owner wrote, and
                // resources that refuse group- or world-writable files must accept it.
                write_private(&path, seed).map_err(file_err)?;
            }
        }
        for (index, file) in files.iter().enumerate() {
            let path = file.resolve(scratch);
            let file_err = |source| BlackBoxError::File { path: path.clone(), source };
            let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
                let source = io::Error::new(io::ErrorKind::InvalidInput, "not a file path");
                return Err(file_err(source));
            };
            let wd = inotify.watches().add(dir, mask).map_err(BlackBoxError::Inotify)?;
            by_name.insert((wd, base.to_owned()), index);
            let before = snapshot(&path, file.validator.as_ref(), limits.file_cap);
            watched.push(Watched {
                name: file.name.clone(),
                path,
                validator: file.validator.clone(),
                before,
                counts: BlackBoxCounts::default(),
                modified_since_close: false,
            });
        }
        let mut watched_folders = Vec::with_capacity(folders.len());
        for folder in folders {
            let path = folder.resolve(scratch);
            let folder_err = |source| BlackBoxError::File { path: path.clone(), source };
            std::fs::create_dir_all(&path).map_err(folder_err)?;
            let wd = inotify.watches().add(&path, mask).map_err(BlackBoxError::Inotify)?;
            let before = listing(&path).map_err(folder_err)?;
            watched_folders.push(WatchedFolder { name: folder.path.clone(), path, wd, before, events: Vec::new() });
        }
        // Aligned enough for `inotify_event` and large enough for many events per read.
        let buffer = vec![0; 64 * 1024];
        Ok(Self {
            inotify,
            by_name,
            files: watched,
            folders: watched_folders,
            overflowed: false,
            buffer,
            file_cap: limits.file_cap,
        })
    }

    /// The inotify descriptor, for the supervisor to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.inotify.as_fd()
    }

    /// Reads and counts every queued event, without blocking.
    pub fn drain(&mut self) -> Result<(), BlackBoxError> {
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(BlackBoxError::Inotify(e)),
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    self.overflowed = true;
                    continue;
                }
                let Some(name) = event.name else { continue };
                for folder in self.folders.iter_mut().filter(|f| f.wd == event.wd) {
                    let name = name.to_string_lossy();
                    let what = if event.mask.contains(EventMask::CREATE) {
                        format!("created {name}")
                    } else if event.mask.contains(EventMask::DELETE) {
                        format!("removed {name}")
                    } else if event.mask.contains(EventMask::MOVED_FROM) {
                        format!("renamed {name} ->")
                    } else if event.mask.contains(EventMask::MOVED_TO) {
                        format!("renamed -> {name}")
                    } else {
                        continue;
                    };
                    match folder.events.len().cmp(&MAX_FOLDER_EVENTS) {
                        std::cmp::Ordering::Less => folder.events.push(what),
                        std::cmp::Ordering::Equal => folder.events.push("... (more events not kept)".into()),
                        std::cmp::Ordering::Greater => {}
                    }
                }
                let Some(&index) = self.by_name.get(&(event.wd.clone(), name.to_owned())) else {
                    continue;
                };
                let file = &mut self.files[index];
                if event.mask.contains(EventMask::MODIFY) {
                    file.modified_since_close = true;
                }
                if event.mask.contains(EventMask::MOVED_TO) {
                    file.counts.renames_onto += 1;
                    file.modified_since_close = false;
                }
                if event.mask.contains(EventMask::CLOSE_WRITE) {
                    file.counts.close_writes += 1;
                    if std::mem::take(&mut file.modified_since_close) {
                        file.counts.in_place_writes += 1;
                    }
                }
            }
            if !any {
                return Ok(());
            }
        }
    }

    /// Drains the last events and snapshots every file again.
    pub fn finish(mut self) -> Result<Seen, BlackBoxError> {
        self.drain()?;
        let mut observed = Vec::with_capacity(self.files.len());
        for file in self.files {
            let after = snapshot(&file.path, file.validator.as_ref(), self.file_cap);
            observed.push(FileObservation {
                name: file.name,
                path: file.path,
                before: Some(file.before),
                after,
                black_box: Some(file.counts),
            });
        }
        let folder_watches: Vec<WatchDescriptor> = self.folders.iter().map(|f| f.wd.clone()).collect();
        let mut folders = Vec::with_capacity(self.folders.len());
        for folder in self.folders {
            let after =
                listing(&folder.path).map_err(|source| BlackBoxError::File { path: folder.path.clone(), source })?;
            folders.push(FolderObservation {
                name: folder.name,
                path: folder.path,
                before: folder.before,
                after,
                events: folder.events,
            });
        }
        let watches = self.by_name.into_keys().map(|(wd, _)| wd).chain(folder_watches);
        recycle(self.inotify, watches);
        Ok(Seen { files: observed, folders, overflowed: self.overflowed })
    }
}

/// Idle inotify instances, without watches, for the next run.
static POOL: Mutex<Vec<Inotify>> = Mutex::new(Vec::new());

/// The most idle instances kept (each counts against the per-user limit, 128 by default).
const POOL_MAX: usize = 16;

/// Returns `inotify` to the pool after removing its watches. Closing an inotify descriptor
/// waits for an RCU grace period in the kernel (`synchronize_srcu`): several milliseconds, ten
/// times a whole do-nothing run. Watch descriptors are never reused by an instance, so events
/// of a past run left in its queue match nothing of the next.
fn recycle(mut inotify: Inotify, watches: impl Iterator<Item = WatchDescriptor>) {
    let mut watcher = inotify.watches();
    for wd in watches {
        let _ = watcher.remove(wd);
    }
    // Empty the queue (the removals' IN_IGNORED, any late event), so no overflow carries over.
    let mut buffer = [0u8; 4096];
    while inotify.read_events(&mut buffer).is_ok_and(|events| events.count() > 0) {}
    if let Ok(mut pool) = POOL.lock()
        && pool.len() < POOL_MAX
    {
        pool.push(inotify);
        return;
    }
    crate::cleanup::later(inotify);
}

/// The state of `path` now, read without following a symlink, without blocking on a FIFO, and
/// only when it is a regular file of at most `cap` bytes (hashed as a stream; the validator sees
/// the bytes). Anything else is a snapshot that says why its content was not read.
pub fn snapshot(path: &Path, validator: Option<&Validator>, cap: u64) -> FileSnapshot {
    use rustix::fs::{FileType, Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return FileSnapshot::absent(),
        Err(rustix::io::Errno::LOOP) => return FileSnapshot::unreadable(0, "a symbolic link (never followed)"),
        Err(e) => return FileSnapshot::unreadable(0, format!("cannot open: {}", io::Error::from(e))),
    };
    let stat = match rustix::fs::fstat(&fd) {
        Ok(stat) => stat,
        Err(e) => return FileSnapshot::unreadable(0, format!("cannot stat: {}", io::Error::from(e))),
    };
    let size = u64::try_from(stat.st_size).unwrap_or(0);
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => {}
        FileType::Fifo => return FileSnapshot::unreadable(size, "a FIFO, not a regular file"),
        FileType::Directory => return FileSnapshot::unreadable(size, "a folder, not a regular file"),
        other => return FileSnapshot::unreadable(size, format!("not a regular file ({other:?})")),
    }
    if size > cap {
        return FileSnapshot::unreadable(size, format!("{size} bytes, over the harness's limit of {cap} bytes"));
    }
    let mut hasher = blake3::Hasher::new();
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read: u64 = 0;
    loop {
        let n = match rustix::io::read(&fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return FileSnapshot::unreadable(size, format!("cannot read: {}", io::Error::from(e))),
        };
        read += n as u64;
        if read > cap {
            return FileSnapshot::unreadable(read, format!("grew past the harness's limit of {cap} bytes"));
        }
        hasher.update(&buf[..n]);
        if validator.is_some() || size <= TEXT_KEPT {
            bytes.extend_from_slice(&buf[..n]);
        }
    }
    FileSnapshot {
        exists: true,
        size: read,
        hash: Some(hasher.finalize().to_hex().to_string()),
        validity: validator.map(|validate| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| validate(&bytes)))
                .unwrap_or_else(|_| Err("the validator panicked".into()))
        }),
        content: (read <= TEXT_KEPT).then(|| String::from_utf8_lossy(&bytes).into_owned()),
        unreadable: None,
    }
}

/// The most entries listed per folder under test.
const MAX_LISTING: usize = 100_000;

/// The names of the entries of `dir` (at most [`MAX_LISTING`]; beyond it, one entry says so).
fn listing(dir: &Path) -> io::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        if names.len() == MAX_LISTING {
            names.insert(format!("... (over {MAX_LISTING} entries, not listed)"));
            break;
        }
        names.insert(entry?.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Writes `bytes` to `path` (created or truncated) with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)
}
