//! The cache file format, version 3: an append-only log in one file. A header, then *frames*,
//! each a self-delimiting, self-checksummed batch of entries; a save appends one frame with what
//! it added, and a full rewrite (compaction) writes a new file of one frame.
//!
//! ```text
//! file header (40 bytes)
//! 0       8     magic  b"RTKCACHE"
//! 8       2     format version (u16 LE) = 3
//! 10      2     flags (u16 LE) = 0
//! 12      4     reserved = 0
//! 16      8     file id (u64 LE): random, new at every full rewrite; seeds every frame checksum
//! 24      8     base length (u64 LE): the file's length as the full rewrite wrote it
//! 32      8     XXH3-64 (LE) of bytes 0..32
//!
//! frame (52 bytes besides its entries), at the header's end and after every frame
//! 0       8     frame magic b"RTKFRAME"
//! 8       8     sequence number (u64 LE): 1 for the first frame, then +1 per frame
//! 16      8     payload length (u64 LE)
//! 24      ...   payload: entry count (u32 LE), then the entries, sorted by key, each key once:
//!                 key (32 bytes)
//!                 compiler tag (u64 LE; 0 = unknown)   which compiler made it
//!                 build tag (u64 LE; 0 = unknown)      which exact build of that compiler
//!                 last used (u64 LE, Unix seconds; 0 = unknown)
//!                 artifact length (u32 LE) | artifact
//! end-24  8     XXH3-64 (LE, seeded with the file id) of the frame header and payload
//! end-16  8     payload length again (u64 LE): a reader of the last bytes finds the frame's start
//! end-8   8     footer magic b"RTKFEND!"
//! ```
//!
//! **Reading.** Every frame below the base length was written by a full rewrite (a temp file
//! renamed into place): damage there is corruption. Frames after it were appended by saves; later
//! frames win for a key both hold (same key, same kernel: the artifact is the newest save's).
//! An invalid frame that is the *last* thing in the file is a save in flight, or an append torn by
//! a crash or a power loss (a size extended with zeros included): it is ignored, so a reader sees
//! the file as it was before that save (old), or with it (new), never a mix. An invalid frame
//! followed by a valid one (the file's last bytes are a footer whose frame starts after it and
//! verifies) is damage in the middle: corruption. Damage to both a middle frame and the last one
//! reads as a torn tail from the first damaged frame on; the next save then rewrites the file
//! without the frames after it.
//!
//! **Versions.** Version 2 (header of 16 bytes with an entry count, the entries, and an XXH3-64
//! trailer of every byte before it) and version 1 (the same without the three metadata fields:
//! key | length | artifact) are still read; their entries get their tags (version 1: unknown),
//! and the next save rewrites the file as version 3. A reader can tell damage from a newer
//! version: the checksum is checked before the version. From version 3 on, bytes 32..40 are the
//! XXH3-64 of bytes 0..32 (a later version keeps this), and a file of an unknown version whose
//! whole-file trailer matches (the version-1/2 rule) is also "unsupported"; anything else is
//! damage.
//!
//! Every length is checked against both the configured [`FormatLimits`] and the bytes actually
//! left, so a hostile or truncated file yields a [`FormatError`]: it can neither panic nor make
//! the decoder allocate more than the file's own size. Decoded artifacts are zero-copy slices of
//! the file's bytes.

use std::collections::HashMap;
use std::io::{self, Write};

use bytes::Bytes;
use xxhash_rust::xxh3::{Xxh3, xxh3_64, xxh3_64_with_seed};

use crate::key::KernelKey;

/// The file's magic bytes.
pub const MAGIC: [u8; 8] = *b"RTKCACHE";
/// The format version this crate writes.
pub const VERSION: u16 = 3;
/// The format versions this crate reads.
pub const READABLE_VERSIONS: [u16; 3] = [1, 2, 3];

/// A frame's magic bytes (its first 8).
pub const FRAME_MAGIC: [u8; 8] = *b"RTKFRAME";
/// A frame footer's magic bytes (its last 8).
pub const FOOTER_MAGIC: [u8; 8] = *b"RTKFEND!";

/// Length of the version-3 file header.
pub const HEADER_LEN: usize = 40;
const HEADER_SEALED_LEN: usize = 32;
const FRAME_HEADER_LEN: usize = 24;
const FRAME_FOOTER_LEN: usize = 24;
const COUNT_LEN: usize = 4;
const LEGACY_HEADER_LEN: usize = 16;
const LEGACY_TRAILER_LEN: usize = 8;
const V1_ENTRY_HEADER_LEN: usize = 32 + 4;
const ENTRY_HEADER_LEN: usize = 32 + 8 + 8 + 8 + 4;

/// Bytes one frame takes besides its entries (frame header, entry count, footer).
pub const FRAME_OVERHEAD: u64 = (FRAME_HEADER_LEN + COUNT_LEN + FRAME_FOOTER_LEN) as u64;

/// Bytes of a fully rewritten file besides its entries (the header and its one frame).
pub const FILE_OVERHEAD: u64 = HEADER_LEN as u64 + FRAME_OVERHEAD;

