//! The cache file on disk: load without the lock, set aside a damaged file, clean up a crashed
//! save's temp files, and save by lock, re-read, merge, write temp, rename.
//!
//! Every operation goes through the folder handle of a [`CacheLocation`] (no path is resolved
//! twice, no symlink followed, no FIFO opened blocking). Opening reads the file without the lock:
//! saves replace it by an atomic rename, so a reader sees the old or the new file, never a mix.
//! What must not race a save (removing temp files, setting a damaged file aside) is done only
//! with `<path>.lock` held; opening only *tries* the lock for it and skips it when the lock is
//! busy (a save that later finds the damaged file sets it aside under its own lock).
//!
//! # Design note: the cost of a save (issue #12, item 6)
//!
//! A save rewrites the whole file under one global lock, so its lock hold time grows with the
//! cache while the lock timeout does not. What this module would become next, in order:
//!
//! 1. *Append-only segments.* A save writes only this handle's dirty entries as a new,
//!    self-checksummed segment file `<name>.seg-<generation>-<random>` (O_EXCL temp, fsync,
//!    rename), then appends its name to a small manifest under the lock (rewrite-and-rename of
//!    the manifest, a few bytes per segment). The lock is held for the manifest only: its cost is
//!    O(segments), not O(bytes), so 64 writers on a 50 MB cache each hold it for microseconds and
//!    none times out. A reader loads the manifest, then each segment it names, without a lock.
//! 2. *Compaction* when the segment count passes a bound: one saver (try-lock, never waiting)
//!    merges the segments into a new base file and a new manifest, renamed into place; old
//!    segments are unlinked after the rename. Readers holding an old manifest still read
//!    old-but-complete data (segments are immutable until unlinked; an unlinked open file stays
//!    readable).
//! 3. The contract stays: one save per handle (one segment), atomic (the manifest rename is the
//!    commit point), old-or-new after a crash (an unreferenced segment is garbage, removed by the
//!    next compaction), no committed entry lost (the manifest is merged under the lock).
//!
//! Until then, merging stays whole-file and the lock wait stays bounded by `lock_timeout`.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use bytes::Bytes;
use rustix::fs::FileType;
#[cfg(feature = "failpoints")]
use rustix::fs::{Mode, OFlags};

use crate::error::CacheError;
use crate::eviction::{self, Candidate, EvictReason, EvictionPolicy};
use crate::format::{self, Entry, EntryMeta, FormatError, FormatLimits};
use crate::key::KernelKey;
use crate::location::{self, CacheLocation};
use crate::lock::FileLock;
use crate::observer::{self, Event};
use crate::seam;

/// How many set-aside (`<path>.corrupt-<n>`) files are kept: setting aside one more removes
/// the oldest beyond this count, so a cache corrupted on every run does not fill its folder.
pub const SET_ASIDE_KEPT: usize = 3;

/// How hard a save works to survive a power loss (a process crash is always survived: the file is
/// replaced by an atomic rename).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: survives any process crash, not a power loss.
    None,
    /// fsync the new file before the rename (the default).
    #[default]
    SyncFile,
    /// Also fsync the folder after the rename, so the rename itself is durable.
    SyncFileAndFolder,
}

impl Durability {
    /// Whether a save fsyncs the new file before renaming it into place.
    fn syncs_file(self) -> bool {
        self != Durability::None
    }

    /// Whether a save fsyncs the folder after the rename.
    fn syncs_folder(self) -> bool {
        self == Durability::SyncFileAndFolder
    }
}

/// Identifies one version of the cache file: a save renames a new inode into place, so a changed
/// stamp means another process saved since we last looked. The file's own checksum (its last 8
/// bytes) is part of the stamp, so a recycled inode number within one mtime tick cannot pass for
/// the file we saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    trailer: [u8; 8],
}

impl FileStamp {
    fn of(metadata: &fs::Metadata, trailer: [u8; 8]) -> Self {
        Self {
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
            trailer,
        }
    }

