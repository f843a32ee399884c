//! The cache file format, version 2: versioned, checksummed, with bounded lengths, and per-entry
//! metadata for eviction.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"RTKCACHE"
//! 8       2     format version (u16 LE) = 2
//! 10      2     flags (u16 LE) = 0
//! 12      4     entry count (u32 LE)
//! 16      ...   entries, sorted by key:
//!                 key (32 bytes)
//!                 compiler tag (u64 LE; 0 = unknown)   which compiler made it
//!                 build tag (u64 LE; 0 = unknown)      which exact build of that compiler
//!                 last used (u64 LE, Unix seconds; 0 = unknown)
//!                 artifact length (u32 LE) | artifact
//! end-8   8     XXH3-64 (LE) of every byte before it
//! ```
//!
//! Version 1 (the same without the three metadata fields: key | length | artifact) is still
//! read; its entries get unknown tags, and the next save writes version 2.
//!
//! Every format version, present and future, ends with the XXH3-64 trailer of everything before
//! it, so a reader can tell damage from a newer version: decoding checks the size, the magic and
//! the checksum first, and only then the version. Then it parses, then checks every length against
//! both the configured [`FormatLimits`] and the bytes actually left, so a hostile or truncated
//! file yields a [`FormatError`]: it can neither panic nor make the decoder allocate more than the
//! file's own size. Decoded artifacts are zero-copy slices of the file's bytes.

use std::io::{self, Write};

use bytes::Bytes;
use xxhash_rust::xxh3::Xxh3Default;

use crate::key::KernelKey;

/// The file's magic bytes.
pub const MAGIC: [u8; 8] = *b"RTKCACHE";
/// The format version this crate writes.
pub const VERSION: u16 = 2;
/// The format versions this crate reads.
pub const READABLE_VERSIONS: [u16; 2] = [1, 2];

const HEADER_LEN: usize = 16;
const TRAILER_LEN: usize = 8;
const V1_ENTRY_HEADER_LEN: usize = 32 + 4;
const ENTRY_HEADER_LEN: usize = 32 + 8 + 8 + 8 + 4;

/// Bytes of a file besides its entries (header and trailer).
pub const FILE_OVERHEAD: u64 = (HEADER_LEN + TRAILER_LEN) as u64;

/// Bytes one entry takes in a version-2 file besides its artifact.
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
    #[error("format version {found} is not supported (this build reads versions 1 and {VERSION})")]
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
}

/// Writes `entries` (any order; they are written sorted by key) to `out` as a version-2 file with
/// unknown metadata. Returns the number of bytes written.
pub fn encode<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a Bytes)>,
) -> io::Result<u64> {
    const UNKNOWN: EntryMeta = EntryMeta { compiler: 0, build: 0, last_used: 0 };
    encode_entries(out, entries.into_iter().map(|(key, artifact)| (key, &UNKNOWN, artifact)))
}

/// Writes `entries` with their metadata (any order; they are written sorted by key) to `out` as a
/// version-2 file. Returns the number of bytes written.
pub fn encode_entries<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a EntryMeta, &'a Bytes)>,
) -> io::Result<u64> {
    let mut sorted: Vec<(&KernelKey, &EntryMeta, &Bytes)> = entries.into_iter().collect();
    sorted.sort_unstable_by_key(|(key, _, _)| **key);
    let count = u32::try_from(sorted.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "more than u32::MAX entries"))?;
    let mut writer = HashingWriter { inner: out, hasher: Xxh3Default::new(), written: 0 };
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&count.to_le_bytes());
    writer.write_all(&header)?;
    for (key, meta, artifact) in sorted {
        let len = u32::try_from(artifact.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "artifact over 4 GiB"))?;
        let mut entry_header = [0u8; ENTRY_HEADER_LEN];
        entry_header[..32].copy_from_slice(&key.0);
        entry_header[32..40].copy_from_slice(&meta.compiler.to_le_bytes());
        entry_header[40..48].copy_from_slice(&meta.build.to_le_bytes());
        entry_header[48..56].copy_from_slice(&meta.last_used.to_le_bytes());
        entry_header[56..].copy_from_slice(&len.to_le_bytes());
        writer.write_all(&entry_header)?;
        writer.write_all(artifact)?;
    }
    let checksum = writer.hasher.digest();
    let written = writer.written;
    out.write_all(&checksum.to_le_bytes())?;
    Ok(written + TRAILER_LEN as u64)
}

/// The size of a version-2 file holding artifacts of these lengths.
pub fn encoded_len(artifact_lengths: impl IntoIterator<Item = usize>) -> u64 {
    artifact_lengths.into_iter().fold(FILE_OVERHEAD, |total, len| total + ENTRY_OVERHEAD + len as u64)
}

/// Decodes a whole file (version 1 or 2) into `(key, artifact)` pairs, enforcing `limits`.
/// Artifacts are slices of `file` (no copy).
pub fn decode(file: &Bytes, limits: &FormatLimits) -> Result<Vec<(KernelKey, Bytes)>, FormatError> {
    Ok(decode_entries(file, limits)?.into_iter().map(|entry| (entry.key, entry.artifact)).collect())
}

