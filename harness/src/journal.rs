//! The journal: the child's own account of what it did, one JSON line per event.
//!
//! # Transport
//!
//! The parent names a file in the environment variable [`JOURNAL_ENV`]. The child opens it once
//! with `O_APPEND | O_CREAT | O_CLOEXEC` and writes every event as **one** `write(2)` of one line
//! shorter than [`MAX_LINE`] bytes. Appends that small to a regular file are never interleaved, so
//! many processes (forked children, K processes sharing a cache) may write the same journal.
//!
//! The writer is built for the places where exit-time code runs: `atexit` hooks, thread-local
//! destructors, panic hooks, after a `fork()`. It has no thread-locals, takes no locks, never
//! panics and never prints; every error is returned for the caller to ignore.
//!
//! # Schema (one JSON object per line)
//!
//! Every line carries these fields, written by the writer:
//!
//! | field  | type   | meaning |
//! | ------ | ------ | ------- |
//! | `pid`  | u32    | the writing process |
//! | `seq`  | u64    | per-process counter, shared by every writer of the process; starts at 0, and a forked child continues from its parent's value |
//! | `t_us` | u64    | microseconds of `CLOCK_MONOTONIC` (system-wide, since boot), comparable across processes |
//! | `kind` | string | the event kind, below |
//!
//! The standard kinds, understood by the [oracles](crate::oracle):
//!
//! | `kind`        | fields | meaning |
//! | ------------- | ------ | ------- |
//! | `save`        | `file`, optional `entries`, `bytes`, `trigger` | a save of `file` (absolute path) committed |
//! | `save_failed` | `file`, `error` | a save of `file` was attempted and failed |
//! | `committed`   | `file`, `keys: [string]` | the keys this process's save put in `file` |
//! | `registry`    | `len`, `live` | a sample of an exit-hook registry's size against the live handles |
//! | `marker`      | `name` | a named point in the program ("ready", "mid-program", ...) |
//!
//! Any other kind, with any fields, is kept and quoted in evidence. A line that would exceed
//! [`MAX_LINE`] has its longest strings (and the tails of its longest arrays) cut until it fits,
//! and gains `"truncated": true`; a line is never split.
//!
//! # Reading
//!
//! The parent reads the journal as a stream, from the descriptor it created the file with, up to
//! a byte limit. A last line without its newline is what a process killed mid-write leaves: it is
//! reported in [`Journal::torn_tail`]. A complete line that is not an event is kept in
//! [`Journal::malformed`], and the oracles that read the journal fail quoting it; the rest of
//! the observation stands.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value};

/// The environment variable naming the journal file.
pub const JOURNAL_ENV: &str = "EXIT_HARNESS_JOURNAL";

/// The largest line the writer emits, newline included, minus one: every line is shorter.
pub const MAX_LINE: usize = 4096;

/// Fields the writer owns; an event may not set them.
const RESERVED: [&str; 4] = ["pid", "seq", "t_us", "kind"];

/// The per-process sequence counter, shared by every writer in the process.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// An event a child records: a kind and free-form fields.
///
/// ```
/// use exit_harness::journal::Event;
/// let e = Event::save("/tmp/cache.json").with("entries", 3).with("trigger", "exit");
/// assert_eq!(e.kind(), "save");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    kind: String,
    fields: Map<String, Value>,
}

