//! The cache file on disk: load under the lock, set aside a corrupt file, clean up a crashed
//! save's temp files, and save by lock, re-read, merge, write temp, rename.
//!
//! Every function here runs with `<path>.lock` held (see [`crate::lock`]), so cooperating
//! processes never see each other's half-done work: a temp file present while we hold the lock
//! was left by a save that died, and a file that changed since we last saw it is merged, never
//! overwritten.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::defect::{self, Defect};
use crate::error::CacheError;
use crate::format::{self, FormatError, FormatLimits};
use crate::key::KernelKey;
use crate::observer::{self, Event};
use crate::sys;

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

    /// The stamp of the file at `path` now (`None` if it does not exist): one `stat` and one
    /// 8-byte read.
    fn read(path: &Path) -> io::Result<Option<Self>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        let metadata = file.metadata()?;
        let mut trailer = [0u8; 8];
        if metadata.len() >= 8 {
            file.read_exact_at(&mut trailer, metadata.len() - 8)?;
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

/// The file's content as last read.
pub(crate) struct OnDisk {
    pub(crate) entries: Vec<(KernelKey, Bytes)>,
    pub(crate) stamp: Option<FileStamp>,
}

/// Makes sure the cache path can be a file: its folder exists (created 0700 if missing) and the
/// path is not a folder or other non-file, nor a file this process must not trust.
pub(crate) fn prepare_path(path: &Path) -> Result<(), CacheError> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| CacheError::io("create folder", parent, source))?;
    }
    match fs::symlink_metadata(path) {
        Ok(metadata) if !metadata.is_file() => Err(CacheError::NotAFile { path: path.to_owned() }),
        // Refuse an untrusted file before anything is written next to it (the lock file, the
        // clean-up of temp files); `read_trusted` checks again under the lock.
        Ok(metadata) => check_trusted(path, &metadata),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(CacheError::io("inspect", path, source)),
    }
}

/// Loads the file at open time (lock held): removes leftover temp files, reads and decodes the
/// file, and sets a corrupt one aside as `<path>.corrupt-<n>` (starting cold).
pub(crate) fn load(path: &Path, limits: &FormatLimits) -> Result<OnDisk, CacheError> {
    remove_leftover_temps(path);
    read_merging_view(path, limits)
}

/// Reads and decodes the current file; a corrupt one is quarantined and reads as empty.
fn read_merging_view(path: &Path, limits: &FormatLimits) -> Result<OnDisk, CacheError> {
    let Some((bytes, stamp)) = read_trusted(path, limits)? else {
        return Ok(OnDisk { entries: Vec::new(), stamp: None });
    };
    fail::fail_point!("parse", |_| Err(CacheError::Failpoint("parse")));
    match format::decode(&bytes, limits) {
        Ok(entries) => Ok(OnDisk { entries, stamp: Some(stamp) }),
        // Valid for another build or configuration: not ours to set aside, nor to overwrite.
        Err(reason @ (FormatError::UnsupportedVersion { .. } | FormatError::OverLimit { .. })) => {
            Err(CacheError::Unsupported { path: path.to_owned(), source: reason })
        }
        Err(reason) => {
            let moved_to = quarantine(path)?;
            log::warn!(target: "runtime_cache", "{} is corrupt ({reason}); set aside as {}", path.display(), moved_to.display());
            observer::emit(|| Event::Quarantined {
                path: path.to_owned(),
                moved_to: moved_to.clone(),
                reason: reason.to_string(),
            });
            Ok(OnDisk { entries: Vec::new(), stamp: None })
        }
    }
}

/// The file's bytes and stamp, or `None` if it does not exist. Refuses a file another user owns
/// or that group/others can write, and one over the size limit.
fn read_trusted(path: &Path, limits: &FormatLimits) -> Result<Option<(Bytes, FileStamp)>, CacheError> {
    fail::fail_point!("read", |_| Err(CacheError::Failpoint("read")));
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CacheError::io("read", path, source)),
    };
    let metadata = file.metadata().map_err(|source| CacheError::io("read", path, source))?;
    if !metadata.is_file() {
        return Err(CacheError::NotAFile { path: path.to_owned() });
    }
    check_trusted(path, &metadata)?;
    if metadata.len() > limits.max_file_bytes {
        return Err(CacheError::TooLarge { path: path.to_owned(), size: metadata.len(), limit: limits.max_file_bytes });
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // `take` bounds the read even if the file grows under us (a non-cooperating writer).
    (&mut file)
        .take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| CacheError::io("read", path, source))?;
    let stamp = FileStamp::of(&metadata, trailer_of(&bytes));
    Ok(Some((Bytes::from(bytes), stamp)))
}

/// Kernels are code that runs on the GPU: a file that someone else could have written is refused
/// with a typed error rather than loaded (and rather than silently replaced by our next save).
fn check_trusted(path: &Path, metadata: &fs::Metadata) -> Result<(), CacheError> {
    let euid = sys::effective_uid();
    if metadata.uid() != euid {
        return Err(CacheError::UntrustedFile {
            path: path.to_owned(),
            reason: format!("owned by uid {}, not by this process's uid {euid}", metadata.uid()),
        });
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Err(CacheError::UntrustedFile {
            path: path.to_owned(),
            reason: format!("mode {mode:04o} lets group or others write it (chmod 600 to trust it)"),
        });
    }
    Ok(())
}

/// Moves the file to the first free `<path>.corrupt-<n>`, byte-exact (a hard link, then unlink:
/// the link fails rather than overwrite an earlier quarantined file).
fn quarantine(path: &Path) -> Result<PathBuf, CacheError> {
    for n in 0u32.. {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".corrupt-{n}"));
        let target = PathBuf::from(name);
        match fs::hard_link(path, &target) {
            Ok(()) => {
                fs::remove_file(path).map_err(|source| CacheError::io("set aside", path, source))?;
                return Ok(target);
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(CacheError::io("set aside", path, source)),
        }
    }
    unreachable!("u32 range exhausted")
}

