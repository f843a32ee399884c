//! The cache file on disk: load without the lock, set aside a damaged file, clean up a crashed
//! rewrite's temp files, and save by appending one frame (or, now and then, by a full rewrite).
//!
//! Every operation goes through the folder handle of a [`CacheLocation`] (no path is resolved
//! twice, no symlink followed, no FIFO opened blocking). Opening reads the file without the lock:
//! a save either appends a sealed frame, whose torn or in-flight tail a reader ignores (see
//! [`crate::format`]), or renames a whole new file into place, so a reader sees the old or the new
//! content, never a mix. What must not race a save (removing temp files, setting a damaged file
//! aside) is done only with `<path>.lock` held; opening only *tries* the lock for it and skips it
//! when the lock is busy (a save that later finds the damaged file sets it aside under its own
//! lock).
//!
//! # The cost of a save (issue #12, item 6): an append-only log in the one cache file
//!
//! A save used to rewrite the whole file under the lock, so its lock hold time grew with the
//! cache while the lock timeout did not (16 processes on a 50 MB cache: 12 failed opens, 2 failed
//! saves). Now a save, under `<path>.lock`, opens the file through the folder handle *after*
//! taking the lock (a full rewrite renames a new inode into place under the same lock, so no
//! append ever goes to an unlinked inode), reads the 40-byte header, reads only the frames other
//! processes appended since this handle last looked (its [`DiskView`]), and writes one frame with
//! the entries this handle added (`fallocate` first, so a full disk or a file-size limit fails
//! before a byte is written; a failed write is truncated away), then fsyncs per [`Durability`].
//! Its lock hold time is O(new bytes): what it adds and what others added since it last looked.
//!
//! A full rewrite (the former save: read, merge, evict, temp file, fsync, rename) happens when
//! there is no valid version-3 file (missing, version 1 or 2, damaged, over the size limit), when
//! the tail is torn (a crashed append: the rewrite drops it), when the save carries removals or a
//! `clear()`, when the merged entries would be evicted (limits, age, other builds), when
//! [`MAX_APPENDED_FRAMES`] frames were appended since the last rewrite, or when more than half the
//! file (and over [`DEAD_BYTES_FLOOR`]) is superseded entries. Every rewrite resets the frame count,
//! so the amortised cost stays bounded.
//!
//! Why one file and not segment files beside it with a manifest: the cache's folder would hold
//! many files, and every reader of the folder (the harness's folder and cache oracles, the
//! clean-up of temp and set-aside files) would have to learn them; one file keeps "the cache is
//! this file" true.
//!
//! Crash points of an append, and why old-or-new holds: killed before the write, the file is
//! untouched (old); killed in the middle of the write, or a power loss after it but before the
//! fsync (a size extended with zeros, a partly written frame), the last frame is invalid and every
//! reader ignores it (old), and the next save finds it (its view ends before it) and rewrites the
//! file without it; killed after the write, the frame is whole and sealed (new). A frame is only
//! ever appended after a tail this process read and verified, so an invalid frame followed by a
//! valid one can only be damage, which readers set aside.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;

use bytes::Bytes;
use rustix::fs::{FallocateFlags, FileType};
#[cfg(feature = "failpoints")]
use rustix::fs::{Mode, OFlags};

use crate::error::CacheError;
use crate::eviction::{self, Candidate, EvictReason, EvictionPolicy};
use crate::format::{self, Entry, EntryMeta, FormatError, FormatLimits, HeaderKind, Log};
use crate::key::KernelKey;
use crate::location::{self, CacheLocation};
use crate::lock::FileLock;
use crate::observer::{self, Event};
use crate::seam;

/// How many set-aside (`<path>.corrupt-<n>`) files are kept: setting aside one more removes
/// the oldest beyond this count, so a cache corrupted on every run does not fill its folder.
pub const SET_ASIDE_KEPT: usize = 3;

/// How hard a save works to survive a power loss (a process crash is always survived: an append's
/// torn frame is ignored by readers, a full rewrite is an atomic rename).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// No fsync: survives any process crash, not a power loss.
    None,
    /// fsync the file after an append, and the new file before a rewrite's rename (the default).
    #[default]
    SyncFile,
    /// Also fsync the folder after a rewrite's rename, so the rename itself is durable.
    SyncFileAndFolder,
}

impl Durability {
    /// Whether a save fsyncs what it wrote (the appended frame, or the new file before its rename).
    fn syncs_file(self) -> bool {
        self != Durability::None
    }

