//! Finding `libnvrtc` and fingerprinting its exact build without loading it (issue #16, item 4:
//! asking a loaded NVRTC for its version cost a warm process 18 to 26 ms).
//!
//! Search order (the first regular file found wins):
//!
//! 1. [`NVRTC_LIBRARY_ENV`], if set: that file and no other;
//! 2. each folder of `LD_LIBRARY_PATH`, as the dynamic loader searches it;
//! 3. the loader's cache, `/etc/ld.so.cache` (the paths it lists for the names below);
//! 4. the loader's default folders (`/lib`, `/usr/lib`, their 64-bit and multiarch variants);
//! 5. `$CUDA_HOME/lib64`, `$CUDA_PATH/lib64` and `/usr/local/cuda/lib64`.
//!
//! In each place the names tried are `libnvrtc.so.12`, `libnvrtc.so.13`, `libnvrtc.so.11.2` and
//! `libnvrtc.so`. The executable's own `DT_RUNPATH` is not searched; set the variable instead.
//! Whatever is found is what compiles: the compiler later loads *that file*, by its path, so the
//! fingerprint always names the library that produced an artifact.
//!
//! The fingerprint (the compiler identity's version) is the NVRTC version, taken from the name of
//! its builtins library (`libnvrtc-builtins.so.12.9`, found the way NVRTC finds it: the
//! `LD_LIBRARY_PATH` folders, then libnvrtc's own folder), and the GNU build id of both libraries
//! (read from their ELF notes: a few hundred bytes), or their size, modification time and inode
//! where a library has no build id. Cost: a few `stat`s, one small read per library, and one
//! `readdir` per folder searched for the builtins.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::key::CompilerIdentity;

/// Names the exact libnvrtc file to use, overriding the search.
pub const NVRTC_LIBRARY_ENV: &str = "RUNTIME_CACHE_NVRTC_LIBRARY";

/// The names tried in each folder.
const NAMES: [&str; 4] = ["libnvrtc.so.12", "libnvrtc.so.13", "libnvrtc.so.11.2", "libnvrtc.so"];

/// The loader's default folders.
const DEFAULT_FOLDERS: [&str; 8] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where NVRTC is, and its identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub(crate) path: PathBuf,
    pub(crate) library: Fingerprint,
    pub(crate) identity: CompilerIdentity,
}

/// What identifies one library file's build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Fingerprint {
    /// The GNU build id (unique per build), and the size.
    BuildId { id: Vec<u8>, size: u64 },
    /// No build id: size, modification time and inode.
    Stat { size: u64, mtime_ns: i128, dev: u64, ino: u64 },
}

impl Fingerprint {
    /// The fingerprint of the regular file at `path` (opened `O_NONBLOCK`: a FIFO cannot block).
    pub(crate) fn of(path: &Path) -> io::Result<Self> {
        let file = File::options().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)?;
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok(match gnu_build_id(&file, metadata.len()) {
            Some(id) => Fingerprint::BuildId { id, size: metadata.len() },
            None => Fingerprint::Stat {
                size: metadata.len(),
                mtime_ns: i128::from(metadata.mtime()) * 1_000_000_000 + i128::from(metadata.mtime_nsec()),
                dev: metadata.dev(),
                ino: metadata.ino(),
            },
        })
    }

    fn describe(&self) -> String {
        match self {
            Fingerprint::BuildId { id, size } => {
                format!("build {} ({size} B)", id.iter().map(|b| format!("{b:02x}")).collect::<String>())
            }
            Fingerprint::Stat { size, mtime_ns, dev, ino } => {
                format!("{size} B, mtime {mtime_ns} ns, inode {dev}:{ino}")
            }
        }
    }
}

