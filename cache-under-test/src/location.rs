//! Where a cache lives: its folder, opened once as a trusted handle, and every file operation of
//! the cache done relative to that handle (`openat`, `renameat`, `linkat`, `unlinkat`, `statat`),
//! never by a path that could be re-resolved through a symlink planted meanwhile.
//!
//! The folder is checked as OpenSSH's StrictModes checks `~/.ssh`: opened with
//! `O_DIRECTORY | O_NOFOLLOW`, owned by this process's user (or root), and not writable by group
//! or others unless it is sticky (a sticky folder such as `/tmp` lets nobody else rename or remove
//! our files). Every name the cache opens in it is opened with `O_NOFOLLOW` (a symlink is
//! refused with [`CacheError::Symlink`]) and `O_NONBLOCK` (a FIFO cannot block the open; `fstat`
//! then refuses anything but a regular file). Only intermediate components of the folder's path
//! are resolved normally: they are the user's own choice of where the cache lives.
#![forbid(unsafe_code)]

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::hash::{BuildHasher, Hasher, RandomState};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Stat};

use crate::error::CacheError;
use crate::sys;

/// A cache file's folder, held open, and the file's name in it.
#[derive(Debug)]
pub(crate) struct CacheLocation {
    folder_fd: OwnedFd,
    folder: PathBuf,
    name: OsString,
    path: PathBuf,
}

/// What `statat` (without following a symlink) says about a name in the folder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NameStat {
    pub(crate) file_type: FileType,
    pub(crate) uid: u32,
    pub(crate) mode: u32,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl NameStat {
    fn of(stat: &Stat) -> Self {
        Self {
            file_type: FileType::from_raw_mode(stat.st_mode),
            uid: stat.st_uid,
            mode: stat.st_mode & 0o7777,
            dev: stat.st_dev,
            ino: stat.st_ino,
        }
    }

    /// A regular file this process's user owns (what the cache may remove).
    pub(crate) fn is_own_file(&self) -> bool {
        self.file_type == FileType::RegularFile && self.uid == sys::effective_uid()
    }
}

fn io_error(error: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(error.raw_os_error())
}