    /// Whether the file was saved by someone else since we saw `last_seen` (so a save must
    /// re-read and merge it). `current` is `None` when there is no file.
    fn changed(current: Option<Self>, last_seen: Option<Self>) -> bool {
        current.is_some() && current != last_seen
    }

    /// The stamp of the cache file now (`None` if it does not exist): one `fstat` and one 8-byte
    /// read, through the folder handle, refusing a symlink or a non-file (never blocking on a FIFO).
    fn read(location: &CacheLocation) -> Result<Option<Self>, CacheError> {
        let path = location.path();
        let Some(file) = location.open_existing(location.name(), "inspect")? else { return Ok(None) };
        let metadata = file.metadata().map_err(|source| CacheError::io("inspect", path, source))?;
        let mut trailer = [0u8; 8];
        if metadata.len() >= 8 {
            file.read_exact_at(&mut trailer, metadata.len() - 8)
                .map_err(|source| CacheError::io("inspect", path, source))?;
        }
        Ok(Some(Self::of(&metadata, trailer)))
    }
}

/// The last 8 bytes of `bytes` (the checksum trailer of a well-formed file).
fn trailer_of(bytes: &[u8]) -> [u8; 8] {
    let mut trailer = [0u8; 8];
    if let Some(tail) = bytes.len().checked_sub(8).map(|start| &bytes[start..]) {
        trailer.copy_from_slice(tail);
    }
    trailer
}

/// An entry as a handle holds it: its artifact and the metadata the file keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Stored {
    pub(crate) artifact: Bytes,
    pub(crate) meta: EntryMeta,
}

/// The file's content as last read.
pub(crate) struct OnDisk {
    pub(crate) entries: Vec<Entry>,
    pub(crate) stamp: Option<FileStamp>,
    /// Why the file could not be taken whole (over this process's size limit): the next save
    /// replaces it.
    pub(crate) over_limit: Option<String>,
}

impl OnDisk {
    fn empty() -> Self {
        Self { entries: Vec::new(), stamp: None, over_limit: None }
    }
}

/// Refuses a cache path that is a symlink, not a regular file, or an untrusted file, before
/// anything is written next to it (the lock file, the clean-up of temp files).
pub(crate) fn check_path(location: &CacheLocation) -> Result<(), CacheError> {
    let path = location.path();
    match location.stat(location.name()) {
        Ok(None) => Ok(()),
        Ok(Some(stat)) if stat.file_type == FileType::Symlink => Err(CacheError::Symlink { path: path.to_owned() }),
        Ok(Some(stat)) if stat.file_type != FileType::RegularFile => {
            Err(CacheError::NotAFile { path: path.to_owned() })
        }
        Ok(Some(stat)) => location::check_file(path, stat.uid, stat.mode),
        Err(source) => Err(CacheError::io("inspect", path, source)),
    }
}

/// Loads the file at open time, without waiting for the lock: reads and decodes the file (no lock
/// needed: saves rename whole files into place). Then, only if the lock is free right now, removes
/// leftover temp files and sets a damaged file aside as `<path>.corrupt-<n>` (starting cold).
/// A file of another version is an error and is left alone. A file over this process's
/// `max_file_bytes` is not read (cold start; the next save replaces it); one over the count or
/// artifact limits is loaded whole (its size is within bounds) for the caller to trim.
pub(crate) fn load(location: &CacheLocation, limits: &FormatLimits) -> Result<OnDisk, CacheError> {
    let path = location.path();
    let read = read_trusted(location, limits)?;
    let decoded = match &read {
        FileRead::Bytes(bytes, _) => {
            fail::fail_point!("parse", |_| Err(CacheError::io("decode", path, seam::injected("parse"))));
            Some(format::decode_lenient(bytes))
        }
        FileRead::Missing | FileRead::TooLarge { .. } => None,
    };
    if let Some(Err(reason @ FormatError::UnsupportedVersion { .. })) = decoded {
        // Valid for another build: not ours to set aside, nor to overwrite.
        return Err(CacheError::Unsupported { path: path.to_owned(), source: reason });
    }
    let lock = match FileLock::try_acquire(location) {
        Ok(lock) => lock,
        Err(error) => {
            log::warn!(target: "runtime_cache", "{}: no clean-up at open: {error}", path.display());
            None
        }
    };
    if lock.is_some() {
        remove_leftover_temps(location);
    }
    match (read, decoded) {
        (FileRead::Bytes(_, stamp), Some(Ok(entries))) => Ok(OnDisk { entries, stamp: Some(stamp), over_limit: None }),
        (FileRead::Bytes(_, stamp), Some(Err(reason))) => {
            if lock.is_some() {
                set_aside(location, &stamp, &reason)?;
            } else {
                log::warn!(target: "runtime_cache", "{} is corrupt ({reason}); starting cold, a save will set it aside", path.display());
            }
            Ok(OnDisk::empty())
        }
        (FileRead::TooLarge { size }, _) => Ok(OnDisk {
            over_limit: Some(format!(
                "the file is {size} bytes, over max_file_bytes {}: not read; the next save replaces it",
                limits.max_file_bytes
            )),
            ..OnDisk::empty()
        }),
        _ => Ok(OnDisk::empty()),
    }
}