    /// Whether a save fsyncs the folder after the rename.
    fn syncs_folder(self) -> bool {
        self == Durability::SyncFileAndFolder
    }
}

/// Which inode a name held when it was read (to set aside only the file that was judged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileIdentity {
    dev: u64,
    ino: u64,
}

impl FileIdentity {
    fn of(metadata: &fs::Metadata) -> Self {
        Self { dev: metadata.dev(), ino: metadata.ino() }
    }
}

/// Frames appended since the last full rewrite after which a save rewrites the file.
pub const MAX_APPENDED_FRAMES: u64 = 64;

/// Superseded bytes below which a save never rewrites the file for them alone.
pub const DEAD_BYTES_FLOOR: u64 = 1 << 20;

/// Where a handle's view of a version-3 file ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LogPosition {
    file: FileIdentity,
    header: format::Header,
    /// The end of the last frame this handle read and verified.
    valid_end: u64,
    next_sequence: u64,
    appended_frames: u64,
}

/// What an entry in the file is, for deciding whether an append must become a rewrite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Indexed {
    meta: EntryMeta,
    len: u64,
}

/// What a handle knows of its file: which file (inode and header), how far it has read it, and
/// every key in it with its metadata and size. A save reads only what lies past `valid_end` in
/// the same file, and decides from the index, without re-reading the file, whether an append
/// keeps it within the limits and the eviction policy.
#[derive(Debug, Default)]
pub(crate) struct DiskView {
    position: Option<LogPosition>,
    index: HashMap<KernelKey, Indexed>,
    /// Bytes the entries of `index` take in a fully rewritten file.
    live_bytes: u64,
}

impl DiskView {
    /// The view of a decoded version-3 file (an empty view for versions 1 and 2: the next save
    /// rewrites them).
    fn of(log: &Log, file: FileIdentity) -> Self {
        let Some(header) = log.header else { return Self::default() };
        let mut view = Self {
            position: Some(LogPosition {
                file,
                header,
                valid_end: log.valid_end,
                next_sequence: log.next_sequence,
                appended_frames: log.appended_frames,
            }),
            index: HashMap::with_capacity(log.entries.len()),
            live_bytes: format::FILE_OVERHEAD,
        };
        view.learn(log.entries.iter().map(|entry| (entry.key, entry.meta, entry.artifact.len() as u64)));
        view
    }

    /// Records entries now in the file (a later frame's replace an earlier one's).
    fn learn(&mut self, entries: impl IntoIterator<Item = (KernelKey, EntryMeta, u64)>) {
        for (key, meta, len) in entries {
            if let Some(old) = self.index.insert(key, Indexed { meta, len }) {
                self.live_bytes -= format::ENTRY_OVERHEAD + old.len;
            }
            self.live_bytes += format::ENTRY_OVERHEAD + len;
        }
    }
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
    pub(crate) view: DiskView,
    /// Why the file could not be taken whole (over this process's size limit): the next save
    /// replaces it.
    pub(crate) over_limit: Option<String>,
}