impl Event {
    /// An event of any kind, without fields yet.
    pub fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), fields: Map::new() }
    }

    /// Adds (or replaces) a field. The writer's own fields (`pid`, `seq`, `t_us`, `kind`) are
    /// ignored if set here.
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        if !RESERVED.contains(&key.as_str()) {
            self.fields.insert(key, value.into());
        }
        self
    }

    /// A committed save of `file` (kind `save`).
    pub fn save(file: impl AsRef<Path>) -> Self {
        Self::new("save").with("file", path_string(file.as_ref()))
    }

    /// A failed save of `file` (kind `save_failed`).
    pub fn save_failed(file: impl AsRef<Path>, error: impl ToString) -> Self {
        Self::new("save_failed").with("file", path_string(file.as_ref())).with("error", error.to_string())
    }

    /// The keys this process's save put in `file` (kind `committed`).
    pub fn committed<K: ToString>(file: impl AsRef<Path>, keys: impl IntoIterator<Item = K>) -> Self {
        let keys: Vec<Value> = keys.into_iter().map(|k| Value::String(k.to_string())).collect();
        Self::new("committed").with("file", path_string(file.as_ref())).with("keys", keys)
    }

    /// A sample of an exit-hook registry: `len` entries while `live` handles exist (kind `registry`).
    pub fn registry(len: u64, live: u64) -> Self {
        Self::new("registry").with("len", len).with("live", live)
    }

    /// A named point in the program (kind `marker`).
    pub fn marker(name: impl Into<String>) -> Self {
        Self::new("marker").with("name", name.into())
    }

    /// The event's kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// Renders the event as one journal line (newline included, shorter than [`MAX_LINE`]).
    fn to_line(&self, pid: u32, seq: u64, t_us: u64) -> String {
        let mut fields = self.fields.clone();
        let mut truncated = false;
        loop {
            let mut object = Map::with_capacity(fields.len() + 5);
            object.insert("pid".into(), pid.into());
            object.insert("seq".into(), seq.into());
            object.insert("t_us".into(), t_us.into());
            object.insert("kind".into(), cut(&self.kind, 256).into());
            if truncated {
                object.insert("truncated".into(), true.into());
            }
            object.extend(fields.iter().map(|(k, v)| (cut(k, 256), v.clone())));
            let mut line = Value::Object(object).to_string();
            line.push('\n');
            if line.len() < MAX_LINE || !shrink_largest(&mut fields) {
                // `shrink_largest` fails only when nothing is left to cut; the fixed fields alone
                // are far below the limit, so the line fits.
                return line;
            }
            truncated = true;
        }
    }
}

/// A path as a journal string (lossy for non-UTF-8 paths).
fn path_string(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn cut(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Halves the largest string or array among `fields` (searching nested values). Returns false
/// when nothing is left to shrink.
fn shrink_largest(fields: &mut Map<String, Value>) -> bool {
    fn weight(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(a) => a.iter().map(weight).sum::<usize>() + a.len(),
            Value::Object(o) => o.iter().map(|(k, v)| k.len() + weight(v)).sum(),
            _ => 0,
        }
    }
    fn shrink(v: &mut Value) -> bool {
        match v {
            Value::String(s) if !s.is_empty() => {
                *s = cut(s, s.len() / 2);
                true
            }
            Value::Array(a) if a.len() > 1 => {
                a.truncate(a.len() / 2);
                true
            }
            Value::Array(a) => a.first_mut().is_some_and(shrink) || a.pop().is_some(),
            Value::Object(o) => o.values_mut().max_by_key(|v| weight(v)).is_some_and(shrink),
            _ => false,
        }
    }
    fields.values_mut().max_by_key(|v| weight(v)).is_some_and(shrink)
}

/// Why a journal write (child side) or read (parent side) failed.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The journal file could not be opened, written or read.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A write reached the file only in part.
    #[error("journal write was cut short: {written} of {len} bytes")]
    ShortWrite {
        /// Bytes written.
        written: usize,
        /// Bytes of the line.
        len: usize,
    },
}

/// The child side: appends events to one journal file.
///
/// Safe to use from `atexit` hooks, thread-local destructors, panic hooks and forked children:
/// each [`record`](Self::record) is one `write(2)` and nothing else.
#[derive(Debug)]
pub struct JournalWriter {
    file: File,
    path: PathBuf,
}