/// Reads and decodes the current file (lock held); a damaged one is set aside and reads as empty,
/// and one over the size limit reads as empty (the save replaces it: it is trimmed).
fn read_merging_view(location: &CacheLocation, limits: &FormatLimits) -> Result<OnDisk, CacheError> {
    let path = location.path();
    let (bytes, stamp) = match read_trusted(location, limits)? {
        FileRead::Missing => return Ok(OnDisk::empty()),
        FileRead::TooLarge { size } => {
            let detail = format!(
                "the file is {size} bytes, over max_file_bytes {}: replaced by this save",
                limits.max_file_bytes
            );
            log::warn!(target: "runtime_cache", "{}: {detail}", path.display());
            observer::emit(|| Event::OverLimits { path: path.to_owned(), detail: detail.clone() });
            return Ok(OnDisk { over_limit: Some(detail.clone()), ..OnDisk::empty() });
        }
        FileRead::Bytes(bytes, stamp) => (bytes, stamp),
    };
    fail::fail_point!("parse", |_| Err(CacheError::io("decode", path, seam::injected("parse"))));
    match format::decode_lenient(&bytes) {
        Ok(entries) => Ok(OnDisk { entries, stamp: Some(stamp), over_limit: None }),
        // Valid for another build: not ours to set aside, nor to overwrite.
        Err(reason @ FormatError::UnsupportedVersion { .. }) => {
            Err(CacheError::Unsupported { path: path.to_owned(), source: reason })
        }
        Err(reason) => {
            set_aside(location, &stamp, &reason)?;
            Ok(OnDisk::empty())
        }
    }
}

/// Sets the damaged file aside (lock held) if the name still holds the file we read, reporting
/// it to the log and the observer.
fn set_aside(location: &CacheLocation, read: &FileStamp, reason: &FormatError) -> Result<(), CacheError> {
    let path = location.path();
    let current = location.stat(location.name()).map_err(|source| CacheError::io("inspect", path, source))?;
    if !current.is_some_and(|now| now.dev == read.dev && now.ino == read.ino) {
        // Replaced since we read it (by a save that did not hold the lock we hold: a defect
        // variant, or a non-cooperating writer): not the file we judged.
        return Ok(());
    }
    let moved_to = quarantine(location)?;
    log::warn!(target: "runtime_cache", "{} is corrupt ({reason}); set aside as {}", path.display(), moved_to.display());
    observer::emit(|| Event::Quarantined {
        path: path.to_owned(),
        moved_to: moved_to.clone(),
        reason: reason.to_string(),
    });
    Ok(())
}

/// What reading the cache file found.
enum FileRead {
    Missing,
    /// Over `max_file_bytes` by its `fstat` size: not read.
    TooLarge {
        size: u64,
    },
    Bytes(Bytes, FileStamp),
}