impl CacheLocation {
    /// Resolves `path` (absolute): creates its folder 0700 if missing, opens the folder
    /// `O_DIRECTORY | O_NOFOLLOW` and refuses it unless it is trusted (see the module doc).
    pub(crate) fn open(path: &Path) -> Result<Self, CacheError> {
        let name = path.file_name().ok_or_else(|| CacheError::NotAFile { path: path.to_owned() })?.to_owned();
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)
            .map_err(|source| CacheError::io("create folder", &folder, source))?;
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let folder_fd = match rustix::fs::openat(CWD, &folder, flags, Mode::empty()) {
            Ok(fd) => fd,
            // `O_NOFOLLOW` on a symlink: ELOOP; `O_DIRECTORY` on a symlink to a non-folder: ENOTDIR.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR)
                if fs::symlink_metadata(&folder).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                return Err(CacheError::Symlink { path: folder });
            }
            Err(error) => return Err(CacheError::io("open folder", &folder, io_error(error))),
        };
        let stat = rustix::fs::fstat(&folder_fd)
            .map_err(|error| CacheError::io("inspect folder", &folder, io_error(error)))?;
        check_folder(&folder, stat.st_uid, stat.st_mode)?;
        let path = folder.join(&name);
        Ok(Self { folder_fd, folder, name, path })
    }

    /// The cache file's path (for messages and events; never re-resolved).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The folder handle (for the `write-in-place` seam).
    #[cfg(feature = "failpoints")]
    pub(crate) fn folder_fd(&self) -> &OwnedFd {
        &self.folder_fd
    }

    /// The cache file's name in its folder.
    pub(crate) fn name(&self) -> &OsStr {
        &self.name
    }

    /// The path of `name` in the folder (for messages and events).
    pub(crate) fn path_of(&self, name: &OsStr) -> PathBuf {
        self.folder.join(name)
    }

    /// The cache file's name with `suffix` appended (`<name>.lock`, `<name>.corrupt-3`).
    pub(crate) fn sibling(&self, suffix: &str) -> OsString {
        let mut name = self.name.clone();
        name.push(suffix);
        name
    }

    /// Opens the existing file `name` read-only, without following a symlink or blocking on a
    /// FIFO; `None` if it does not exist; anything but a regular file is refused.
    pub(crate) fn open_existing(&self, name: &OsStr, op: &'static str) -> Result<Option<File>, CacheError> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        Ok(self.open_regular(name, flags, Mode::empty(), op, &[rustix::io::Errno::NOENT])?.map(|(file, _)| file))
    }

    /// Opens the existing cache file read-write for a save's append, without following a symlink
    /// or blocking on a FIFO. `None` if it does not exist, or if its mode does not let this
    /// process write it in place (a full rewrite then replaces it, as every save did before
    /// appends); anything but a regular file is refused.
    pub(crate) fn open_for_append(&self) -> Result<Option<File>, CacheError> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let absent = [rustix::io::Errno::NOENT, rustix::io::Errno::ACCESS];
        Ok(self.open_regular(&self.name, flags, Mode::empty(), "open", &absent)?.map(|(file, _)| file))
    }

    /// Opens (creating it 0600 if missing) the lock file `name` read-write, without following a
    /// symlink or blocking on a FIFO; refuses anything but a regular file this user owns.
    pub(crate) fn open_lock_file(&self, name: &OsStr) -> Result<File, CacheError> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
        let op = "open the lock file";
        // With no error taken as "absent", `None` cannot come back; it reads as "not found".
        let opened = self.open_regular(name, flags, Mode::from_raw_mode(0o600), op, &[])?;
        let (file, metadata) =
            opened.ok_or_else(|| CacheError::io(op, self.path_of(name), io::ErrorKind::NotFound.into()))?;
        check_file(&self.path_of(name), metadata.uid(), metadata.mode())?;
        Ok(file)
    }

    /// `openat` of `name` in the folder with `flags` (which hold `O_NOFOLLOW`): `None` when it
    /// fails with one of `absent`, [`CacheError::Symlink`] for a symlink,
    /// [`CacheError::NotAFile`] for anything but a regular file; the file comes with its metadata.
    fn open_regular(
        &self,
        name: &OsStr,
        flags: OFlags,
        mode: Mode,
        op: &'static str,
        absent: &[rustix::io::Errno],
    ) -> Result<Option<(File, fs::Metadata)>, CacheError> {
        let fd = match rustix::fs::openat(&self.folder_fd, name, flags, mode) {
            Ok(fd) => fd,
            Err(error) if absent.contains(&error) => return Ok(None),
            Err(rustix::io::Errno::LOOP) => return Err(CacheError::Symlink { path: self.path_of(name) }),
            Err(error) => return Err(CacheError::io(op, self.path_of(name), io_error(error))),
        };
        let file = File::from(fd);
        let metadata = file.metadata().map_err(|source| CacheError::io(op, self.path_of(name), source))?;
        if !metadata.is_file() {
            return Err(CacheError::NotAFile { path: self.path_of(name) });
        }
        Ok(Some((file, metadata)))
    }

    /// Creates a new temp file `<prefix><10 random letters or digits>`, 0600, with
    /// `O_CREAT | O_EXCL | O_NOFOLLOW`: it never opens what someone else put there.
    pub(crate) fn create_temp(&self, prefix: &OsStr) -> Result<(OsString, File), CacheError> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mut last = None;
        for _ in 0..16 {
            let mut name = prefix.to_owned();
            name.push(random_suffix());
            match rustix::fs::openat(&self.folder_fd, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => return Ok((name, File::from(fd))),
                Err(rustix::io::Errno::EXIST) => last = Some(rustix::io::Errno::EXIST),
                Err(error) => return Err(CacheError::io("create a temp file in", &self.folder, io_error(error))),
            }
        }
        let error = last.map_or_else(|| io::Error::other("no free temp name"), io_error);
        Err(CacheError::io("create a temp file in", &self.folder, error))
    }

    /// `statat(name)` without following a symlink; `None` if the name does not exist.
    pub(crate) fn stat(&self, name: &OsStr) -> io::Result<Option<NameStat>> {
        match rustix::fs::statat(&self.folder_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(NameStat::of(&stat))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(error) => Err(io_error(error)),
        }
    }

    /// Atomically replaces `to` with `from` (both in the folder).
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        rustix::fs::renameat(&self.folder_fd, from, &self.folder_fd, to).map_err(io_error)
    }

    /// Hard-links `from` as `to` (fails if `to` exists; a symlink `from` is linked, not followed).
    pub(crate) fn link(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        rustix::fs::linkat(&self.folder_fd, from, &self.folder_fd, to, AtFlags::empty()).map_err(io_error)
    }

    /// Removes the name `name` (not a folder).
    pub(crate) fn unlink(&self, name: &OsStr) -> io::Result<()> {
        rustix::fs::unlinkat(&self.folder_fd, name, AtFlags::empty()).map_err(io_error)
    }

    /// The names in the folder (one `getdents` pass over a duplicate of the handle).
    pub(crate) fn names(&self) -> io::Result<Vec<OsString>> {
        let dir = rustix::fs::Dir::read_from(&self.folder_fd).map_err(io_error)?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(io_error)?;
            names.push(OsStr::from_bytes(entry.file_name().to_bytes()).to_owned());
        }
        Ok(names)
    }

    /// fsyncs the folder, making a rename in it durable.
    pub(crate) fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.folder_fd).map_err(io_error)
    }
}