/// Finds libnvrtc and fingerprints it, or lists where it looked.
pub(crate) fn locate() -> Result<Located, String> {
    let path = find_library()?;
    let library = Fingerprint::of(&path).map_err(|error| format!("{}: {error}", path.display()))?;
    let folder = path.parent().map(Path::to_owned).unwrap_or_default();
    let (version, builtins) = match find_builtins(&folder) {
        Some((version, builtins_path)) => {
            let builtins = match Fingerprint::of(&builtins_path) {
                Ok(fingerprint @ Fingerprint::BuildId { .. }) => fingerprint.describe(),
                Ok(fingerprint) => format!("{} at {}", fingerprint.describe(), builtins_path.display()),
                Err(error) => format!("{} unreadable: {error}", builtins_path.display()),
            };
            (version, builtins)
        }
        None => ("unknown version".to_owned(), "not found".to_owned()),
    };
    let mut version_line = format!("{version}; libnvrtc {}; builtins {builtins}", library.describe());
    if matches!(library, Fingerprint::Stat { .. }) {
        // Without a build id, the path is part of what tells two files apart.
        version_line.push_str(&format!("; at {}", path.display()));
    }
    let identity = CompilerIdentity { name: "nvrtc".into(), version: version_line };
    Ok(Located { path, library, identity })
}

/// Where libnvrtc is, per the module's search order.
fn find_library() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(NVRTC_LIBRARY_ENV).filter(|value| !value.is_empty()) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("{NVRTC_LIBRARY_ENV} names {}, which is not a file", path.display()))
        };
    }
    let mut searched = Vec::new();
    for folder in library_path_folders() {
        if let Some(found) = first_name_in(&folder) {
            return Ok(found);
        }
        searched.push(folder.display().to_string());
    }
    if let Some(found) = from_loader_cache() {
        return Ok(found);
    }
    searched.push("/etc/ld.so.cache".into());
    let cuda_folders = ["CUDA_HOME", "CUDA_PATH"]
        .iter()
        .filter_map(std::env::var_os)
        .map(|root| PathBuf::from(root).join("lib64"))
        .chain(std::iter::once(PathBuf::from("/usr/local/cuda/lib64")));
    for folder in DEFAULT_FOLDERS.iter().map(PathBuf::from).chain(cuda_folders) {
        if let Some(found) = first_name_in(&folder) {
            return Ok(found);
        }
        searched.push(folder.display().to_string());
    }
    Err(format!(
        "none of {} in {}; install the PyPI package nvidia-cuda-nvrtc-cu12 and add its \
         nvidia/cuda_nvrtc/lib folder to LD_LIBRARY_PATH, or set {NVRTC_LIBRARY_ENV}",
        NAMES.join(", "),
        searched.join(", ")
    ))
}

/// The folders of `LD_LIBRARY_PATH`, in order (an empty entry is the current folder, as for the
/// loader).
fn library_path_folders() -> Vec<PathBuf> {
    let Some(value) = std::env::var_os("LD_LIBRARY_PATH") else { return Vec::new() };
    value
        .as_bytes()
        .split(|byte| *byte == b':' || *byte == b';')
        .map(|folder| if folder.is_empty() { PathBuf::from(".") } else { PathBuf::from(OsStr::from_bytes(folder)) })
        .collect()
}

fn first_name_in(folder: &Path) -> Option<PathBuf> {
    NAMES.iter().map(|name| folder.join(name)).find(|candidate| candidate.is_file())
}

/// The first path `/etc/ld.so.cache` lists for one of [`NAMES`] (in the cache's order, which is
/// the loader's), if that file exists. The cache's string table holds each library's full path
/// as a NUL-terminated string.
fn from_loader_cache() -> Option<PathBuf> {
    let file = File::open("/etc/ld.so.cache").ok()?;
    let len = file.metadata().ok()?.len().min(64 << 20);
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, 0).ok()?;
    bytes
        .split(|byte| *byte == 0)
        .filter(|text| text.first() == Some(&b'/'))
        .map(|text| PathBuf::from(OsStr::from_bytes(text)))
        .find(|path| path.file_name().is_some_and(|name| NAMES.iter().any(|n| OsStr::new(n) == name)) && path.is_file())
}

