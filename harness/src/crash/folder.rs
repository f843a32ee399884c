//! A folder's content at one moment (the state a crash left), read from disk or built by the
//! power-loss model, and handed to the recovery run as seeds.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read as _};
use std::path::Path;

/// The files (name relative to the folder -> bytes) and sub-folders of a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderState {
    /// Regular files and their bytes.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Sub-folders (empty ones are not carried to the recovery run).
    pub dirs: BTreeSet<String>,
    /// Entries that were not read (a symlink, a FIFO, a file over the byte limit), with why.
    pub skipped: Vec<String>,
}

impl FolderState {
    /// Reads `root` recursively, never following a symlink nor opening anything but a regular
    /// file, and reading at most `cap` bytes of each.
    pub fn read(root: &Path, cap: u64) -> io::Result<Self> {
        let mut state = Self::default();
        state.read_into(root, "", cap)?;
        Ok(state)
    }

    fn read_into(&mut self, dir: &Path, prefix: &str, cap: u64) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                self.dirs.insert(name.clone());
                self.read_into(&entry.path(), &format!("{name}/"), cap)?;
            } else if kind.is_file() {
                let file = std::fs::File::open(entry.path())?;
                let mut bytes = Vec::new();
                file.take(cap + 1).read_to_end(&mut bytes)?;
                if bytes.len() as u64 > cap {
                    self.skipped.push(format!("{name}: more than {cap} bytes"));
                } else {
                    self.files.insert(name, bytes);
                }
            } else {
                self.skipped.push(format!("{name}: not a regular file"));
            }
        }
        Ok(())
    }

    /// A digest of names and contents, to recognise a state seen before.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        for (name, bytes) in &self.files {
            hasher.update(&(name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        }
        for dir in &self.dirs {
            hasher.update(b"/");
            hasher.update(dir.as_bytes());
        }
        *hasher.finalize().as_bytes()
    }

    /// `name: N B` for each file, for descriptions.
    pub fn listing(&self) -> String {
        if self.files.is_empty() {
            return "(empty)".into();
        }
        self.files.iter().map(|(name, bytes)| format!("{name} ({} B)", bytes.len())).collect::<Vec<_>>().join(", ")
    }
}