/// The prefix of this cache's temp files: `.<file name>.tmp-`, in the same folder.
fn temp_prefix(path: &Path) -> OsString {
    let mut prefix = OsString::from(".");
    prefix.push(path.file_name().unwrap_or_default());
    prefix.push(".tmp-");
    prefix
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Removes temp files a crashed save left behind. Safe because the lock is held: no cooperating
/// process is saving right now.
fn remove_leftover_temps(path: &Path) {
    let prefix = temp_prefix(path);
    let prefix = prefix.as_encoded_bytes();
    let Ok(listing) = fs::read_dir(folder_of(path)) else { return };
    let removed = listing
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().as_encoded_bytes().starts_with(prefix))
        .filter(|entry| fs::remove_file(entry.path()).is_ok())
        .count();
    if removed > 0 {
        observer::emit(|| Event::TempFilesRemoved { path: path.to_owned(), count: removed });
    }
}

/// A save's write buffer: artifacts are copied into it and written in 2 MiB `write(2)`s. Fewer,
/// larger writes measured 6 ms faster than 256 KiB ones on a 64 MiB cache (`benches/save_load.rs`).
const WRITE_BUFFER: usize = 2 << 20;

/// What a committed save wrote.
pub(crate) struct Committed {
    /// Entries other processes had saved since we last looked (now merged into the file).
    pub(crate) merged_from_disk: Vec<(KernelKey, Bytes)>,
    /// Entries in the file now.
    pub(crate) entries: usize,
    /// Size of the file now.
    pub(crate) bytes: u64,
    /// The new file's stamp.
    pub(crate) stamp: Option<FileStamp>,
}

/// Saves `ours` (every entry this handle holds) with the lock held: re-reads the file if another
/// process saved since `last_seen`, merges (union; ours win on a key both hold), writes a
/// uniquely named temp file in the same folder, and renames it into place.
pub(crate) fn save(
    path: &Path,
    limits: &FormatLimits,
    durability: Durability,
    ours: &HashMap<KernelKey, Bytes>,
    last_seen: Option<FileStamp>,
) -> Result<Committed, CacheError> {
    let current = FileStamp::read(path).map_err(|source| CacheError::io("inspect", path, source))?;
    // Defect no-merge: never re-read, so the last writer wins.
    let merged_from_disk: Vec<(KernelKey, Bytes)> =
        if FileStamp::changed(current, last_seen) && !defect::active(Defect::NoMerge) {
            read_merging_view(path, limits)?.entries.into_iter().filter(|(key, _)| !ours.contains_key(key)).collect()
        } else {
            Vec::new()
        };

    if defect::active(Defect::InPlaceWrite) {
        return save_in_place(path, ours, merged_from_disk);
    }
    let folder = folder_of(path);
    let temp = tempfile::Builder::new()
        .prefix(&temp_prefix(path))
        .rand_bytes(10)
        .tempfile_in(folder)
        .map_err(|source| CacheError::io("create a temp file in", folder, source))?;
    fail::fail_point!("save-after-temp-created", |_| Err(CacheError::Failpoint("save-after-temp-created")));

    let all = ours.iter().chain(merged_from_disk.iter().map(|(key, artifact)| (key, artifact)));
    let bytes = {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, MidWriteFailpoint::new(temp.as_file()));
        let bytes = format::encode(&mut out, all).map_err(|source| CacheError::io("write", temp.path(), source))?;
        out.flush().map_err(|source| CacheError::io("write", temp.path(), source))?;
        bytes
    };
    if durability.syncs_file() {
        temp.as_file().sync_all().map_err(|source| CacheError::io("sync", temp.path(), source))?;
    }
    fail::fail_point!("save-before-rename", |_| Err(CacheError::Failpoint("save-before-rename")));
    temp.persist(path).map_err(|error| CacheError::io("rename into", path, error.error))?;
    fail::fail_point!("save-after-rename", |_| Err(CacheError::Failpoint("save-after-rename")));
    if durability.syncs_folder()
        && let Err(error) = File::open(folder).and_then(|dir| dir.sync_all())
    {
        // The new file is in place whatever happens now: the save is committed, only its
        // durability across a power loss is in doubt.
        log::warn!(target: "runtime_cache", "saved {}, but syncing {} failed: {error}", path.display(), folder.display());
    }
    let stamp = FileStamp::read(path).ok().flatten();
    Ok(Committed { entries: ours.len() + merged_from_disk.len(), bytes, merged_from_disk, stamp })
}

/// For [`Defect::InPlaceWrite`]: truncates the cache file and rewrites it where it is, so a crash
/// mid-write leaves it torn.
fn save_in_place(
    path: &Path,
    ours: &HashMap<KernelKey, Bytes>,
    merged_from_disk: Vec<(KernelKey, Bytes)>,
) -> Result<Committed, CacheError> {
    let file = File::create(path).map_err(|source| CacheError::io("open", path, source))?;
    let all = ours.iter().chain(merged_from_disk.iter().map(|(key, artifact)| (key, artifact)));
    let mut out = BufWriter::new(MidWriteFailpoint::new(&file));
    let bytes = format::encode(&mut out, all).map_err(|source| CacheError::io("write", path, source))?;
    out.flush().map_err(|source| CacheError::io("write", path, source))?;
    let stamp = FileStamp::read(path).ok().flatten();
    Ok(Committed { entries: ours.len() + merged_from_disk.len(), bytes, merged_from_disk, stamp })
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