impl JournalWriter {
    /// Opens (creating if needed) the journal at `path` for appending.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, JournalError> {
        let path = path.into();
        // std opens with O_CLOEXEC; `append` gives O_APPEND. The harness creates the journal
        // before the child starts; a symlink at its path is never followed.
        use std::os::unix::fs::OpenOptionsExt as _;
        let flags = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
        match OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(flags).open(&path) {
            Ok(file) => Ok(Self { file, path }),
            Err(source) => Err(JournalError::Io { path, source }),
        }
    }

    /// Opens the journal named by [`JOURNAL_ENV`]; `None` when the variable is unset or empty.
    pub fn from_env() -> Option<Result<Self, JournalError>> {
        let path = std::env::var_os(JOURNAL_ENV).filter(|p| !p.is_empty())?;
        Some(Self::open(path))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as one line, with one `write(2)`.
    pub fn record(&self, event: &Event) -> Result<(), JournalError> {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let line = event.to_line(std::process::id(), seq, now_us());
        match (&self.file).write(line.as_bytes()) {
            Ok(n) if n == line.len() => Ok(()),
            Ok(written) => Err(JournalError::ShortWrite { written, len: line.len() }),
            Err(source) => Err(JournalError::Io { path: self.path.clone(), source }),
        }
    }
}

/// Microseconds of `CLOCK_MONOTONIC`: the journal's `t_us`.
pub fn now_us() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let micros = u64::try_from(t.tv_nsec / 1_000).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

/// The process-wide writer, opened on first use from [`JOURNAL_ENV`]; `None` when the variable
/// is unset or the file could not be opened (the harness then sees no journal lines).
pub fn global() -> Option<&'static JournalWriter> {
    static GLOBAL: OnceLock<Option<JournalWriter>> = OnceLock::new();
    GLOBAL.get_or_init(|| JournalWriter::from_env().and_then(Result::ok)).as_ref()
}

/// Records `event` through the [`global`] writer; a no-op without a journal. Errors are
/// returned for the caller to ignore.
pub fn record(event: &Event) -> Result<(), JournalError> {
    match global() {
        Some(writer) => writer.record(event),
        None => Ok(()),
    }
}

/// One parsed journal line.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The 1-based line number in the journal file.
    pub line: usize,
    /// The writing process.
    pub pid: u32,
    /// The per-process sequence number.
    pub seq: u64,
    /// Microseconds of `CLOCK_MONOTONIC`.
    pub t_us: u64,
    /// The event kind.
    pub kind: String,
    /// Every other field.
    pub fields: Map<String, Value>,
    /// The line as written, without its newline.
    pub raw: String,
}

impl Entry {
    /// A string field.
    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    /// An unsigned integer field.
    pub fn u64_field(&self, key: &str) -> Option<u64> {
        self.fields.get(key).and_then(Value::as_u64)
    }

    /// The `file` field, for `save`, `save_failed` and `committed` events.
    pub fn file(&self) -> Option<&Path> {
        self.str_field("file").map(Path::new)
    }

    /// The `keys` field of a `committed` event (non-string keys are skipped).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.get("keys").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str)
    }

    /// Whether the writer had to cut this line to fit.
    pub fn truncated(&self) -> bool {
        self.fields.get("truncated").and_then(Value::as_bool).unwrap_or(false)
    }
}

/// A complete journal line that is not an event: kept as evidence, never fatal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedLine {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
    /// The line, cut to 200 bytes.
    pub text: String,
}

/// The parent side: every event of one run, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Journal {
    /// The events, in the order they reached the file.
    pub entries: Vec<Entry>,
    /// A last line cut short (no newline): what a process killed mid-write leaves.
    pub torn_tail: Option<String>,
    /// Complete lines that are not events (not JSON, missing fields, longer than the harness
    /// accepts). Oracles that read the journal fail on them, quoting them.
    pub malformed: Vec<MalformedLine>,
    /// `Some(limit)` when the journal was longer than the harness's byte limit and only its
    /// first `limit` bytes were read.
    pub cut_at: Option<u64>,
}

/// The longest line the reader accepts: lines from the writer are shorter than [`MAX_LINE`]; a
/// longer one is reported as malformed and skipped without being buffered.
const MAX_READ_LINE: usize = 64 * 1024;

