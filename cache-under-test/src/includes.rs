//! The header files a kernel's source pulls in, found the way NVRTC finds them, so that their
//! *contents* are part of the kernel's key (issue #16, item 2: a changed `#define` in an included
//! header must never be served from the cache).
//!
//! NVRTC reports no list of the files it read, so this module resolves every `#include` directive
//! itself, recursively, with NVRTC 12.9's search order (checked against the library in
//! `tests/keys.rs`):
//!
//! 1. an in-memory header of the spec ([`crate::KernelSpec::headers`]) whose name is exactly the
//!    name written, for `"..."` and `<...>` alike, from any including file;
//! 2. an absolute name: that file;
//! 3. `"..."` only: the including file's folder (the main source's folder is the folder part of
//!    its program name, so `"k.cu"` means the process's current folder; an in-memory header's is
//!    the folder part of its name);
//! 4. each include path of the options, in order (`--include-path=D`, `--include-path D`, `-ID`,
//!    `-I D`);
//! 5. otherwise: a `<...>` name is a system header (NVRTC's own, such as `<cuda_fp16.h>`), keyed
//!    by the NVRTC build, which is part of every key; a `"..."` name is missing (NVRTC fails).
//!
//! `--pre-include=F` / `-include F` files are resolved like `"F"` from the main source. The key
//! records, for every directive met, what it resolved to and the BLAKE3 hash of that file's bytes,
//! and also the names that resolved to nothing, so a header that appears later (and would shadow
//! another, or make a failing compile succeed) changes the key too.
//!
//! What is *not* covered, and why:
//! - Directives are found textually, without running the preprocessor: every `#include` line
//!   counts, even inside `#if 0` or a block comment (that only makes the key more sensitive), but
//!   a computed include (`#include MACRO`) and `__has_include` probes are not followed.
//! - Headers under NVRTC's own include folder and the CUDA toolkit (`<...>` not found on an
//!   include path) are covered by the NVRTC build fingerprint, not by their contents.
//! - A header that changes *while* NVRTC compiles: the engine scans again after the compile and
//!   does not cache the result if anything changed (see `Engine::kernel`).
//!
//! The scan is bounded ([`MAX_FILES`], [`MAX_DEPTH`], [`MAX_BYTES`]); a spec beyond a bound gets
//! an incomplete scan, and the engine then compiles without caching (a key that might not cover
//! every header is never stored). Files are opened `O_NONBLOCK` and must be regular files, so a
//! FIFO on an include path cannot block the scan.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::key::KernelSpec;

/// Most distinct header files one scan reads.
pub const MAX_FILES: usize = 4096;
/// Deepest include nesting followed.
pub const MAX_DEPTH: usize = 64;
/// Most bytes of header files one scan reads.
pub const MAX_BYTES: u64 = 256 << 20;

/// The outcome of scanning a spec's includes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IncludeScan {
    /// BLAKE3 over every directive met and what it resolved to (with the resolved bytes' hash).
    pub(crate) digest: [u8; 32],
    /// False if a bound was hit: the digest may not cover every header.
    pub(crate) complete: bool,
    /// The header files read (for diagnostics and tests).
    pub(crate) files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    Quoted,
    Angle,
}

/// Where a directive led.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Target {
    /// The spec's in-memory header with this index.
    Memory(usize),
    /// A file, as NVRTC would open it (the path it builds, not canonicalised).
    File(PathBuf),
}

/// Something whose text is scanned for directives, and the folder its `"..."` names start from.
struct Includer {
    text: String,
    folder: PathBuf,
    depth: usize,
}