/// Bytes one entry takes in a frame besides its artifact.
pub const ENTRY_OVERHEAD: u64 = ENTRY_HEADER_LEN as u64;

/// What the file keeps about an entry besides its key and artifact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryMeta {
    /// [`crate::CompilerIdentity::compiler_tag`] of the compiler that made it; 0 if unknown.
    pub compiler: u64,
    /// [`crate::CompilerIdentity::build_tag`] of that compiler's exact build; 0 if unknown.
    pub build: u64,
    /// When it was last used (inserted, hit, or saved by a handle that used it), in Unix seconds;
    /// 0 if unknown.
    pub last_used: u64,
}

/// One decoded entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its key.
    pub key: KernelKey,
    /// Its metadata.
    pub meta: EntryMeta,
    /// Its artifact (a slice of the file's bytes).
    pub artifact: Bytes,
}

/// Upper bounds on a cache file. [`decode`] enforces them on what it reads; a
/// [`crate::RuntimeCache`] enforces them at every save, evicting the least recently used entries
/// until the file fits (so it always writes a file it can read back), and a file over them at
/// open is loaded as far as its size allows and trimmed by the next save, never an open failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatLimits {
    /// Largest file, in bytes. A file over it is not read at all (it bounds a load's memory): the
    /// cache starts cold and its next save replaces the file.
    pub max_file_bytes: u64,
    /// Most entries.
    pub max_entries: u32,
    /// Largest single artifact, in bytes.
    pub max_artifact_bytes: u32,
}

impl Default for FormatLimits {
    /// 512 MiB files, 1 Mi entries, 256 MiB artifacts. A file is read whole into memory, so the
    /// file limit bounds a load's memory and time (a 4 GiB default let a sparse file take 4 GiB
    /// of memory and 20 s); a kernel cache is typically tens of MiB.
    fn default() -> Self {
        Self { max_file_bytes: 512 << 20, max_entries: 1 << 20, max_artifact_bytes: 256 << 20 }
    }
}

/// What is wrong with bytes that claim to be a cache file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than a header and trailer, or shorter than an entry claims.
    #[error("truncated: needed {needed} bytes at offset {offset}, {available} left")]
    Truncated {
        /// Where the read started.
        offset: usize,
        /// How many bytes it needed.
        needed: usize,
        /// How many were left.
        available: usize,
    },
    /// The first 8 bytes are not [`MAGIC`].
    #[error("not a runtime-cache file (magic {found:02x?})")]
    BadMagic {
        /// The bytes found.
        found: [u8; 8],
    },
    /// A version this build does not read.
    #[error("format version {found} is not supported (this build reads versions 1 to {VERSION})")]
    UnsupportedVersion {
        /// The version in the file.
        found: u16,
    },
    /// The checksum does not match the content.
    #[error("checksum mismatch: file says {stored:#018x}, content hashes to {computed:#018x}")]
    ChecksumMismatch {
        /// Stored in the trailer.
        stored: u64,
        /// Computed over the content.
        computed: u64,
    },
    /// A length or count is over a [`FormatLimits`] bound.
    #[error("{field} is {value}, over the limit of {limit}")]
    OverLimit {
        /// Which field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// Unknown flag bits are set.
    #[error("unknown flags {0:#06x}")]
    UnknownFlags(u16),
    /// The same key appears twice, or keys are out of order.
    #[error("entry {index} is out of order or repeats a key")]
    UnsortedKeys {
        /// Index of the offending entry.
        index: u32,
    },
    /// Bytes remain between the last entry and the trailer.
    #[error("{0} unexpected bytes after the last entry")]
    TrailingBytes(usize),
    /// A frame of a version-3 file is damaged where it cannot be a torn append: below the base
    /// length, or followed by a valid frame.
    #[error("frame at byte {offset} is damaged ({reason})")]
    DamagedFrame {
        /// Where the frame starts.
        offset: u64,
        /// What is wrong with it.
        reason: String,
    },
}

/// A version-3 file's header, as [`read_header`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Random per full rewrite; seeds every frame checksum.
    pub file_id: u64,
    /// The file's length as the full rewrite wrote it.
    pub base_len: u64,
}

/// What the first bytes of a file say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderKind {
    /// A version-3 file.
    Log(Header),
    /// A version-1 or version-2 file (one whole-file checksum; read whole, rewritten at the next save).
    Legacy(u16),
}

/// A whole file, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log {
    /// The format version of the file.
    pub version: u16,
    /// Every entry, each key once (a later frame's wins), sorted by key.
    pub entries: Vec<Entry>,
    /// The header (`None` for versions 1 and 2).
    pub header: Option<Header>,
    /// Where the valid frames end (the file's length unless a torn tail was ignored).
    pub valid_end: u64,
    /// The sequence number the next frame gets.
    pub next_sequence: u64,
    /// Frames appended after the base length.
    pub appended_frames: u64,
    /// Bytes of an invalid last frame that were ignored (a save in flight, or a torn append).
    pub torn_tail: u64,
}