impl Journal {
    /// Reads and parses the journal at `path`, at most `limit` bytes of it. A missing file is an
    /// empty journal. The file is opened without following a symlink and without blocking (a
    /// FIFO), and must be a regular file.
    pub fn read(path: &Path, limit: u64) -> Result<Self, JournalError> {
        use rustix::fs::{FileType, Mode, OFlags};
        let io_err = |source: io::Error| JournalError::Io { path: path.to_owned(), source };
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::open(path, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(Self::default()),
            Err(e) => return Err(io_err(e.into())),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| io_err(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(io_err(io::Error::other("not a regular file")));
        }
        let mut reader = JournalReader::new(limit);
        reader.read_from(&fd).map_err(io_err)?;
        Ok(reader.finish())
    }

    /// Parses journal text.
    pub fn parse(text: &str) -> Self {
        let mut reader = JournalReader::new(u64::MAX);
        reader.push(text.as_bytes());
        reader.finish()
    }

    /// Events of one kind.
    pub fn of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| e.kind == kind)
    }

    /// Whether a `marker` event named `name` is present.
    pub fn has_marker(&self, name: &str) -> bool {
        self.of_kind("marker").any(|e| e.str_field("name") == Some(name))
    }
}

/// An incremental, bounded journal parser: bytes go in as they reach the file, complete lines
/// are parsed once, and memory stays bounded by the byte limit and [`MAX_READ_LINE`].
#[derive(Debug)]
pub(crate) struct JournalReader {
    journal: Journal,
    /// Bytes consumed so far (the next read's offset).
    offset: u64,
    limit: u64,
    /// The start of a line not yet ended by a newline.
    partial: Vec<u8>,
    /// Set while skipping the rest of an overlong line.
    skipping: bool,
    line: usize,
}

impl JournalReader {
    pub(crate) fn new(limit: u64) -> Self {
        Self { journal: Journal::default(), offset: 0, limit, partial: Vec::new(), skipping: false, line: 0 }
    }

    /// The journal parsed so far (complete lines only).
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Reads whatever was appended to `fd` since the last call, up to the limit.
    pub(crate) fn read_from(&mut self, fd: impl std::os::fd::AsFd) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.journal.cut_at.is_none() {
            let room = usize::try_from(self.limit - self.offset).unwrap_or(usize::MAX).min(buf.len());
            if room == 0 {
                // One byte more than the limit tells a journal of exactly `limit` bytes apart.
                let mut probe = [0u8; 1];
                if rustix::io::pread(&fd, &mut probe, self.offset).map_err(io::Error::from)? > 0 {
                    self.journal.cut_at = Some(self.limit);
                }
                return Ok(());
            }
            let n = match rustix::io::pread(&fd, &mut buf[..room], self.offset) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok(());
            }
            self.push(&buf[..n]);
        }
        Ok(())
    }

    /// Consumes `bytes`, the next bytes of the journal.
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        while let Some(end) = bytes.iter().position(|&b| b == b'\n') {
            let (head, rest) = bytes.split_at(end);
            bytes = &rest[1..];
            self.line += 1;
            if std::mem::take(&mut self.skipping) {
                self.partial.clear();
                continue;
            }
            if self.partial.is_empty() {
                self.complete_line(head);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.complete_line(&line);
            }
        }
        if self.skipping {
            return;
        }
        if self.partial.len() + bytes.len() > MAX_READ_LINE {
            self.partial.extend_from_slice(&bytes[..MAX_READ_LINE.saturating_sub(self.partial.len()).min(bytes.len())]);
            let text = cut(&String::from_utf8_lossy(&self.partial), 200);
            self.journal.malformed.push(MalformedLine {
                line: self.line + 1,
                reason: format!("longer than {MAX_READ_LINE} bytes (skipped)"),
                text,
            });
            self.partial.clear();
            self.skipping = true;
        } else {
            self.partial.extend_from_slice(bytes);
        }
    }

    fn complete_line(&mut self, bytes: &[u8]) {
        let body = String::from_utf8_lossy(bytes);
        if body.trim().is_empty() {
            return;
        }
        match parse_entry(self.line, &body) {
            Ok(entry) => self.journal.entries.push(entry),
            Err(reason) => {
                self.journal.malformed.push(MalformedLine { line: self.line, reason, text: cut(&body, 200) })
            }
        }
    }

    /// The journal, with any unterminated last line as its torn tail.
    pub(crate) fn finish(mut self) -> Journal {
        if !self.skipping && !self.partial.is_empty() {
            self.journal.torn_tail = Some(String::from_utf8_lossy(&self.partial).into_owned());
        }
        self.journal
    }
}