impl OnDisk {
    fn empty() -> Self {
        Self { entries: Vec::new(), view: DiskView::default(), over_limit: None }
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
/// needed: an append in flight is an invalid last frame, ignored; a rewrite renames a whole file). Then, only if the lock is free right now, removes
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
        (FileRead::Bytes(_, file), Some(Ok(log))) => {
            Ok(OnDisk { view: DiskView::of(&log, file), entries: log.entries, over_limit: None })
        }
        (FileRead::Bytes(_, file), Some(Err(reason))) => {
            if lock.is_some() {
                set_aside(location, &file, &reason)?;
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

/// The entries of the current file, for a rewrite to merge (lock held): a damaged file is set
/// aside and one over the size limit is not read (the rewrite replaces it), and both give none.
fn read_for_merge(location: &CacheLocation, limits: &FormatLimits) -> Result<Vec<Entry>, CacheError> {
    let path = location.path();
    let (bytes, file) = match read_trusted(location, limits)? {
        FileRead::Missing => return Ok(Vec::new()),
        FileRead::TooLarge { size } => {
            let detail = format!(
                "the file is {size} bytes, over max_file_bytes {}: replaced by this save",
                limits.max_file_bytes
            );
            log::warn!(target: "runtime_cache", "{}: {detail}", path.display());
            observer::emit(|| Event::OverLimits { path: path.to_owned(), detail: detail.clone() });
            return Ok(Vec::new());
        }
        FileRead::Bytes(bytes, file) => (bytes, file),
    };
    fail::fail_point!("parse", |_| Err(CacheError::io("decode", path, seam::injected("parse"))));
    match format::decode_lenient(&bytes) {
        Ok(log) => Ok(log.entries),
        // Valid for another build: not ours to set aside, nor to overwrite.
        Err(reason @ FormatError::UnsupportedVersion { .. }) => {
            Err(CacheError::Unsupported { path: path.to_owned(), source: reason })
        }
        Err(reason) => {
            set_aside(location, &file, &reason)?;
            Ok(Vec::new())
        }
    }
}

/// Sets the damaged file aside (lock held) if the name still holds the file we read, reporting
/// it to the log and the observer.
fn set_aside(location: &CacheLocation, read: &FileIdentity, reason: &FormatError) -> Result<(), CacheError> {
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
    Bytes(Bytes, FileIdentity),
}

/// The file's bytes and identity. Opened relative to the folder handle, `O_NOFOLLOW | O_NONBLOCK`;
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
    // Only the length `fstat` gave: a reader takes no lock, and saves may append while it reads.
    // Every frame below that length was reserved before the `fstat`, so at most the last one can
    // still be in flight (its reserved space reads as a torn tail, which readers ignore). Reading
    // on to the end could take a later frame too, after an unwritten one: damage in the middle,
    // where every save committed in order. It also bounds the read if a non-cooperating writer
    // grows the file.
    (&file).take(metadata.len()).read_to_end(&mut bytes).map_err(|source| CacheError::io("read", path, source))?;
    Ok(FileRead::Bytes(Bytes::from(bytes), FileIdentity::of(&metadata)))
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

/// A save's largest write buffer: artifacts are copied into it and written in `write(2)`s of up
/// to 2 MiB (a smaller file in one, with a buffer of its size). Fewer, larger writes measured
/// 6 ms faster than 256 KiB ones on a 64 MiB cache (`benches/save_load.rs`).
const WRITE_BUFFER: usize = 2 << 20;

/// What a committed save wrote.
pub(crate) struct Committed {
    /// Entries other processes had saved since we last looked, now known to this handle.
    pub(crate) merged_from_disk: Vec<(KernelKey, Stored)>,
    /// Entries the save dropped (ours or the file's), and why.
    pub(crate) evicted: Vec<(KernelKey, EvictReason)>,
    /// Entries in the file now.
    pub(crate) entries: usize,
    /// Size of the file now.
    pub(crate) bytes: u64,
    /// How the save wrote: one frame appended, or the whole file rewritten.
    pub(crate) how: SaveKind,
}

/// How a save wrote the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaveKind {
    /// One frame with this handle's new entries, appended to the file.
    Appended,
    /// A new file (merged, evicted, compacted) renamed into place.
    Rewritten,
}

impl std::fmt::Display for SaveKind {
    /// `appended` or `rewritten`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SaveKind::Appended => "appended",
            SaveKind::Rewritten => "rewritten",
        })
    }
}

/// What a handle brings to a save.
pub(crate) struct SaveInput<'a> {
    /// Every entry the handle holds.
    pub(crate) ours: &'a HashMap<KernelKey, Stored>,
    /// Entries inserted or replaced since the last save: what an append writes.
    pub(crate) dirty: &'a HashSet<KernelKey>,
    /// Keys removed since the last save: not merged back from the file.
    pub(crate) removed: &'a HashSet<KernelKey>,
    /// A `clear()` is pending: nothing is merged back from the file.
    pub(crate) cleared: bool,
    /// Compiler tag -> current build tag, for every compiler this process uses here.
    pub(crate) builds: &'a HashMap<u64, u64>,
}

/// How a save writes, from the handle's options: the size and count limits, what eviction keeps,
/// and how durable the commit must be.
#[derive(Clone, Copy)]
pub(crate) struct SaveRules<'a> {
    /// Size and count limits: past them an append becomes a rewrite that trims.
    pub(crate) limits: &'a FormatLimits,
    /// What eviction keeps: an append that would evict becomes a rewrite, which evicts.
    pub(crate) policy: &'a EvictionPolicy,
    /// Which fsyncs the commit waits for.
    pub(crate) durability: Durability,
}