/// Scans `spec`'s source, pre-includes and in-memory headers, following every include.
pub(crate) fn scan(spec: &KernelSpec) -> IncludeScan {
    let options = IncludeOptions::parse(&spec.options);
    let mut scanner = Scanner {
        spec,
        include_paths: options.include_paths,
        hasher: blake3::Hasher::new_derive_key("runtime-cache include set v1"),
        seen: HashSet::new(),
        files: Vec::new(),
        bytes_read: 0,
        complete: true,
        pending: Vec::new(),
    };
    let main_folder = folder_of(&spec.program_name);
    // Pre-includes first, as NVRTC reads them before the source.
    for file in &options.pre_includes {
        scanner.directive(0, Form::Quoted, file, &main_folder);
    }
    scanner.pending.push(Includer { text: spec.source.clone(), folder: main_folder, depth: 0 });
    // In-memory headers are always scanned: NVRTC may reach them by a name this scan cannot see
    // (a computed include), and their own includes then count.
    for index in 0..spec.headers.len() {
        scanner.visit(Target::Memory(index), 1);
    }
    while let Some(includer) = scanner.pending.pop() {
        for (form, name) in directives(&includer.text) {
            scanner.directive(includer.depth, form, &name, &includer.folder);
        }
    }
    IncludeScan { digest: *scanner.hasher.finalize().as_bytes(), complete: scanner.complete, files: scanner.files }
}

struct Scanner<'a> {
    spec: &'a KernelSpec,
    include_paths: Vec<PathBuf>,
    hasher: blake3::Hasher,
    /// Every target scanned, so each is read once (include guards make cycles normal).
    seen: HashSet<Target>,
    files: Vec<PathBuf>,
    bytes_read: u64,
    complete: bool,
    pending: Vec<Includer>,
}

impl Scanner<'_> {
    fn record(&mut self, bytes: &[u8]) {
        self.hasher.update(&(bytes.len() as u64).to_le_bytes());
        self.hasher.update(bytes);
    }

    /// Resolves one directive, records the outcome, and queues the target for scanning.
    fn directive(&mut self, depth: usize, form: Form, name: &str, folder: &Path) {
        self.record(&[form as u8]);
        self.record(name.as_bytes());
        self.record(folder.as_os_str().as_encoded_bytes());
        match self.resolve(form, name, folder) {
            Resolution::Memory(index) => {
                self.record(b"memory");
                self.record(&(index as u64).to_le_bytes());
                self.visit(Target::Memory(index), depth + 1);
            }
            Resolution::File(path) => {
                self.record(b"file");
                self.record(path.as_os_str().as_encoded_bytes());
                self.visit(Target::File(path), depth + 1);
            }
            Resolution::NotRegular(path) => {
                self.record(b"not a regular file");
                self.record(path.as_os_str().as_encoded_bytes());
            }
            Resolution::Unresolved => self.record(b"unresolved"),
        }
    }

    fn resolve(&self, form: Form, name: &str, folder: &Path) -> Resolution {
        if let Some(index) = self.spec.headers.iter().position(|(header, _)| header == name) {
            return Resolution::Memory(index);
        }
        let name_path = Path::new(name);
        let candidates: Vec<PathBuf> = if name_path.is_absolute() {
            vec![name_path.to_owned()]
        } else {
            let local = (form == Form::Quoted).then(|| folder.join(name_path));
            local.into_iter().chain(self.include_paths.iter().map(|dir| dir.join(name_path))).collect()
        };
        for candidate in candidates {
            match std::fs::metadata(&candidate) {
                Ok(metadata) if metadata.is_file() => return Resolution::File(candidate),
                // A folder of that name is skipped by the preprocessor's search too.
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => return Resolution::NotRegular(candidate),
                Err(_) => {}
            }
        }
        Resolution::Unresolved
    }

    /// Hashes a target's bytes into the digest and queues its text, once per target.
    fn visit(&mut self, target: Target, depth: usize) {
        if self.seen.contains(&target) {
            return;
        }
        if depth > MAX_DEPTH || self.seen.len() >= MAX_FILES {
            self.complete = false;
            return;
        }
        self.seen.insert(target.clone());
        let (bytes, folder) = match &target {
            Target::Memory(index) => {
                let (name, text) = &self.spec.headers[*index];
                (text.as_bytes().to_vec(), folder_of(name))
            }
            Target::File(path) => match self.read(path) {
                Ok(bytes) => {
                    self.files.push(path.clone());
                    (bytes, path.parent().map(Path::to_owned).unwrap_or_default())
                }
                Err(error) => {
                    // Keyed by the failure, so the key changes when the file becomes readable.
                    self.record(b"unreadable");
                    self.record(error.as_bytes());
                    return;
                }
            },
        };
        self.record(blake3::hash(&bytes).as_bytes());
        self.pending.push(Includer { text: String::from_utf8_lossy(&bytes).into_owned(), folder, depth });
    }

    /// Reads a header: `O_NONBLOCK` (a FIFO cannot block), a regular file, within [`MAX_BYTES`].
    fn read(&mut self, path: &Path) -> Result<Vec<u8>, String> {
        let file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(path)
            .map_err(|error| format!("{:?}", error.kind()))?;
        let metadata = file.metadata().map_err(|error| format!("{:?}", error.kind()))?;
        if !metadata.is_file() {
            return Err("not a regular file".into());
        }
        let budget = MAX_BYTES.saturating_sub(self.bytes_read);
        let mut bytes = Vec::with_capacity(metadata.len().min(budget) as usize);
        (&file).take(budget + 1).read_to_end(&mut bytes).map_err(|error| format!("{:?}", error.kind()))?;
        if bytes.len() as u64 > budget {
            self.complete = false;
            bytes.truncate(budget as usize);
        }
        self.bytes_read += bytes.len() as u64;
        Ok(bytes)
    }
}