/// The file's bytes and stamp. Opened relative to the folder handle, `O_NOFOLLOW | O_NONBLOCK`;
/// refuses anything but a regular file, and a file another user owns or that group/others can
/// write, from `fstat` on the descriptor it reads; one over the size limit is not read.
fn read_trusted(location: &CacheLocation, limits: &FormatLimits) -> Result<FileRead, CacheError> {
    fail::fail_point!("read", |_| Err(CacheError::io("read", location.path(), seam::injected("read"))));
    let path = location.path();
    let Some(file) = location.open_existing(location.name(), "read")? else { return Ok(FileRead::Missing) };
    let metadata = file.metadata().map_err(|source| CacheError::io("read", path, source))?;
    location::check_file(path, metadata.uid(), metadata.mode())?;
    if metadata.len() > limits.max_file_bytes {
        return Ok(FileRead::TooLarge { size: metadata.len() });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // `take` bounds the read even if the file grows under us (a non-cooperating writer).
    (&file)
        .take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| CacheError::io("read", path, source))?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Ok(FileRead::TooLarge { size: bytes.len() as u64 });
    }
    let stamp = FileStamp::of(&metadata, trailer_of(&bytes));
    Ok(FileRead::Bytes(Bytes::from(bytes), stamp))
}

/// The `n` of a set-aside file name `<name>.corrupt-<n>`.
fn set_aside_number(candidate: &OsStr, prefix: &OsStr) -> Option<u64> {
    let digits = candidate.as_bytes().strip_prefix(prefix.as_bytes())?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Moves the file to `<path>.corrupt-<n>` (one more than the highest there), byte-exact (a hard
/// link, then unlink: the link fails rather than overwrite an earlier set-aside file), then
/// removes the oldest set-aside files beyond [`SET_ASIDE_KEPT`].
fn quarantine(location: &CacheLocation) -> Result<PathBuf, CacheError> {
    let path = location.path();
    let prefix = location.sibling(".corrupt-");
    let names = location.names().map_err(|source| CacheError::io("list the folder of", path, source))?;
    let mut numbers: Vec<u64> = names.iter().filter_map(|name| set_aside_number(name, &prefix)).collect();
    let mut next = numbers.iter().max().map_or(0, |highest| highest.saturating_add(1));
    let moved_to = loop {
        let mut target = prefix.clone();
        target.push(next.to_string());
        match location.link(location.name(), &target) {
            Ok(()) => {
                location.unlink(location.name()).map_err(|source| CacheError::io("set aside", path, source))?;
                numbers.push(next);
                break location.path_of(&target);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && next < u64::MAX => next += 1,
            Err(source) => return Err(CacheError::io("set aside", path, source)),
        }
    };
    numbers.sort_unstable_by(|a, b| b.cmp(a));
    for old in numbers.into_iter().skip(SET_ASIDE_KEPT) {
        let mut name = prefix.clone();
        name.push(old.to_string());
        if location.stat(&name).ok().flatten().is_some_and(|stat| stat.is_own_file()) {
            let _ = location.unlink(&name);
        }
    }
    Ok(moved_to)
}

/// The prefix of this cache's temp files: `.<file name>.tmp-`, in the same folder.
fn temp_prefix(location: &CacheLocation) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(location.name());
    prefix.push(".tmp-");
    prefix
}

/// Removes temp files a crashed save left behind: exactly `<prefix><10 letters or digits>`,
/// regular files this user owns. Safe because the lock is held: no cooperating process is
/// saving right now.
fn remove_leftover_temps(location: &CacheLocation) {
    let prefix = temp_prefix(location);
    let Ok(names) = location.names() else { return };
    let removed = names
        .iter()
        .filter(|name| location::is_temp_name(name, &prefix))
        .filter(|name| location.stat(name).ok().flatten().is_some_and(|stat| stat.is_own_file()))
        .filter(|name| location.unlink(name).is_ok())
        .count();
    if removed > 0 {
        observer::emit(|| Event::TempFilesRemoved { path: location.path().to_owned(), count: removed });
    }
}

/// A save's write buffer: artifacts are copied into it and written in 2 MiB `write(2)`s. Fewer,
/// larger writes measured 6 ms faster than 256 KiB ones on a 64 MiB cache (`benches/save_load.rs`).
const WRITE_BUFFER: usize = 2 << 20;

/// What a committed save wrote.
pub(crate) struct Committed {
    /// Entries other processes had saved since we last looked, now merged into the file.
    pub(crate) merged_from_disk: Vec<(KernelKey, Stored)>,
    /// Entries the save dropped (ours or the file's), and why.
    pub(crate) evicted: Vec<(KernelKey, EvictReason)>,
    /// Entries in the file now.
    pub(crate) entries: usize,
    /// Size of the file now.
    pub(crate) bytes: u64,
    /// The new file's stamp.
    pub(crate) stamp: Option<FileStamp>,
}

/// What a handle brings to a save.
pub(crate) struct SaveInput<'a> {
    /// Every entry the handle holds.
    pub(crate) ours: &'a HashMap<KernelKey, Stored>,
    /// Keys removed since the last save: not merged back from the file.
    pub(crate) removed: &'a HashSet<KernelKey>,
    /// A `clear()` is pending: nothing is merged back from the file.
    pub(crate) cleared: bool,
    /// Compiler tag -> current build tag, for every compiler this process uses here.
    pub(crate) builds: &'a HashMap<u64, u64>,
    /// The file as this handle last saw it.
    pub(crate) last_seen: Option<FileStamp>,
}

/// Saves with the lock held: re-reads the file if another process saved since `last_seen`,
/// merges (union; ours win on a key both hold, with the later last use; removed keys stay out),
/// evicts per `limits` and `policy`, writes a uniquely named temp file (`O_EXCL`) in the same
/// folder, and renames it into place, every step relative to the folder handle.
pub(crate) fn save(
    location: &CacheLocation,
    limits: &FormatLimits,
    policy: &EvictionPolicy,
    durability: Durability,
    input: SaveInput<'_>,
) -> Result<Committed, CacheError> {
    let path = location.path();
    let current = FileStamp::read(location)?;
    // Seam skip-merge: never re-read, so the last writer wins.
    let disk = if !input.cleared && FileStamp::changed(current, input.last_seen) && !seam::active!("skip-merge") {
        read_merging_view(location, limits)?.entries
    } else {
        Vec::new()
    };
    let mut candidates: HashMap<KernelKey, Candidate> = input
        .ours
        .iter()
        .map(|(key, stored)| (*key, Candidate { key: *key, meta: stored.meta, artifact: stored.artifact.clone() }))
        .collect();
    let mut from_disk = HashSet::new();
    for entry in disk {
        if input.removed.contains(&entry.key) {
            continue;
        }
        match candidates.get_mut(&entry.key) {
            Some(ours) => ours.meta.last_used = ours.meta.last_used.max(entry.meta.last_used),
            None => {
                from_disk.insert(entry.key);
                candidates.insert(entry.key, Candidate { key: entry.key, meta: entry.meta, artifact: entry.artifact });
            }
        }
    }
    let (kept, evicted) =
        eviction::evict(candidates.into_values().collect(), limits, policy, input.builds, eviction::now_secs());
    let merged_from_disk: Vec<(KernelKey, Stored)> = kept
        .iter()
        .filter(|candidate| from_disk.contains(&candidate.key))
        .map(|c| (c.key, Stored { artifact: c.artifact.clone(), meta: c.meta }))
        .collect();

    #[cfg(feature = "failpoints")]
    if seam::active!("write-in-place") {
        return save_in_place(location, &kept, merged_from_disk, evicted);
    }
    let temp = TempFile::create(location)?;
    let temp_path = location.path_of(&temp.name);
    fail::fail_point!("save-after-temp-created", |_| {
        Err(CacheError::io("write", &temp_path, seam::injected("save-after-temp-created")))
    });

    let bytes = {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, MidWriteFailpoint::new(&temp.file));
        let all = kept.iter().map(|c| (&c.key, &c.meta, &c.artifact));
        let bytes =
            format::encode_entries(&mut out, all).map_err(|source| CacheError::io("write", &temp_path, source))?;
        out.flush().map_err(|source| CacheError::io("write", &temp_path, source))?;
        bytes
    };
    if durability.syncs_file() {
        temp.file.sync_all().map_err(|source| CacheError::io("sync", &temp_path, source))?;
    }
    fail::fail_point!("save-before-rename", |_| {
        Err(CacheError::io("rename into", path, seam::injected("save-before-rename")))
    });
    temp.persist()?;
    fail::fail_point!("save-after-rename", |_| {
        Err(CacheError::io("rename into", path, seam::injected("save-after-rename")))
    });
    if durability.syncs_folder()
        && let Err(error) = location.sync()
    {
        // The new file is in place whatever happens now: the save is committed, only its
        // durability across a power loss is in doubt.
        log::warn!(target: "runtime_cache", "saved {}, but syncing its folder failed: {error}", path.display());
    }
    let stamp = FileStamp::read(location).ok().flatten();
    Ok(Committed { entries: kept.len(), bytes, merged_from_disk, evicted, stamp })
}