/// Saves with the lock held: appends one frame of the dirty entries when the file is a valid
/// version-3 file and nothing calls for a rewrite, else rewrites the whole file (see the module
/// doc). `view` is the handle's view of the file; it is brought up to date, or, when the save
/// fails, left where it was.
pub(crate) fn save(
    location: &CacheLocation,
    rules: SaveRules<'_>,
    input: SaveInput<'_>,
    view: &mut DiskView,
) -> Result<Committed, CacheError> {
    let position = view.position;
    let saved = append_or_rewrite(location, rules, input, view);
    if saved.is_err() {
        // The save may have read frames other processes appended, moving `view` past them,
        // and then failed: what it read never reached the handle. Move the view back, so that
        // the next save reads those frames again and brings them in. (The index may keep what
        // they hold: learning a frame twice gives the same index.)
        view.position = position;
    }
    saved
}

fn append_or_rewrite(
    location: &CacheLocation,
    rules: SaveRules<'_>,
    input: SaveInput<'_>,
    view: &mut DiskView,
) -> Result<Committed, CacheError> {
    // Seam skip-merge: the file is rewritten with only this handle's entries (last writer wins);
    // seam write-in-place: the rewrite truncates and writes the file where it is.
    let must_rewrite = input.cleared || !input.removed.is_empty() || every_save_rewrites_by_seam();
    if !must_rewrite {
        match append(location, rules, &input, view)? {
            Attempt::Done(committed) => return Ok(committed),
            Attempt::Rewrite(why) if why == TORN_TAIL => {
                // What the rewrite drops may have been a committed save cut by a power loss, or
                // damage in the last frame: say so where an operator looks.
                log::warn!(target: "runtime_cache", "{}: a full rewrite drops an invalid last frame: {why}", location.path().display());
            }
            Attempt::Rewrite(why) => {
                log::debug!(target: "runtime_cache", "{}: a full rewrite: {why}", location.path().display());
            }
        }
    }
    rewrite(location, rules, input, view)
}

