//! The crate's error types. Every failure is typed; nothing on the exit path panics.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::compiler::CompileError;
use crate::format::FormatError;
use crate::observer::UnavailableReason;

/// Why opening, loading or saving a cache failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// An I/O operation on a cache path failed (`op` says which: "read", "create folder", ...).
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The cache path exists and is not a regular file (a folder, a socket, ...).
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The cache path.
        path: PathBuf,
    },
    /// A cache path component this crate opens (the cache file, its lock file, or the cache
    /// folder itself) is a symbolic link. The cache never follows a symlink it did not create:
    /// one planted by another user could point anywhere the victim can read or write.
    #[error("refusing to follow the symbolic link {}", path.display())]
    Symlink {
        /// The path that is a symlink.
        path: PathBuf,
    },
    /// The cache folder is not trusted (OpenSSH's StrictModes): it must be owned by this
    /// process's user (or root) and not writable by group or others unless it is sticky.
    #[error("refusing to use the folder {}: {reason}", path.display())]
    UntrustedFolder {
        /// The folder.
        path: PathBuf,
        /// Owner or mode, spelled out.
        reason: String,
    },
    /// The cache file is not trusted: kernels are code that runs on the GPU, so a file that
    /// someone else could have written is refused rather than loaded.
    #[error("refusing to load {}: {reason}", path.display())]
    UntrustedFile {
        /// The cache path.
        path: PathBuf,
        /// Owner or mode, spelled out.
        reason: String,
    },
    /// Another process held `<path>.lock` for longer than the bounded wait.
    #[error("{} stayed locked for {waited:?} (another process is saving or holds the lock)", lock_path.display())]
    LockTimeout {
        /// The lock file.
        lock_path: PathBuf,
        /// How long we waited.
        waited: Duration,
    },
    /// The file could not be decoded. [`crate::RuntimeCache::open`] never returns this (it sets
    /// the file aside and starts cold); [`crate::format::decode`] does.
    #[error("{} is corrupt: {source}", path.display())]
    Corrupt {
        /// The cache path.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: FormatError,
    },
    /// The file is written in a format version this build does not read: it may be valid for
    /// another build, so it is neither set aside nor overwritten. (A file over this process's
    /// [`crate::FormatLimits`] is no error: it is trimmed.)
    #[error("{} cannot be used by this build: {source}", path.display())]
    Unsupported {
        /// The cache path.
        path: PathBuf,
        /// The version found.
        #[source]
        source: FormatError,
    },
    /// The exit path ran out of its total time budget before this handle's turn.
    #[error("exit deadline passed before the save could run")]
    DeadlineExceeded,
    /// libc refused to register the exit hook (out of memory), or the registry is full.
    #[error("the exit hook could not be registered")]
    ExitHookUnavailable,
}

impl CacheError {
    /// The typed reason an engine reports when this error makes it run without its cache.
    pub fn unavailable_reason(&self) -> UnavailableReason {
        match self {
            CacheError::Io { .. } => UnavailableReason::Io,
            CacheError::NotAFile { .. } => UnavailableReason::NotAFile,
            CacheError::Symlink { .. } => UnavailableReason::Symlink,
            CacheError::UntrustedFolder { .. } => UnavailableReason::UntrustedFolder,
            CacheError::UntrustedFile { .. } => UnavailableReason::UntrustedFile,
            CacheError::Unsupported { .. } => UnavailableReason::Unsupported,
            CacheError::ExitHookUnavailable => UnavailableReason::ExitHookUnavailable,
            CacheError::LockTimeout { .. } | CacheError::Corrupt { .. } | CacheError::DeadlineExceeded => {
                UnavailableReason::Other
            }
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CacheError::Io { op, path: path.into(), source }
    }
}

/// Why an [`crate::Engine`] could not be built or could not produce a kernel.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The runtime cache could not be opened or saved.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The compiler could not be loaded, or rejected a kernel.
    #[error(transparent)]
    Compile(#[from] CompileError),
}