/// Writes `entries` (any order; they are written sorted by key) to `out` as a version-3 file with
/// unknown metadata and file id 0. Returns the number of bytes written.
pub fn encode<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a Bytes)>,
) -> io::Result<u64> {
    const UNKNOWN: EntryMeta = EntryMeta { compiler: 0, build: 0, last_used: 0 };
    encode_entries(out, entries.into_iter().map(|(key, artifact)| (key, &UNKNOWN, artifact)))
}

/// Writes `entries` with their metadata (any order; they are written sorted by key; a key given
/// twice is an error) to `out` as a version-3 file with file id 0 (encoding is canonical). Returns
/// the number of bytes written.
pub fn encode_entries<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a EntryMeta, &'a Bytes)>,
) -> io::Result<u64> {
    encode_file(out, entries, 0)
}

/// Writes a whole version-3 file (header and one frame holding `entries`) with `file_id`.
pub(crate) fn encode_file<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a EntryMeta, &'a Bytes)>,
    file_id: u64,
) -> io::Result<u64> {
    let sorted = sorted_entries(entries)?;
    let payload_len = payload_len(&sorted);
    let base_len = HEADER_LEN as u64 + FRAME_HEADER_LEN as u64 + payload_len + FRAME_FOOTER_LEN as u64;
    out.write_all(&header_bytes(file_id, base_len))?;
    write_frame(out, &sorted, file_id, 1, payload_len)?;
    Ok(base_len)
}

/// One frame holding `entries` (a save's append), numbered `sequence`, sealed with `file_id`.
pub(crate) fn encode_frame<'a>(
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a EntryMeta, &'a Bytes)>,
    file_id: u64,
    sequence: u64,
) -> io::Result<Vec<u8>> {
    let sorted = sorted_entries(entries)?;
    let payload_len = payload_len(&sorted);
    let mut out = Vec::with_capacity((FRAME_OVERHEAD + payload_len) as usize);
    write_frame(&mut out, &sorted, file_id, sequence, payload_len)?;
    Ok(out)
}

type EntryRef<'a> = (&'a KernelKey, &'a EntryMeta, &'a Bytes);

fn sorted_entries<'a>(entries: impl IntoIterator<Item = EntryRef<'a>>) -> io::Result<Vec<EntryRef<'a>>> {
    let mut sorted: Vec<EntryRef<'a>> = entries.into_iter().collect();
    sorted.sort_unstable_by_key(|(key, _, _)| **key);
    if sorted.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "a key given twice"));
    }
    if u32::try_from(sorted.len()).is_err() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "more than u32::MAX entries"));
    }
    if sorted.iter().any(|(_, _, artifact)| u32::try_from(artifact.len()).is_err()) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "artifact over 4 GiB"));
    }
    Ok(sorted)
}

fn payload_len(sorted: &[EntryRef<'_>]) -> u64 {
    sorted.iter().fold(COUNT_LEN as u64, |total, (_, _, artifact)| total + ENTRY_OVERHEAD + artifact.len() as u64)
}

fn header_bytes(file_id: u64, base_len: u64) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&file_id.to_le_bytes());
    header[24..32].copy_from_slice(&base_len.to_le_bytes());
    let sealed = xxh3_64(&header[..HEADER_SEALED_LEN]);
    header[HEADER_SEALED_LEN..].copy_from_slice(&sealed.to_le_bytes());
    header
}