enum Resolution {
    Memory(usize),
    File(PathBuf),
    NotRegular(PathBuf),
    Unresolved,
}

/// The folder part of a program or header name (`""` for a bare name: the current folder).
fn folder_of(name: &str) -> PathBuf {
    Path::new(name).parent().map(Path::to_owned).unwrap_or_default()
}

/// The include paths and pre-included files named in NVRTC options, in order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IncludeOptions {
    pub(crate) include_paths: Vec<PathBuf>,
    pub(crate) pre_includes: Vec<String>,
}

impl IncludeOptions {
    pub(crate) fn parse(options: &[String]) -> Self {
        let mut parsed = Self::default();
        let mut iter = options.iter();
        while let Some(option) = iter.next() {
            let option = option.as_str();
            if let Some(dir) = option.strip_prefix("--include-path=") {
                parsed.include_paths.push(dir.into());
            } else if option == "--include-path" || option == "-I" {
                if let Some(dir) = iter.next() {
                    parsed.include_paths.push(dir.into());
                }
            } else if let Some(dir) = option.strip_prefix("-I") {
                parsed.include_paths.push(dir.into());
            } else if let Some(file) = option.strip_prefix("--pre-include=") {
                parsed.pre_includes.push(file.into());
            } else if (option == "--pre-include" || option == "-include")
                && let Some(file) = iter.next()
            {
                parsed.pre_includes.push(file.clone());
            }
        }
        parsed
    }
}

/// Every `#include "name"` and `#include <name>` line of `text`.
fn directives(text: &str) -> Vec<(Form, String)> {
    text.lines().filter_map(directive).collect()
}