/// A save's temp file: removed when dropped unless [`persist`](Self::persist) renamed it into place.
struct TempFile<'a> {
    location: &'a CacheLocation,
    name: OsString,
    file: File,
    persisted: bool,
}

impl<'a> TempFile<'a> {
    fn create(location: &'a CacheLocation) -> Result<Self, CacheError> {
        let (name, file) = location.create_temp(&temp_prefix(location))?;
        Ok(Self { location, name, file, persisted: false })
    }

    /// Renames the temp file over the cache file (atomic; a symlink there is replaced, not followed).
    fn persist(mut self) -> Result<(), CacheError> {
        self.location
            .rename(&self.name, self.location.name())
            .map_err(|source| CacheError::io("rename into", self.location.path(), source))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = self.location.unlink(&self.name);
        }
    }
}

/// The `write-in-place` seam: truncates the cache file and rewrites it where it is, so a crash
/// mid-write leaves it torn.
#[cfg(feature = "failpoints")]
fn save_in_place(
    location: &CacheLocation,
    kept: &[Candidate],
    merged_from_disk: Vec<(KernelKey, Stored)>,
    evicted: Vec<(KernelKey, EvictReason)>,
) -> Result<Committed, CacheError> {
    let path = location.path();
    let fd = rustix::fs::openat(
        location.folder_fd(),
        location.name(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|error| CacheError::io("open", path, io::Error::from_raw_os_error(error.raw_os_error())))?;
    let file = File::from(fd);
    let all = kept.iter().map(|c| (&c.key, &c.meta, &c.artifact));
    let mut out = BufWriter::new(MidWriteFailpoint::new(&file));
    let bytes = format::encode_entries(&mut out, all).map_err(|source| CacheError::io("write", path, source))?;
    out.flush().map_err(|source| CacheError::io("write", path, source))?;
    let stamp = FileStamp::read(location).ok().flatten();
    Ok(Committed { entries: kept.len(), bytes, merged_from_disk, evicted, stamp })
}

/// Fires the `save-mid-write` failpoint once, half-way through the first write that reaches the
/// temp file: a crash there leaves a torn temp file, which must never become the cache file.
struct MidWriteFailpoint<W> {
    inner: W,
    #[cfg_attr(not(feature = "failpoints"), expect(dead_code, reason = "read only with failpoints"))]
    fired: bool,
}

impl<W> MidWriteFailpoint<W> {
    fn new(inner: W) -> Self {
        Self { inner, fired: false }
    }
}

impl<W: Write> Write for MidWriteFailpoint<W> {
    #[cfg(feature = "failpoints")]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.fired || buf.len() < 2 {
            return self.inner.write(buf);
        }
        // Write half of the first chunk, then fire: the temp file is now genuinely torn.
        self.fired = true;
        let written = self.inner.write(&buf[..buf.len() / 2])?;
        fail::fail_point!("save-mid-write", |_| Err(io::Error::other("failpoint save-mid-write fired")));
        Ok(written)
    }

    #[cfg(not(feature = "failpoints"))]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