fn write_frame<W: Write>(
    out: &mut W,
    sorted: &[EntryRef<'_>],
    file_id: u64,
    sequence: u64,
    payload_len: u64,
) -> io::Result<()> {
    let mut writer = HashingWriter { inner: out, hasher: Xxh3::with_seed(file_id) };
    let mut frame_header = [0u8; FRAME_HEADER_LEN];
    frame_header[..8].copy_from_slice(&FRAME_MAGIC);
    frame_header[8..16].copy_from_slice(&sequence.to_le_bytes());
    frame_header[16..24].copy_from_slice(&payload_len.to_le_bytes());
    writer.write_all(&frame_header)?;
    writer.write_all(&(sorted.len() as u32).to_le_bytes())?;
    for (key, meta, artifact) in sorted {
        let mut entry_header = [0u8; ENTRY_HEADER_LEN];
        entry_header[..32].copy_from_slice(&key.0);
        entry_header[32..40].copy_from_slice(&meta.compiler.to_le_bytes());
        entry_header[40..48].copy_from_slice(&meta.build.to_le_bytes());
        entry_header[48..56].copy_from_slice(&meta.last_used.to_le_bytes());
        entry_header[56..].copy_from_slice(&(artifact.len() as u32).to_le_bytes());
        writer.write_all(&entry_header)?;
        writer.write_all(artifact)?;
    }
    let checksum = writer.hasher.digest();
    let mut footer = [0u8; FRAME_FOOTER_LEN];
    footer[..8].copy_from_slice(&checksum.to_le_bytes());
    footer[8..16].copy_from_slice(&payload_len.to_le_bytes());
    footer[16..].copy_from_slice(&FOOTER_MAGIC);
    out.write_all(&footer)
}

/// The size of a fully rewritten (version-3) file holding artifacts of these lengths.
pub fn encoded_len(artifact_lengths: impl IntoIterator<Item = usize>) -> u64 {
    artifact_lengths.into_iter().fold(FILE_OVERHEAD, |total, len| total + ENTRY_OVERHEAD + len as u64)
}

/// Decodes a whole file (version 1, 2 or 3) into `(key, artifact)` pairs sorted by key,
/// enforcing `limits`. Artifacts are slices of `file` (no copy). A torn last frame is ignored.
pub fn decode(file: &Bytes, limits: &FormatLimits) -> Result<Vec<(KernelKey, Bytes)>, FormatError> {
    Ok(decode_entries(file, limits)?.into_iter().map(|entry| (entry.key, entry.artifact)).collect())
}

/// Decodes a whole file (version 1, 2 or 3) with each entry's metadata, enforcing `limits`.
pub fn decode_entries(file: &Bytes, limits: &FormatLimits) -> Result<Vec<Entry>, FormatError> {
    Ok(decode_log(file, limits)?.entries)
}

/// Decodes a whole file (version 1, 2 or 3), enforcing `limits`, and says how its log stands
/// (frames appended since the last full rewrite, a torn tail ignored).
pub fn decode_log(file: &Bytes, limits: &FormatLimits) -> Result<Log, FormatError> {
    if file.len() as u64 > limits.max_file_bytes {
        return Err(FormatError::OverLimit {
            field: "file size",
            value: file.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    decode_bounded(file, Some(limits))
}

/// Decodes a whole file that the caller read within its size limit, with no bound on the entry
/// count or artifact sizes besides the bytes present: the cache trims what is over its limits
/// (issue #16, item 5: a file over this process's limits is trimmed, never an open failure).
pub(crate) fn decode_lenient(file: &Bytes) -> Result<Log, FormatError> {
    decode_bounded(file, None)
}

/// Reads what the first bytes of a file say it is: checks the magic, then the checksum (of the
/// version-3 header, or, for versions 1 and 2 and unknown ones that follow their rule, of the
/// whole file), and only then the version. `file` is the whole file for versions 1 and 2, and
/// may be just the first [`HEADER_LEN`] bytes of a version-3 file.
pub fn read_header(file: &[u8]) -> Result<HeaderKind, FormatError> {
    if file.len() < 10 {
        return Err(FormatError::Truncated { offset: 0, needed: HEADER_LEN, available: file.len() });
    }
    let found: [u8; 8] = file[..8].try_into().expect("slice of 8");
    if found != MAGIC {
        return Err(FormatError::BadMagic { found });
    }
    let version = u16::from_le_bytes([file[8], file[9]]);
    if matches!(version, 1 | 2) {
        legacy_checksum(file)?;
        return Ok(HeaderKind::Legacy(version));
    }
    if file.len() < HEADER_LEN {
        return Err(FormatError::Truncated { offset: 0, needed: HEADER_LEN, available: file.len() });
    }
    let stored = u64_at(file, HEADER_SEALED_LEN);
    let computed = xxh3_64(&file[..HEADER_SEALED_LEN]);
    if stored != computed {
        // A later version that kept the version-1/2 rule (a whole-file trailer) is not damage.
        return match legacy_checksum(file) {
            Ok(()) if version != VERSION => Err(FormatError::UnsupportedVersion { found: version }),
            _ => Err(FormatError::ChecksumMismatch { stored, computed }),
        };
    }
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    let flags = u16::from_le_bytes([file[10], file[11]]);
    if flags != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    Ok(HeaderKind::Log(Header { file_id: u64_at(file, 16), base_len: u64_at(file, 24) }))
}

/// The version-1/2 rule: the last 8 bytes are the XXH3-64 of every byte before them.
fn legacy_checksum(file: &[u8]) -> Result<(), FormatError> {
    if file.len() < LEGACY_HEADER_LEN + LEGACY_TRAILER_LEN {
        return Err(FormatError::Truncated {
            offset: 0,
            needed: LEGACY_HEADER_LEN + LEGACY_TRAILER_LEN,
            available: file.len(),
        });
    }
    let body_end = file.len() - LEGACY_TRAILER_LEN;
    let stored = u64_at(file, body_end);
    let computed = xxh3_64(&file[..body_end]);
    match stored == computed {
        true => Ok(()),
        false => Err(FormatError::ChecksumMismatch { stored, computed }),
    }
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("slice of 8"))
}

/// The decoder: structure always, `limits` (count, artifact size) when given.
fn decode_bounded(file: &Bytes, limits: Option<&FormatLimits>) -> Result<Log, FormatError> {
    let header = match read_header(file)? {
        HeaderKind::Legacy(version) => {
            let entries = decode_legacy(file, version, limits)?;
            return Ok(Log {
                version,
                entries,
                header: None,
                valid_end: file.len() as u64,
                next_sequence: 1,
                appended_frames: 0,
                torn_tail: 0,
            });
        }
        HeaderKind::Log(header) => header,
    };
    let len = file.len() as u64;
    if header.base_len < HEADER_LEN as u64 || header.base_len > len {
        return Err(FormatError::Truncated {
            offset: HEADER_LEN,
            needed: usize::try_from(header.base_len).unwrap_or(usize::MAX),
            available: file.len(),
        });
    }
    let mut merged: HashMap<KernelKey, Entry> = HashMap::new();
    let mut add = |entries: Vec<Entry>| -> Result<(), FormatError> {
        for entry in entries {
            merged.insert(entry.key, entry);
        }
        if let Some(limits) = limits
            && merged.len() as u64 > u64::from(limits.max_entries)
        {
            return Err(FormatError::OverLimit {
                field: "entry count",
                value: merged.len() as u64,
                limit: limits.max_entries.into(),
            });
        }
        Ok(())
    };
    // The base: written whole by a full rewrite, so every frame must be valid and end exactly at
    // the base length.
    let base = file.slice(..header.base_len as usize);
    let mut offset = HEADER_LEN;
    let mut sequence = 1;
    while offset < base.len() {
        let frame = read_frame(&base, offset, header.file_id, sequence, limits).map_err(|error| match error {
            FrameError::Invalid(reason) => FormatError::DamagedFrame { offset: offset as u64, reason },
            FrameError::Content(error) => error,
        })?;
        add(frame.entries)?;
        offset = frame.end;
        sequence += 1;
    }
    // The appended frames: an invalid last one is a torn append.
    let mut appended_frames = 0;
    let mut torn_tail = 0;
    while offset < file.len() {
        match read_frame(file, offset, header.file_id, sequence, limits) {
            Ok(frame) => {
                add(frame.entries)?;
                offset = frame.end;
                sequence += 1;
                appended_frames += 1;
            }
            Err(FrameError::Content(error)) => return Err(error),
            Err(FrameError::Invalid(reason)) => {
                if let Some(after) = damage_after(file, offset, header.file_id) {
                    return Err(FormatError::DamagedFrame {
                        offset: offset as u64,
                        reason: format!("{reason}; {after}"),
                    });
                }
                torn_tail = (file.len() - offset) as u64;
                break;
            }
        }
    }
    let mut entries: Vec<Entry> = merged.into_values().collect();
    entries.sort_unstable_by_key(|entry| entry.key);
    Ok(Log {
        version: VERSION,
        entries,
        header: Some(header),
        valid_end: offset as u64,
        next_sequence: sequence,
        appended_frames,
        torn_tail,
    })
}

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// Not a whole, sealed frame (torn, zeros, damaged): what is wrong, as text.
    Invalid(String),
    /// A sealed frame whose content is malformed or over the limits: never a torn write.
    Content(FormatError),
}

/// One valid frame: its entries and where it ends.
pub(crate) struct Frame {
    pub(crate) entries: Vec<Entry>,
    pub(crate) end: usize,
}

/// Reads the frame at `offset` of `bytes`, which must be numbered `sequence` and sealed with
/// `file_id`.
pub(crate) fn read_frame(
    bytes: &Bytes,
    offset: usize,
    file_id: u64,
    sequence: u64,
    limits: Option<&FormatLimits>,
) -> Result<Frame, FrameError> {
    let invalid = |reason: String| Err(FrameError::Invalid(reason));
    let available = bytes.len() - offset;
    if available < FRAME_OVERHEAD as usize {
        return invalid(format!("{available} bytes left, a frame takes at least {FRAME_OVERHEAD}"));
    }
    if bytes[offset..offset + 8] != FRAME_MAGIC {
        return invalid("no frame magic".into());
    }
    let found_sequence = u64_at(bytes, offset + 8);
    let payload_len = u64_at(bytes, offset + 16);
    let frame_len = payload_len.checked_add((FRAME_HEADER_LEN + FRAME_FOOTER_LEN) as u64);
    let Some(frame_len) = frame_len.filter(|len| *len <= available as u64) else {
        return invalid(format!("payload length {payload_len} runs past the end ({available} bytes left)"));
    };
    let end = offset + frame_len as usize;
    let footer = end - FRAME_FOOTER_LEN;
    if bytes[footer + 16..end] != FOOTER_MAGIC || u64_at(bytes, footer + 8) != payload_len {
        return invalid("no matching footer".into());
    }
    let stored = u64_at(bytes, footer);
    let computed = xxh3_64_with_seed(&bytes[offset..footer], file_id);
    if stored != computed {
        return invalid(format!("checksum mismatch: footer says {stored:#018x}, content hashes to {computed:#018x}"));
    }
    if found_sequence != sequence {
        return invalid(format!("sequence number {found_sequence}, expected {sequence}"));
    }
    let payload = bytes.slice(offset + FRAME_HEADER_LEN..footer);
    let entries = decode_payload(&payload, limits).map_err(FrameError::Content)?;
    Ok(Frame { entries, end })
}

/// What, after the invalid frame at `after`, shows it is damage rather than a torn append, if
/// anything: an append is only ever written after a tail its writer read and verified, so an
/// invalid frame followed by *any* valid one is damage (checking only the last frame let two
/// damaged frames hide a valid one between them). Scans for the frame magic; runs only when an
/// invalid frame was found.
///
/// Bounded: checking a candidate hashes it, and nested candidates (headers, then their footers
/// in reverse) would make the scan quadratic in the file's length. A torn append is a prefix of
/// one frame; candidates that would take more than [`CANDIDATE_HASH_BUDGET`] times the file's
/// length to check are not what one leaves, and are damage too.
fn damage_after(file: &Bytes, after: usize, file_id: u64) -> Option<String> {
    let mut budget = file.len().saturating_mul(CANDIDATE_HASH_BUDGET);
    let mut start = after + 1;
    while start + FRAME_OVERHEAD as usize <= file.len() {
        let found = file[start..].windows(FRAME_MAGIC.len()).position(|window| window == FRAME_MAGIC)?;
        start += found;
        if start + FRAME_OVERHEAD as usize > file.len() {
            return None;
        }
        let payload_len = usize::try_from(u64_at(file, start + 16)).ok()?;
        let end = start
            .checked_add(FRAME_HEADER_LEN)
            .and_then(|at| at.checked_add(payload_len))
            .and_then(|at| at.checked_add(FRAME_FOOTER_LEN));
        if let Some(end) = end.filter(|end| *end <= file.len()) {
            let footer = end - FRAME_FOOTER_LEN;
            if file[footer + 16..end] == FOOTER_MAGIC && u64_at(file, footer + 8) == payload_len as u64 {
                let Some(left) = budget.checked_sub(footer - start) else {
                    return Some(format!(
                        "the bytes after it hold frame-like structures worth more than {CANDIDATE_HASH_BUDGET} \
                         times the file's length to check, which no torn append leaves (the first at byte {start})"
                    ));
                };
                budget = left;
                if xxh3_64_with_seed(&file[start..footer], file_id) == u64_at(file, footer) {
                    return Some(format!("a valid frame follows at byte {start}"));
                }
            }
        }
        start += 1;
    }
    None
}

/// How many times its length [`damage_after`] may hash of a file while it checks candidates.
const CANDIDATE_HASH_BUDGET: usize = 2;

/// A frame's payload: entry count, then entries sorted by key.
fn decode_payload(payload: &Bytes, limits: Option<&FormatLimits>) -> Result<Vec<Entry>, FormatError> {
    if payload.len() < COUNT_LEN {
        return Err(FormatError::Truncated { offset: 0, needed: COUNT_LEN, available: payload.len() });
    }
    let count = u32::from_le_bytes(payload[..COUNT_LEN].try_into().expect("slice of 4"));
    decode_entry_list(payload, COUNT_LEN, payload.len(), count, ENTRY_HEADER_LEN, limits, true)
}

/// A version-1 or version-2 file (checksum already verified).
fn decode_legacy(file: &Bytes, version: u16, limits: Option<&FormatLimits>) -> Result<Vec<Entry>, FormatError> {
    let flags = u16::from_le_bytes([file[10], file[11]]);
    if flags != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    let count = u32::from_le_bytes(file[12..16].try_into().expect("slice of 4"));
    let entry_header_len = if version == 1 { V1_ENTRY_HEADER_LEN } else { ENTRY_HEADER_LEN };
    let body_end = file.len() - LEGACY_TRAILER_LEN;
    decode_entry_list(file, LEGACY_HEADER_LEN, body_end, count, entry_header_len, limits, version != 1)
}

/// `count` entries in `bytes[start..end]`, sorted by key, filling `end` exactly.
fn decode_entry_list(
    bytes: &Bytes,
    start: usize,
    end: usize,
    count: u32,
    entry_header_len: usize,
    limits: Option<&FormatLimits>,
    with_meta: bool,
) -> Result<Vec<Entry>, FormatError> {
    if let Some(limits) = limits
        && count > limits.max_entries
    {
        return Err(FormatError::OverLimit {
            field: "entry count",
            value: count.into(),
            limit: limits.max_entries.into(),
        });
    }
    // Every entry needs at least its header, so this bounds the allocation by the file's size.
    let body_len = end - start;
    if (count as usize).saturating_mul(entry_header_len) > body_len {
        return Err(FormatError::Truncated {
            offset: start,
            needed: (count as usize).saturating_mul(entry_header_len),
            available: body_len,
        });
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut offset = start;
    let mut previous: Option<KernelKey> = None;
    for index in 0..count {
        let available = end - offset;
        if available < entry_header_len {
            return Err(FormatError::Truncated { offset, needed: entry_header_len, available });
        }
        let key = KernelKey(bytes[offset..offset + 32].try_into().expect("slice of 32"));
        let meta = match with_meta {
            false => EntryMeta::default(),
            true => EntryMeta {
                compiler: u64_at(bytes, offset + 32),
                build: u64_at(bytes, offset + 40),
                last_used: u64_at(bytes, offset + 48),
            },
        };
        let len_at = offset + entry_header_len - 4;
        let len = u32::from_le_bytes(bytes[len_at..len_at + 4].try_into().expect("slice of 4"));
        if let Some(limits) = limits
            && len > limits.max_artifact_bytes
        {
            return Err(FormatError::OverLimit {
                field: "artifact length",
                value: len.into(),
                limit: limits.max_artifact_bytes.into(),
            });
        }
        if previous.is_some_and(|previous| previous >= key) {
            return Err(FormatError::UnsortedKeys { index });
        }
        offset += entry_header_len;
        let len = len as usize;
        if end - offset < len {
            return Err(FormatError::Truncated { offset, needed: len, available: end - offset });
        }
        entries.push(Entry { key, meta, artifact: bytes.slice(offset..offset + len) });
        offset += len;
        previous = Some(key);
    }
    if offset != end {
        return Err(FormatError::TrailingBytes(end - offset));
    }
    Ok(entries)
}

/// Hashes everything written through it.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: Xxh3,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: u8) -> Vec<(KernelKey, Bytes)> {
        (0..n).map(|i| (KernelKey([i; 32]), Bytes::from(vec![i; i as usize * 3]))).collect()
    }

    fn encoded(entries: &[(KernelKey, Bytes)]) -> Vec<u8> {
        let mut out = Vec::new();
        let written = encode(&mut out, entries.iter().map(|(k, v)| (k, v))).unwrap();
        assert_eq!(written, out.len() as u64);
        out
    }

    fn append(file: &mut Vec<u8>, entries: &[(KernelKey, Bytes)]) {
        let log = decode_log(&Bytes::from(file.clone()), &FormatLimits::default()).unwrap();
        let meta = EntryMeta::default();
        let frame =
            encode_frame(entries.iter().map(|(k, v)| (k, &meta, v)), log.header.unwrap().file_id, log.next_sequence)
                .unwrap();
        file.extend_from_slice(&frame);
    }

    #[test]
    fn round_trip_sorts_and_preserves_entries() {
        let mut entries = sample(5);
        entries.reverse();
        let file = Bytes::from(encoded(&entries));
        let mut decoded = decode(&file, &FormatLimits::default()).unwrap();
        entries.sort_by_key(|(k, _)| *k);
        decoded.sort_by_key(|(k, _)| *k);
        assert_eq!(decoded, entries);
    }

    #[test]
    fn empty_cache_round_trips() {
        let file = Bytes::from(encoded(&[]));
        assert_eq!(file.len() as u64, FILE_OVERHEAD);
        assert!(decode(&file, &FormatLimits::default()).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_of_a_rewritten_file_is_a_typed_error() {
        let file = encoded(&sample(4));
        for len in 0..file.len() {
            let cut = Bytes::copy_from_slice(&file[..len]);
            assert!(decode(&cut, &FormatLimits::default()).is_err(), "truncated to {len} decoded");
        }
    }

    #[test]
    fn appended_frames_win_and_a_torn_last_one_is_ignored() {
        let mut file = encoded(&sample(3));
        let newer =
            vec![(KernelKey([1; 32]), Bytes::from_static(b"newer")), (KernelKey([9; 32]), Bytes::from_static(b"new"))];
        append(&mut file, &newer);
        let whole = file.len();
        let log = decode_log(&Bytes::from(file.clone()), &FormatLimits::default()).unwrap();
        assert_eq!((log.appended_frames, log.torn_tail, log.next_sequence), (1, 0, 3));
        let decoded: HashMap<KernelKey, Bytes> = log.entries.into_iter().map(|e| (e.key, e.artifact)).collect();
        assert_eq!(decoded.len(), 4);
        assert_eq!(decoded[&KernelKey([1; 32])], Bytes::from_static(b"newer"));
        // Every cut of the appended frame reads as the file before it (old), never a mix.
        let mut before = file.clone();
        before.truncate(encoded(&sample(3)).len());
        let old = decode(&Bytes::from(before.clone()), &FormatLimits::default()).unwrap();
        for len in before.len()..whole {
            let cut = decode_log(&Bytes::copy_from_slice(&file[..len]), &FormatLimits::default()).unwrap();
            assert_eq!(cut.torn_tail, (len - before.len()) as u64);
            let keys: Vec<(KernelKey, Bytes)> = cut.entries.into_iter().map(|e| (e.key, e.artifact)).collect();
            assert_eq!(keys, old, "cut to {len}");
        }
        // Zeros after the last frame (a power loss that extended the size): ignored too.
        let mut zeros = file.clone();
        zeros.extend_from_slice(&[0; 100]);
        assert_eq!(decode_log(&Bytes::from(zeros), &FormatLimits::default()).unwrap().torn_tail, 100);
    }

    #[test]
    fn a_damaged_frame_followed_by_a_valid_one_is_corruption() {
        let mut file = encoded(&sample(2));
        append(&mut file, &[(KernelKey([7; 32]), Bytes::from_static(b"seven"))]);
        let second = file.len();
        append(&mut file, &[(KernelKey([8; 32]), Bytes::from_static(b"eight"))]);
        let mut damaged = file.clone();
        damaged[second - 30] ^= 1;
        let result = decode(&Bytes::from(damaged), &FormatLimits::default());
        assert!(matches!(result, Err(FormatError::DamagedFrame { .. })), "{result:?}");
        // Damage in the base (the rewritten part) is corruption even as the only frame.
        let mut base = encoded(&sample(2));
        let middle = base.len() - 30;
        base[middle] ^= 1;
        assert!(matches!(decode(&Bytes::from(base), &FormatLimits::default()), Err(FormatError::DamagedFrame { .. })));
    }

    #[test]
    fn a_valid_frame_between_two_damaged_ones_makes_it_corruption_not_a_torn_tail() {
        let mut file = encoded(&sample(2));
        let mut ends = Vec::new();
        for k in 0..3u8 {
            append(&mut file, &[(KernelKey([20 + k; 32]), Bytes::from(vec![k; 64]))]);
            ends.push(file.len());
        }
        // Damage inside the first and the last appended frames: the second is whole and valid,
        // so neither can be a torn append (which only ever follows a verified tail).
        file[ends[0] - 40] ^= 1;
        let last = file.len() - 40;
        file[last] ^= 1;
        let result = decode_log(&Bytes::from(file), &FormatLimits::default());
        assert!(matches!(result, Err(FormatError::DamagedFrame { .. })), "{result:?}");
    }

    /// A hostile tail: after an invalid frame, `nested` frame headers, filler, then their footers
    /// in reverse, each footer sealing the header it matches in length but not in hash. Checking
    /// each candidate hashes nearly the whole tail: unbounded, that is quadratic in the file's
    /// length (minutes for a few MiB). The check stops at twice the file's length and calls it
    /// damage: no torn append (a prefix of one frame) looks like this.
    #[test]
    fn nested_frame_lookalikes_after_an_invalid_frame_are_damage_found_in_bounded_work() {
        let mut file = encoded(&sample(2));
        let (nested, filler) = (64usize, 64 * 1024);
        let tail = file.len();
        file.extend_from_slice(b"torn....");
        let starts: Vec<usize> = (0..nested).map(|i| tail + 8 + i * FRAME_HEADER_LEN).collect();
        let footers_at = starts.last().unwrap() + FRAME_HEADER_LEN + filler;
        let end_of = |i: usize| footers_at + (nested - i) * FRAME_FOOTER_LEN;
        for (i, start) in starts.iter().enumerate() {
            let payload_len = (end_of(i) - FRAME_FOOTER_LEN - start - FRAME_HEADER_LEN) as u64;
            file.extend_from_slice(&FRAME_MAGIC);
            file.extend_from_slice(&0u64.to_le_bytes());
            file.extend_from_slice(&payload_len.to_le_bytes());
        }
        file.resize(footers_at, 0xAB);
        for i in (0..nested).rev() {
            let payload_len = (end_of(i) - FRAME_FOOTER_LEN - starts[i] - FRAME_HEADER_LEN) as u64;
            file.extend_from_slice(&0u64.to_le_bytes());
            file.extend_from_slice(&payload_len.to_le_bytes());
            file.extend_from_slice(&FOOTER_MAGIC);
        }
        assert_eq!(file.len(), end_of(0));
        let result = decode_log(&Bytes::from(file), &FormatLimits::default());
        match result {
            Err(FormatError::DamagedFrame { reason, .. }) => assert!(reason.contains("frame-like"), "{reason}"),
            other => panic!("expected damage, got {other:?}"),
        }
    }

    #[test]
    fn metadata_round_trips_and_versions_1_and_2_still_read() {
        let meta = EntryMeta { compiler: 1, build: 2, last_used: 3 };
        let (key, artifact) = (KernelKey([4; 32]), Bytes::from_static(b"ptx"));
        let mut out = Vec::new();
        encode_entries(&mut out, [(&key, &meta, &artifact)]).unwrap();
        assert_eq!(out.len() as u64, encoded_len([3]));
        let decoded = decode_entries(&Bytes::from(out), &FormatLimits::default()).unwrap();
        assert_eq!(decoded, [Entry { key, meta, artifact: artifact.clone() }]);
        // Version-1 and version-2 files, as the previous releases wrote them.
        for version in [1u16, 2] {
            let mut old = Vec::new();
            old.extend_from_slice(&MAGIC);
            old.extend_from_slice(&version.to_le_bytes());
            old.extend_from_slice(&0u16.to_le_bytes());
            old.extend_from_slice(&1u32.to_le_bytes());
            old.extend_from_slice(&key.0);
            if version == 2 {
                for field in [1u64, 2, 3] {
                    old.extend_from_slice(&field.to_le_bytes());
                }
            }
            old.extend_from_slice(&3u32.to_le_bytes());
            old.extend_from_slice(b"ptx");
            let checksum = xxh3_64(&old);
            old.extend_from_slice(&checksum.to_le_bytes());
            let log = decode_log(&Bytes::from(old), &FormatLimits::default()).unwrap();
            let want = if version == 1 { EntryMeta::default() } else { meta };
            assert_eq!((log.version, log.header), (version, None));
            assert_eq!(log.entries, [Entry { key, meta: want, artifact: artifact.clone() }]);
        }
    }

    #[test]
    fn limits_are_enforced() {
        let file = Bytes::from(encoded(&sample(4)));
        let tight = FormatLimits { max_artifact_bytes: 5, ..FormatLimits::default() };
        assert!(matches!(decode(&file, &tight), Err(FormatError::OverLimit { field: "artifact length", .. })));
        let few = FormatLimits { max_entries: 3, ..FormatLimits::default() };
        assert!(matches!(decode(&file, &few), Err(FormatError::OverLimit { field: "entry count", .. })));
    }
}