/// What an append found.
enum Attempt {
    Done(Committed),
    /// The file needs a full rewrite, and why.
    Rewrite(&'static str),
}

/// Seams skip-merge and write-in-place make every save a full rewrite (never `true` without the
/// `failpoints` feature).
fn every_save_rewrites_by_seam() -> bool {
    if seam::active!("skip-merge") {
        return true;
    }
    seam::active!("write-in-place")
}

/// Why an append became a rewrite when the file's last frame is invalid (a crashed append, a
/// power loss, or damage there).
const TORN_TAIL: &str = "the file's last frame is torn or damaged";

/// Appends one frame with the dirty entries, if the file allows it (see the module doc).
fn append(
    location: &CacheLocation,
    rules: SaveRules<'_>,
    input: &SaveInput<'_>,
    view: &mut DiskView,
) -> Result<Attempt, CacheError> {
    let SaveRules { limits, policy, durability } = rules;
    let path = location.path();
    // Opened after the lock was taken: a rewrite renames under the same lock, so this is the
    // file every cooperating process sees until we unlock.
    let Some(file) = location.open_for_append()? else {
        return Ok(Attempt::Rewrite("no file yet, or not writable in place"));
    };
    let metadata = file.metadata().map_err(|source| CacheError::io("inspect", path, source))?;
    location::check_file(path, metadata.uid(), metadata.mode())?;
    let size = metadata.len();
    if size > limits.max_file_bytes {
        return Ok(Attempt::Rewrite("the file is over max_file_bytes"));
    }
    let mut head = [0u8; format::HEADER_LEN];
    if size < head.len() as u64 || file.read_exact_at(&mut head, 0).is_err() {
        return Ok(Attempt::Rewrite("no version-3 header"));
    }
    let Ok(HeaderKind::Log(header)) = format::read_header(&head) else {
        return Ok(Attempt::Rewrite("not a valid version-3 file"));
    };
    let identity = FileIdentity::of(&metadata);
    let (learned, position) = match (learn_news(&file, path, size, identity, header, view)?, view.position) {
        (Some(learned), Some(position)) => (learned, position),
        _ => return Ok(Attempt::Rewrite(TORN_TAIL)),
    };

    let mut writes: Vec<(KernelKey, EntryMeta, Bytes)> = Vec::with_capacity(input.dirty.len());
    for key in input.dirty {
        let Some(stored) = input.ours.get(key) else { continue };
        let mut meta = stored.meta;
        if let Some(on_disk) = view.index.get(key) {
            meta.last_used = meta.last_used.max(on_disk.meta.last_used);
        }
        writes.push((*key, meta, stored.artifact.clone()));
    }
    let frame = format::encode_frame(
        writes.iter().map(|(key, meta, artifact)| (key, meta, artifact)),
        header.file_id,
        position.next_sequence,
    )
    .map_err(|source| CacheError::io("encode", path, source))?;
    let size_after = size + frame.len() as u64;
    let new_keys = writes.iter().filter(|(key, _, _)| !view.index.contains_key(key)).count();
    if size_after > limits.max_file_bytes || view.index.len() + new_keys > limits.max_entries as usize {
        return Ok(Attempt::Rewrite("the file would be over its limits"));
    }
    let now = eviction::now_secs();
    let on_disk = view.index.values().map(|indexed| (indexed.meta, indexed.len));
    let ours = writes.iter().map(|(_, meta, artifact)| (*meta, artifact.len() as u64));
    if eviction::evicts_any(on_disk.chain(ours), limits, policy, input.builds, now) {
        return Ok(Attempt::Rewrite("the eviction policy drops entries"));
    }
    if position.appended_frames >= MAX_APPENDED_FRAMES {
        return Ok(Attempt::Rewrite("too many frames since the last rewrite"));
    }
    let mut live_after = view.live_bytes;
    for (key, _, artifact) in &writes {
        live_after += format::ENTRY_OVERHEAD + artifact.len() as u64;
        live_after -= view.index.get(key).map_or(0, |old| format::ENTRY_OVERHEAD + old.len);
    }
    let dead_after = size_after.saturating_sub(live_after);
    if dead_after > DEAD_BYTES_FLOOR && dead_after * 2 > size_after {
        return Ok(Attempt::Rewrite("over half the file is superseded entries"));
    }

    fail::fail_point!("save-before-rename", |_| {
        Err(CacheError::io("write", path, seam::injected("save-before-rename")))
    });
    write_frame_at(&file, path, &frame, size)?;
    if durability.syncs_file()
        && let Err(source) = file.sync_all()
    {
        // The save fails, so the frame must go: other processes would load what this one reports
        // as not saved, and its next save would append the same entries again. The lock is still
        // held, so nothing was appended after it.
        let _ = rustix::fs::ftruncate(&file, size);
        return Err(CacheError::io("sync", path, source));
    }
    view.position = Some(LogPosition {
        valid_end: size_after,
        next_sequence: position.next_sequence + 1,
        appended_frames: position.appended_frames + 1,
        ..position
    });
    view.learn(writes.iter().map(|(key, meta, artifact)| (*key, *meta, artifact.len() as u64)));
    let merged_from_disk = learned
        .into_iter()
        .filter(|entry| !input.ours.contains_key(&entry.key) && !input.removed.contains(&entry.key))
        .map(|entry| (entry.key, Stored { artifact: entry.artifact, meta: entry.meta }))
        .collect();
    Ok(Attempt::Done(Committed {
        merged_from_disk,
        evicted: Vec::new(),
        entries: view.index.len(),
        bytes: size_after,
        how: SaveKind::Appended,
    }))
}

/// Brings `view` up to date with the file (lock held): reads only the frames past its end when it
/// is the same file, else the whole file. Returns the entries read, each key once with the bytes
/// the file now holds for it, or `None` when the file's tail is torn or damaged (the caller
/// rewrites the file).
fn learn_news(
    file: &File,
    path: &std::path::Path,
    size: u64,
    identity: FileIdentity,
    header: format::Header,
    view: &mut DiskView,
) -> Result<Option<Vec<Entry>>, CacheError> {
    let same_file = view
        .position
        .filter(|position| position.file == identity && position.header == header && position.valid_end <= size);
    let Some(mut position) = same_file else {
        // Rewritten by another process since we looked (or never read): read it all.
        let bytes = read_range(file, path, 0, size)?;
        return Ok(match format::decode_lenient(&bytes) {
            Ok(log) if log.torn_tail == 0 && log.header.is_some() => {
                *view = DiskView::of(&log, identity);
                Some(log.entries)
            }
            _ => None,
        });
    };
    if position.valid_end == size {
        return Ok(Some(Vec::new()));
    }
    let bytes = read_range(file, path, position.valid_end, size)?;
    // Each key once, as the file holds it: a later frame's entry replaces an earlier one's.
    let mut learned = HashMap::new();
    let mut offset = 0;
    while offset < bytes.len() {
        match format::read_frame(&bytes, offset, header.file_id, position.next_sequence, None) {
            Ok(frame) => {
                view.learn(frame.entries.iter().map(|entry| (entry.key, entry.meta, entry.artifact.len() as u64)));
                learned.extend(frame.entries.into_iter().map(|entry| (entry.key, entry)));
                offset = frame.end;
                position.next_sequence += 1;
                position.appended_frames += 1;
            }
            Err(_) => return Ok(None),
        }
    }
    position.valid_end = size;
    view.position = Some(position);
    Ok(Some(learned.into_values().collect()))
}

/// `file[from..to]`, read whole (`to - from` is bounded by the caller's size check).
fn read_range(file: &File, path: &std::path::Path, from: u64, to: u64) -> Result<Bytes, CacheError> {
    let mut bytes = vec![0u8; (to - from) as usize];
    file.read_exact_at(&mut bytes, from).map_err(|source| CacheError::io("read", path, source))?;
    Ok(Bytes::from(bytes))
}

/// Writes `frame` at `at`, the end of the file: reserves the space first (a full disk or a file
/// size limit then fails before any byte is written), and on a failed write truncates the file
/// back, so a failed save leaves the file byte-identical.
fn write_frame_at(file: &File, path: &std::path::Path, frame: &[u8], at: u64) -> Result<(), CacheError> {
    match rustix::fs::fallocate(file, FallocateFlags::empty(), at, frame.len() as u64) {
        Ok(()) => {}
        // Not every file system reserves space; the write below still reports a full disk.
        Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {}
        Err(error) => {
            // Nothing was written; only a partial reservation that grew the file is undone (a
            // truncate to the same size would still be a modification of the file).
            if file.metadata().is_ok_and(|metadata| metadata.len() != at) {
                let _ = rustix::fs::ftruncate(file, at);
            }
            let source = io::Error::from_raw_os_error(error.raw_os_error());
            return Err(CacheError::io("reserve space in", path, source));
        }
    }
    let written = write_with_mid_write_failpoint(file, frame, at);
    if let Err(source) = written {
        let _ = rustix::fs::ftruncate(file, at);
        return Err(CacheError::io("write", path, source));
    }
    Ok(())
}

/// Writes `frame` at `at` with one `pwrite` (two with failpoints compiled in: the
/// `save-mid-write` failpoint fires half-way, so a crash there leaves a torn frame).
fn write_with_mid_write_failpoint(file: &File, frame: &[u8], at: u64) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    {
        let half = frame.len() / 2;
        file.write_all_at(&frame[..half], at)?;
        fail::fail_point!("save-mid-write", |_| Err(io::Error::other("failpoint save-mid-write fired")));
        file.write_all_at(&frame[half..], at + half as u64)
    }
    #[cfg(not(feature = "failpoints"))]
    file.write_all_at(frame, at)
}