/// StrictModes for the folder: owned by this user or root, not group/world-writable unless sticky.
fn check_folder(folder: &Path, uid: u32, mode: u32) -> Result<(), CacheError> {
    let euid = sys::effective_uid();
    if uid != euid && uid != 0 {
        return Err(CacheError::UntrustedFolder {
            path: folder.to_owned(),
            reason: format!("owned by uid {uid}, not by this process's uid {euid} or root"),
        });
    }
    let mode = mode & 0o7777;
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && !sticky {
        return Err(CacheError::UntrustedFolder {
            path: folder.to_owned(),
            reason: format!("mode {mode:04o} lets group or others write it and is not sticky (chmod 700 to trust it)"),
        });
    }
    Ok(())
}

/// Kernels are code that runs on the GPU: a file that someone else could have written is refused
/// with a typed error rather than loaded (and rather than silently replaced by our next save).
pub(crate) fn check_file(path: &Path, uid: u32, mode: u32) -> Result<(), CacheError> {
    let euid = sys::effective_uid();
    if uid != euid {
        return Err(CacheError::UntrustedFile {
            path: path.to_owned(),
            reason: format!("owned by uid {uid}, not by this process's uid {euid}"),
        });
    }
    let mode = mode & 0o777;
    if mode & 0o022 != 0 {
        return Err(CacheError::UntrustedFile {
            path: path.to_owned(),
            reason: format!("mode {mode:04o} lets group or others write it (chmod 600 to trust it)"),
        });
    }
    Ok(())
}

/// Length of a temp file's random suffix; leftover-temp clean-up matches exactly this many.
pub(crate) const TEMP_SUFFIX_LEN: usize = 10;

const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// 64 unpredictable bits without a dependency: a per-process random hash key over the pid, the
/// time and a counter. For temp-file names and file ids: unique, not secret.
pub(crate) fn unique_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

/// [`TEMP_SUFFIX_LEN`] random letters and digits ([`unique_u64`]: unique enough for `O_EXCL` to
/// rarely retry).
fn random_suffix() -> String {
    let mut value = unique_u64();
    (0..TEMP_SUFFIX_LEN)
        .map(|_| {
            let c = ALPHABET[(value % 62) as usize];
            value /= 62;
            char::from(c)
        })
        .collect()
}

/// Whether `candidate` is a temp file name `<prefix><TEMP_SUFFIX_LEN letters or digits>`, so a
/// cache named `k` never matches the temp files of a cache named `k.tmp-b`.
pub(crate) fn is_temp_name(candidate: &OsStr, prefix: &OsStr) -> bool {
    candidate
        .as_bytes()
        .strip_prefix(prefix.as_bytes())
        .is_some_and(|suffix| suffix.len() == TEMP_SUFFIX_LEN && suffix.iter().all(u8::is_ascii_alphanumeric))
}