/// Parses one complete line, or says why it is not an event.
fn parse_entry(line: usize, body: &str) -> Result<Entry, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(mut fields) = value else {
        return Err("not a JSON object".into());
    };
    let mut take_u64 = |key: &str| {
        fields.remove(key).and_then(|v| v.as_u64()).ok_or_else(|| format!("missing or non-integer `{key}`"))
    };
    let pid = take_u64("pid")?;
    let seq = take_u64("seq")?;
    let t_us = take_u64("t_us")?;
    let kind = match fields.remove("kind") {
        Some(Value::String(kind)) => kind,
        _ => return Err("missing or non-string `kind`".into()),
    };
    Ok(Entry {
        line,
        pid: u32::try_from(pid).map_err(|_| format!("`pid` {pid} out of range"))?,
        seq,
        t_us,
        kind,
        fields,
        raw: body.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_not_split() {
        let keys: Vec<String> = (0..2000).map(|i| format!("key-{i:05}")).collect();
        let event = Event::committed("/tmp/f", &keys).with("note", "é".repeat(5000));
        let line = event.to_line(1, 2, 3);
        assert!(line.len() < MAX_LINE, "{} bytes", line.len());
        assert_eq!(line.matches('\n').count(), 1);
        let journal = Journal::parse(&line);
        let entry = &journal.entries[0];
        assert!(entry.truncated());
        assert!(entry.keys().count() > 10, "cut too much: {}", entry.raw);
    }

    #[test]
    fn torn_tail_is_reported_and_middle_garbage_is_kept_as_evidence() {
        let good = Event::marker("a").to_line(7, 0, 1);
        let torn = format!("{good}{{\"pid\":7,\"se");
        let journal = Journal::parse(&torn);
        assert_eq!(journal.entries.len(), 1);
        assert_eq!(journal.torn_tail.as_deref(), Some("{\"pid\":7,\"se"));

        let broken = format!("{good}not json\n{good}");
        let journal = Journal::parse(&broken);
        assert_eq!(journal.entries.len(), 2, "the lines around the bad one are kept");
        let [bad] = journal.malformed.as_slice() else { panic!("{journal:?}") };
        assert_eq!((bad.line, bad.text.as_str()), (2, "not json"));
    }

    #[test]
    fn the_reader_is_incremental_and_bounded() {
        let line = Event::marker("m").to_line(1, 0, 0);
        let mut reader = JournalReader::new(u64::MAX);
        let (head, tail) = line.split_at(10);
        reader.push(head.as_bytes());
        assert!(reader.journal().entries.is_empty());
        reader.push(tail.as_bytes());
        assert!(reader.journal().has_marker("m"));

        // One endless line: skipped, reported, never buffered beyond the line limit.
        let mut reader = JournalReader::new(u64::MAX);
        for _ in 0..100 {
            reader.push(&[b'x'; 64 * 1024]);
            assert!(reader.partial.len() <= MAX_READ_LINE);
        }
        reader.push(b"\n");
        reader.push(line.as_bytes());
        let journal = reader.finish();
        assert_eq!(journal.malformed.len(), 1, "{:?}", journal.malformed);
        assert!(journal.malformed[0].reason.contains("longer than"));
        assert!(journal.has_marker("m"), "the next line is read again");
    }

    #[test]
    fn reserved_fields_cannot_be_forged() {
        let line = Event::new("x").with("pid", 99).to_line(5, 0, 0);
        let journal = Journal::parse(&line);
        assert_eq!(journal.entries[0].pid, 5);
    }
}