/// A new file id: random per rewrite, so a handle's view never mistakes a rewritten file for the
/// one it read, even on a recycled inode number.
fn new_file_id() -> u64 {
    location::unique_u64()
}

/// The full rewrite, with the lock held: re-reads the file (unless a `clear()` is pending, or for
/// defect no-merge), merges (union; ours win on a key both hold, with the later last use; removed
/// keys stay out), evicts per `limits` and `policy`, writes a uniquely named temp file (`O_EXCL`)
/// in the same folder as a one-frame version-3 file, and renames it into place, every step
/// relative to the folder handle.
fn rewrite(
    location: &CacheLocation,
    rules: SaveRules<'_>,
    input: SaveInput<'_>,
    view: &mut DiskView,
) -> Result<Committed, CacheError> {
    let SaveRules { limits, policy, durability } = rules;
    let path = location.path();
    // Seam skip-merge: never re-read, so the last writer wins. Nor is the file re-read when this
    // handle's view of it is whole and current and it holds (or removes) every key in it: the
    // merge could bring nothing in.
    let merge = !input.cleared && !seam::active!("skip-merge");
    let disk = if merge && !holds_everything_on_disk(location, &input, view) {
        read_for_merge(location, limits)?
    } else {
        Vec::new()
    };
    // On a key both hold, the later last use stands. The view knows the file's (an append that
    // became this rewrite may have read other processes' frames into it, and then the file is not
    // re-read); the re-read, when there is one, brings the same below.
    let mut candidates: HashMap<KernelKey, Candidate> = input
        .ours
        .iter()
        .map(|(key, stored)| {
            let mut meta = stored.meta;
            if let Some(on_disk) = view.index.get(key) {
                meta.last_used = meta.last_used.max(on_disk.meta.last_used);
            }
            (*key, Candidate { key: *key, meta, artifact: stored.artifact.clone() })
        })
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
    let file_id = new_file_id();

    // Seam write-in-place: the file is truncated and rewritten where it is.
    #[cfg(feature = "failpoints")]
    let in_place = if seam::active!("write-in-place") { Some(save_in_place(location, &kept, file_id)?) } else { None };
    #[cfg(not(feature = "failpoints"))]
    let in_place: Option<(u64, FileIdentity)> = None;
    let (bytes, identity) = if let Some(written) = in_place {
        written
    } else {
        let temp = TempFile::create(location)?;
        let temp_path = location.path_of(&temp.name);
        fail::fail_point!("save-after-temp-created", |_| {
            Err(CacheError::io("write", &temp_path, seam::injected("save-after-temp-created")))
        });

        let bytes = {
            // A buffer the size of the file, up to WRITE_BUFFER: a small cache's save does not
            // allocate 2 MiB.
            let file_len = format::encoded_len(kept.iter().map(|c| c.artifact.len()));
            let capacity = usize::try_from(file_len).map_or(WRITE_BUFFER, |len| len.min(WRITE_BUFFER));
            let mut out = BufWriter::with_capacity(capacity, MidWriteFailpoint::new(&temp.file));
            let all = kept.iter().map(|c| (&c.key, &c.meta, &c.artifact));
            let bytes = format::encode_file(&mut out, all, file_id)
                .map_err(|source| CacheError::io("write", &temp_path, source))?;
            out.flush().map_err(|source| CacheError::io("write", &temp_path, source))?;
            bytes
        };
        if durability.syncs_file() {
            temp.file.sync_all().map_err(|source| CacheError::io("sync", &temp_path, source))?;
        }
        let identity =
            FileIdentity::of(&temp.file.metadata().map_err(|source| CacheError::io("inspect", &temp_path, source))?);
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
        (bytes, identity)
    };
    *view = DiskView {
        position: Some(LogPosition {
            file: identity,
            header: format::Header { file_id, base_len: bytes },
            valid_end: bytes,
            next_sequence: 2,
            appended_frames: 0,
        }),
        ..DiskView::default()
    };
    view.live_bytes = format::FILE_OVERHEAD;
    view.learn(kept.iter().map(|c| (c.key, c.meta, c.artifact.len() as u64)));
    Ok(Committed { entries: kept.len(), bytes, merged_from_disk, evicted, how: SaveKind::Rewritten })
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

/// Whether `view` is the file as it is now (same inode and header, nothing appended since, no
/// torn tail) and every key in it is one this handle holds or removes.
fn holds_everything_on_disk(location: &CacheLocation, input: &SaveInput<'_>, view: &DiskView) -> bool {
    let Some(position) = view.position else { return false };
    let covered = view.index.keys().all(|key| input.ours.contains_key(key) || input.removed.contains(key));
    if !covered {
        return false;
    }
    let Ok(Some(file)) = location.open_existing(location.name(), "inspect") else { return false };
    let Ok(metadata) = file.metadata() else { return false };
    let mut head = [0u8; format::HEADER_LEN];
    metadata.len() == position.valid_end
        && FileIdentity::of(&metadata) == position.file
        && file.read_exact_at(&mut head, 0).is_ok()
        && format::read_header(&head) == Ok(HeaderKind::Log(position.header))
}

/// The `write-in-place` seam: truncates the cache file and rewrites it where it is, so a crash
/// mid-write leaves it torn. Returns the bytes written and the file's identity.
#[cfg(feature = "failpoints")]
fn save_in_place(
    location: &CacheLocation,
    kept: &[Candidate],
    file_id: u64,
) -> Result<(u64, FileIdentity), CacheError> {
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
    let bytes = format::encode_file(&mut out, all, file_id).map_err(|source| CacheError::io("write", path, source))?;
    out.flush().map_err(|source| CacheError::io("write", path, source))?;
    drop(out);
    let identity = FileIdentity::of(&file.metadata().map_err(|source| CacheError::io("inspect", path, source))?);
    Ok((bytes, identity))
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