fn directive(line: &str) -> Option<(Form, String)> {
    let rest = line.trim_start().strip_prefix('#')?.trim_start().strip_prefix("include")?;
    if !rest.starts_with([' ', '\t', '"', '<']) {
        return None; // `#include_next`, `#includes`, ...
    }
    let rest = rest.trim_start();
    let (form, close) = match rest.chars().next()? {
        '"' => (Form::Quoted, '"'),
        '<' => (Form::Angle, '>'),
        _ => return None, // a computed include: not followed (see the module doc)
    };
    let body = &rest[1..];
    let end = body.find(close)?;
    Some((form, body[..end].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_found_in_both_forms_and_others_are_not() {
        let text = "#include \"a.h\"\n  #  include <b/c.h>\n#include_next <d.h>\n#define X 1\n# include\t\"e f.h\" // c\n#include MACRO\n";
        assert_eq!(
            directives(text),
            [(Form::Quoted, "a.h".into()), (Form::Angle, "b/c.h".into()), (Form::Quoted, "e f.h".into())]
        );
    }

    #[test]
    fn include_options_in_every_spelling() {
        let options: Vec<String> = [
            "--include-path=a",
            "-Ib",
            "-I",
            "c",
            "--include-path",
            "d",
            "-O3",
            "--pre-include=p.h",
            "-include",
            "q.h",
        ]
        .map(String::from)
        .into();
        let parsed = IncludeOptions::parse(&options);
        assert_eq!(parsed.include_paths, ["a", "b", "c", "d"].map(PathBuf::from));
        assert_eq!(parsed.pre_includes, ["p.h", "q.h"]);
    }

    fn spec(dir: &Path, source: &str) -> KernelSpec {
        KernelSpec::new("k.cu", source, "k").with_include_path(dir)
    }

    #[test]
    fn header_bytes_nested_headers_and_new_shadowing_files_change_the_digest() {
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("inc");
        std::fs::create_dir(&inc).unwrap();
        std::fs::write(inc.join("a.h"), "#include \"b.h\"\n").unwrap();
        std::fs::write(inc.join("b.h"), "#define B 1\n").unwrap();
        let spec = spec(&inc, "#include \"a.h\"\n");
        let first = scan(&spec);
        assert!(first.complete);
        assert_eq!(first.files, [inc.join("a.h"), inc.join("b.h")]);
        assert_eq!(scan(&spec), first, "the scan is deterministic");
        std::fs::write(inc.join("b.h"), "#define B 2\n").unwrap();
        let changed = scan(&spec);
        assert_ne!(changed.digest, first.digest, "a nested header's bytes are not keyed");
        // A file that now shadows the include path's one (quoted: the includer's folder first).
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let shadowed =
            KernelSpec::new(format!("{}/k.cu", sub.display()), "#include \"a.h\"\n", "k").with_include_path(&inc);
        let before = scan(&shadowed);
        std::fs::write(sub.join("a.h"), "// shadow\n").unwrap();
        assert_ne!(scan(&shadowed).digest, before.digest, "a new shadowing header is not keyed");
    }

    #[test]
    fn in_memory_headers_win_and_their_includes_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.h"), "// file\n").unwrap();
        std::fs::write(dir.path().join("c.h"), "// c\n").unwrap();
        let spec = spec(dir.path(), "#include <a.h>\n").with_header("a.h", "#include \"c.h\"\n");
        let scanned = scan(&spec);
        assert_eq!(scanned.files, [dir.path().join("c.h")], "the in-memory a.h must shadow the file");
    }

    #[test]
    fn cycles_terminate_and_missing_headers_are_keyed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.h"), "#include \"b.h\"\n").unwrap();
        std::fs::write(dir.path().join("b.h"), "#include \"a.h\"\n#include <cuda_fp16.h>\n").unwrap();
        let spec = spec(dir.path(), "#include \"a.h\"\n#include \"later.h\"\n");
        let before = scan(&spec);
        assert!(before.complete);
        std::fs::write(dir.path().join("later.h"), "").unwrap();
        assert_ne!(scan(&spec).digest, before.digest, "a header that appears later is not keyed");
    }

    #[test]
    fn a_fifo_on_the_include_path_neither_blocks_nor_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f.h");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let scanned = scan(&spec(dir.path(), "#include \"f.h\"\n"));
        assert!(scanned.files.is_empty());
    }

    #[test]
    fn too_deep_nesting_makes_an_incomplete_scan() {
        let dir = tempfile::tempdir().unwrap();
        for level in 0..=MAX_DEPTH + 1 {
            std::fs::write(dir.path().join(format!("h{level}.h")), format!("#include \"h{}.h\"\n", level + 1)).unwrap();
        }
        assert!(!scan(&spec(dir.path(), "#include \"h0.h\"\n")).complete);
    }
}
