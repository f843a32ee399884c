//! The cache file format, version 1: versioned, checksummed, with bounded lengths.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"RTKCACHE"
//! 8       2     format version (u16 LE) = 1
//! 10      2     flags (u16 LE) = 0
//! 12      4     entry count (u32 LE)
//! 16      ...   entries, sorted by key: key (32 bytes) | artifact length (u32 LE) | artifact
//! end-8   8     XXH3-64 (LE) of every byte before it
//! ```
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
/// The format version this crate writes and reads.
pub const VERSION: u16 = 1;

const HEADER_LEN: usize = 16;
const TRAILER_LEN: usize = 8;
const ENTRY_HEADER_LEN: usize = 32 + 4;

/// Upper bounds a decoder enforces, whatever the file claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatLimits {
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
    /// Most entries accepted.
    pub max_entries: u32,
    /// Largest single artifact accepted, in bytes.
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
    #[error("format version {found} is not supported (this build reads version {VERSION})")]
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

/// Writes `entries` (any order; they are written sorted by key) to `out` as a version-1 file.
/// Returns the number of bytes written.
pub fn encode<'a, W: Write>(
    out: &mut W,
    entries: impl IntoIterator<Item = (&'a KernelKey, &'a Bytes)>,
) -> io::Result<u64> {
    let mut sorted: Vec<(&KernelKey, &Bytes)> = entries.into_iter().collect();
    sorted.sort_unstable_by_key(|(key, _)| **key);
    let count = u32::try_from(sorted.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "more than u32::MAX entries"))?;
    let mut writer = HashingWriter { inner: out, hasher: Xxh3Default::new(), written: 0 };
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..10].copy_from_slice(&VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&count.to_le_bytes());
    writer.write_all(&header)?;
    for (key, artifact) in sorted {
        let len = u32::try_from(artifact.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "artifact over 4 GiB"))?;
        let mut entry_header = [0u8; ENTRY_HEADER_LEN];
        entry_header[..32].copy_from_slice(&key.0);
        entry_header[32..].copy_from_slice(&len.to_le_bytes());
        writer.write_all(&entry_header)?;
        writer.write_all(artifact)?;
    }
    let checksum = writer.hasher.digest();
    let written = writer.written;
    out.write_all(&checksum.to_le_bytes())?;
    Ok(written + TRAILER_LEN as u64)
}

/// Decodes a whole file. Artifacts are slices of `file` (no copy).
pub fn decode(file: &Bytes, limits: &FormatLimits) -> Result<Vec<(KernelKey, Bytes)>, FormatError> {
    if file.len() as u64 > limits.max_file_bytes {
        return Err(FormatError::OverLimit {
            field: "file size",
            value: file.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
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
    if version != VERSION {
        return Err(FormatError::UnsupportedVersion { found: version });
    }
    let flags = u16::from_le_bytes([file[10], file[11]]);
    if flags != 0 {
        return Err(FormatError::UnknownFlags(flags));
    }
    let count = u32::from_le_bytes(file[12..16].try_into().expect("slice of 4"));
    if count > limits.max_entries {
        return Err(FormatError::OverLimit {
            field: "entry count",
            value: count.into(),
            limit: limits.max_entries.into(),
        });
    }
    // Every entry needs at least its header, so this bounds the allocation by the file's size.
    let body_len = body_end - HEADER_LEN;
    if (count as usize).saturating_mul(ENTRY_HEADER_LEN) > body_len {
        return Err(FormatError::Truncated {
            offset: HEADER_LEN,
            needed: (count as usize).saturating_mul(ENTRY_HEADER_LEN),
            available: body_len,
        });
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut offset = HEADER_LEN;
    let mut previous: Option<KernelKey> = None;
    for index in 0..count {
        let available = body_end - offset;
        if available < ENTRY_HEADER_LEN {
            return Err(FormatError::Truncated { offset, needed: ENTRY_HEADER_LEN, available });
        }
        let key = KernelKey(file[offset..offset + 32].try_into().expect("slice of 32"));
        let len = u32::from_le_bytes(file[offset + 32..offset + 36].try_into().expect("slice of 4"));
        if len > limits.max_artifact_bytes {
            return Err(FormatError::OverLimit {
                field: "artifact length",
                value: len.into(),
                limit: limits.max_artifact_bytes.into(),
            });
        }
        if previous.is_some_and(|previous| previous >= key) {
            return Err(FormatError::UnsortedKeys { index });
        }
        offset += ENTRY_HEADER_LEN;
        let len = len as usize;
        if body_end - offset < len {
            return Err(FormatError::Truncated { offset, needed: len, available: body_end - offset });
        }
        entries.push((key, file.slice(offset..offset + len)));
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
    fn limits_are_enforced() {
        let file = Bytes::from(encoded(&sample(4)));
        let tight = FormatLimits { max_artifact_bytes: 5, ..FormatLimits::default() };
        assert!(matches!(decode(&file, &tight), Err(FormatError::OverLimit { field: "artifact length", .. })));
        let few = FormatLimits { max_entries: 3, ..FormatLimits::default() };
        assert!(matches!(decode(&file, &few), Err(FormatError::OverLimit { field: "entry count", .. })));
    }
}