/// Decodes a whole file (version 1 or 2) with each entry's metadata, enforcing `limits`.
pub fn decode_entries(file: &Bytes, limits: &FormatLimits) -> Result<Vec<Entry>, FormatError> {
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
pub(crate) fn decode_lenient(file: &Bytes) -> Result<Vec<Entry>, FormatError> {
    decode_bounded(file, None)
}

/// The decoder: structure always, `limits` (count, artifact size) when given.
fn decode_bounded(file: &Bytes, limits: Option<&FormatLimits>) -> Result<Vec<Entry>, FormatError> {
    if file.len() < HEADER_LEN + TRAILER_LEN {
        return Err(FormatError::Truncated { offset: 0, needed: HEADER_LEN + TRAILER_LEN, available: file.len() });
    }
    let found: [u8; 8] = file[..8].try_into().expect("slice of 8");
    if found != MAGIC {
        return Err(FormatError::BadMagic { found });
    }
    // The checksum comes before the version: a flipped bit in the header is damage (set aside),
    // not a file "of another version" left in place for ever. Every version keeps this trailer.
    let body_end = file.len() - TRAILER_LEN;
    let stored = u64::from_le_bytes(file[body_end..].try_into().expect("slice of 8"));
    let computed = xxhash_rust::xxh3::xxh3_64(&file[..body_end]);
    if stored != computed {
        return Err(FormatError::ChecksumMismatch { stored, computed });
    }
    let version = u16::from_le_bytes([file[8], file[9]]);
    let entry_header_len = match version {
        1 => V1_ENTRY_HEADER_LEN,
        VERSION => ENTRY_HEADER_LEN,
        found => return Err(FormatError::UnsupportedVersion { found }),
    };
    let flags = u16::from_le_bytes([file[10], file[11]]);
    if flags != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    let count = u32::from_le_bytes(file[12..16].try_into().expect("slice of 4"));
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
    let body_len = body_end - HEADER_LEN;
    if (count as usize).saturating_mul(entry_header_len) > body_len {
        return Err(FormatError::Truncated {
            offset: HEADER_LEN,
            needed: (count as usize).saturating_mul(entry_header_len),
            available: body_len,
        });
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut offset = HEADER_LEN;
    let mut previous: Option<KernelKey> = None;
    let u64_at = |at: usize| u64::from_le_bytes(file[at..at + 8].try_into().expect("slice of 8"));
    for index in 0..count {
        let available = body_end - offset;
        if available < entry_header_len {
            return Err(FormatError::Truncated { offset, needed: entry_header_len, available });
        }
        let key = KernelKey(file[offset..offset + 32].try_into().expect("slice of 32"));
        let meta = match version {
            1 => EntryMeta::default(),
            _ => {
                EntryMeta { compiler: u64_at(offset + 32), build: u64_at(offset + 40), last_used: u64_at(offset + 48) }
            }
        };
        let len_at = offset + entry_header_len - 4;
        let len = u32::from_le_bytes(file[len_at..len_at + 4].try_into().expect("slice of 4"));
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
        if body_end - offset < len {
            return Err(FormatError::Truncated { offset, needed: len, available: body_end - offset });
        }
        entries.push(Entry { key, meta, artifact: file.slice(offset..offset + len) });
        offset += len;
        previous = Some(key);
    }
    if offset != body_end {
        return Err(FormatError::TrailingBytes(body_end - offset));
    }
    Ok(entries)
}

/// Hashes everything written through it.
struct HashingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: Xxh3Default,
    written: u64,
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
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
        assert_eq!(file.len(), HEADER_LEN + TRAILER_LEN);
        assert!(decode(&file, &FormatLimits::default()).unwrap().is_empty());
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let file = encoded(&sample(4));
        for len in 0..file.len() {
            let cut = Bytes::copy_from_slice(&file[..len]);
            assert!(decode(&cut, &FormatLimits::default()).is_err(), "truncated to {len} decoded");
        }
    }

    #[test]
    fn metadata_round_trips_and_version_1_still_reads() {
        let meta = EntryMeta { compiler: 1, build: 2, last_used: 3 };
        let (key, artifact) = (KernelKey([4; 32]), Bytes::from_static(b"ptx"));
        let mut out = Vec::new();
        encode_entries(&mut out, [(&key, &meta, &artifact)]).unwrap();
        assert_eq!(out.len() as u64, encoded_len([3]));
        let decoded = decode_entries(&Bytes::from(out), &FormatLimits::default()).unwrap();
        assert_eq!(decoded, [Entry { key, meta, artifact: artifact.clone() }]);
        // A version-1 file, as the previous release wrote it.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&MAGIC);
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&0u16.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&key.0);
        v1.extend_from_slice(&3u32.to_le_bytes());
        v1.extend_from_slice(b"ptx");
        let checksum = xxhash_rust::xxh3::xxh3_64(&v1);
        v1.extend_from_slice(&checksum.to_le_bytes());
        let decoded = decode_entries(&Bytes::from(v1), &FormatLimits::default()).unwrap();
        assert_eq!(decoded, [Entry { key, meta: EntryMeta::default(), artifact }]);
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