/// NVRTC's builtins library, `libnvrtc-builtins.so.<major>.<minor>`, where NVRTC's own `dlopen`
/// finds it: `LD_LIBRARY_PATH` first, then libnvrtc's folder (its `RUNPATH` is `$ORIGIN`). In
/// the first folder holding any, the highest version. Returns `("<major>.<minor>", path)`.
fn find_builtins(nvrtc_folder: &Path) -> Option<(String, PathBuf)> {
    let folders = library_path_folders().into_iter().chain(std::iter::once(nvrtc_folder.to_owned()));
    for folder in folders {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        let best = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let name = entry.file_name();
                let version = name.to_str()?.strip_prefix("libnvrtc-builtins.so.")?.to_owned();
                let mut numbers = version.split('.').map(|part| part.parse::<u32>());
                let (Some(Ok(major)), Some(Ok(minor)), None) = (numbers.next(), numbers.next(), numbers.next()) else {
                    return None;
                };
                Some(((major, minor), version, entry.path()))
            })
            .max_by_key(|(numbers, _, _)| *numbers);
        if let Some((_, version, path)) = best {
            return Some((version, path));
        }
    }
    None
}

/// The GNU build id in the ELF notes of `file` (64-bit little-endian ELF), reading only the
/// program headers and the note segments (bounded).
fn gnu_build_id(file: &File, len: u64) -> Option<Vec<u8>> {
    const PT_NOTE: u32 = 4;
    const NT_GNU_BUILD_ID: u32 = 3;
    let mut header = [0u8; 64];
    file.read_exact_at(&mut header, 0).ok()?;
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let u16_at = |bytes: &[u8], at: usize| u16::from_le_bytes(bytes[at..at + 2].try_into().expect("2 bytes"));
    let u32_at = |bytes: &[u8], at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |bytes: &[u8], at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let phoff = u64_at(&header, 0x20);
    let phentsize = usize::from(u16_at(&header, 0x36));
    let phnum = usize::from(u16_at(&header, 0x38));
    // Bounded whatever the header claims: at most 512 entries of at most 256 bytes.
    if !(56..=256).contains(&phentsize) || phnum > 512 {
        return None;
    }
    let mut table = vec![0u8; phentsize * phnum];
    file.read_exact_at(&mut table, phoff).ok()?;
    for entry in table.chunks_exact(phentsize) {
        if u32_at(entry, 0) != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(entry, 8), u64_at(entry, 0x20));
        if size > 64 << 10 || offset.checked_add(size).is_none_or(|end| end > len) {
            continue;
        }
        let mut notes = vec![0u8; size as usize];
        file.read_exact_at(&mut notes, offset).ok()?;
        let mut at = 0usize;
        while at + 12 <= notes.len() {
            let (namesz, descsz, kind) =
                (u32_at(&notes, at) as usize, u32_at(&notes, at + 4) as usize, u32_at(&notes, at + 8));
            let name_start = at + 12;
            let desc_start = name_start + namesz.div_ceil(4) * 4;
            let desc_end = desc_start.checked_add(descsz)?;
            if desc_end > notes.len() {
                break;
            }
            if kind == NT_GNU_BUILD_ID && notes[name_start..name_start + namesz] == *b"GNU\0" {
                return Some(notes[desc_start..desc_end].to_vec());
            }
            at = desc_start + descsz.div_ceil(4) * 4;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_binary_has_a_build_id_or_a_stat_fingerprint() {
        let exe = std::env::current_exe().unwrap();
        let first = Fingerprint::of(&exe).unwrap();
        assert_eq!(Fingerprint::of(&exe).unwrap(), first, "fingerprints are stable");
    }

    #[test]
    fn a_non_elf_file_falls_back_to_its_stat() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libnvrtc.so.12");
        std::fs::write(&path, b"not an ELF file").unwrap();
        assert!(matches!(Fingerprint::of(&path).unwrap(), Fingerprint::Stat { size: 15, .. }));
    }

    #[test]
    fn truncated_or_hostile_elf_headers_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib.so");
        let mut header = vec![0u8; 64];
        header[..6].copy_from_slice(b"\x7fELF\x02\x01");
        header[0x20..0x28].copy_from_slice(&u64::MAX.to_le_bytes());
        header[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        header[0x38..0x3a].copy_from_slice(&3u16.to_le_bytes());
        std::fs::write(&path, &header).unwrap();
        assert!(matches!(Fingerprint::of(&path).unwrap(), Fingerprint::Stat { .. }));
    }
}
