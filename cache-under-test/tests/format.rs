//! The file format: what `encode` writes, `decode` reads back exactly; any damage to the bytes
//! (truncation, a flipped bit, a huge length, random input) is a typed [`FormatError`], never a
//! panic, and never an allocation beyond the input's own size.

use bytes::Bytes;
use proptest::prelude::*;
use runtime_cache::format::{self, MAGIC, VERSION};
use runtime_cache::{FormatError, FormatLimits, KernelKey};

const HEADER_LEN: usize = 16;
const TRAILER_LEN: usize = 8;

fn encode(entries: &[(KernelKey, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    let written = format::encode(&mut out, entries.iter().map(|(key, artifact)| (key, artifact))).expect("encode");
    assert_eq!(written, out.len() as u64, "encode reports the bytes it wrote");
    out
}

/// Re-seals `file` with a correct checksum, so the decoder gets past the checksum to the field
/// under test.
fn reseal(file: &mut [u8]) {
    let body_end = file.len() - TRAILER_LEN;
    // XXH3-64 of everything before the trailer, as the format documents.
    let checksum = xxhash_rust::xxh3::xxh3_64(&file[..body_end]);
    file[body_end..].copy_from_slice(&checksum.to_le_bytes());
}

fn entries_strategy() -> impl Strategy<Value = Vec<(KernelKey, Bytes)>> {
    proptest::collection::btree_map(any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..300), 0..12)
        .prop_map(|map| map.into_iter().map(|(key, artifact)| (KernelKey(key), Bytes::from(artifact))).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip_is_exact_whatever_the_input_order(entries in entries_strategy(), rotate in 0usize..12) {
        let mut shuffled = entries.clone();
        if !shuffled.is_empty() {
            let by = rotate % shuffled.len();
            shuffled.rotate_left(by);
        }
        let file = encode(&shuffled);
        prop_assert_eq!(&file[..8], &MAGIC[..]);
        prop_assert_eq!(u16::from_le_bytes([file[8], file[9]]), VERSION);
        let decoded = format::decode(&Bytes::from(file.clone()), &FormatLimits::default()).expect("decode");
        // `entries` came out of a BTreeMap: sorted by key, as the file stores them.
        prop_assert_eq!(decoded, entries.clone());
        // Encoding is canonical: the same entries in any order give the same bytes.
        prop_assert_eq!(encode(&entries), file);
    }

    #[test]
    fn every_truncation_is_a_typed_error(entries in entries_strategy(), cut in any::<prop::sample::Index>()) {
        let file = encode(&entries);
        let len = cut.index(file.len());
        let result = format::decode(&Bytes::copy_from_slice(&file[..len]), &FormatLimits::default());
        prop_assert!(result.is_err(), "a file cut to {} of {} bytes decoded", len, file.len());
    }

    #[test]
    fn every_flipped_bit_is_a_typed_error(entries in entries_strategy(), at in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut file = encode(&entries);
        let at = at.index(file.len());
        file[at] ^= 1 << bit;
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        prop_assert!(result.is_err(), "a flip of bit {} of byte {} went unnoticed", bit, at);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        // A typed result either way; mostly an error (checksum), never a panic.
        let _ = format::decode(&Bytes::from(bytes), &FormatLimits::default());
    }

    #[test]
    fn random_bodies_behind_a_valid_header_and_checksum_never_panic(
        count in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..1024),
    ) {
        // Random content that passes the magic, version and checksum checks, so the decoder's
        // length handling is what is exercised.
        let mut file = Vec::with_capacity(HEADER_LEN + body.len() + TRAILER_LEN);
        file.extend_from_slice(&MAGIC);
        file.extend_from_slice(&VERSION.to_le_bytes());
        file.extend_from_slice(&0u16.to_le_bytes());
        file.extend_from_slice(&count.to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(&[0u8; TRAILER_LEN]);
        reseal(&mut file);
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        if let Ok(entries) = result {
            prop_assert_eq!(entries.len() as u64, u64::from(count));
        }
    }

    #[test]
    fn a_huge_artifact_length_is_a_typed_error(entries in entries_strategy(), len in any::<u32>()) {
        prop_assume!(!entries.is_empty());
        let mut file = encode(&entries);
        // The first entry's length field sits right after the header, its 32-byte key and its
        // 24 bytes of metadata (compiler tag, build tag, last use).
        let field = HEADER_LEN + 32 + 24;
        let original = u32::from_le_bytes(file[field..field + 4].try_into().unwrap());
        prop_assume!(len != original);
        file[field..field + 4].copy_from_slice(&len.to_le_bytes());
        reseal(&mut file);
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        prop_assert!(
            matches!(result, Err(FormatError::Truncated { .. } | FormatError::OverLimit { .. } | FormatError::UnsortedKeys { .. } | FormatError::TrailingBytes(_))),
            "length {} instead of {} gave {:?}", len, original, result
        );
    }

    #[test]
    fn a_huge_entry_count_is_a_typed_error(entries in entries_strategy(), count in any::<u32>()) {
        let mut file = encode(&entries);
        prop_assume!(count as usize != entries.len());
        file[12..16].copy_from_slice(&count.to_le_bytes());
        reseal(&mut file);
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        prop_assert!(
            matches!(result, Err(FormatError::Truncated { .. } | FormatError::OverLimit { .. } | FormatError::TrailingBytes(_))),
            "count {} instead of {} gave {:?}", count, entries.len(), result
        );
    }
}

#[test]
fn each_damaged_field_gets_its_own_error() {
    let entries =
        vec![(KernelKey([1; 32]), Bytes::from_static(b"one")), (KernelKey([2; 32]), Bytes::from_static(b"two"))];
    let good = encode(&entries);
    let decode = |file: Vec<u8>| format::decode(&Bytes::from(file), &FormatLimits::default());

    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert!(matches!(decode(bad_magic), Err(FormatError::BadMagic { .. })));

    // The checksum is checked before the version (issue #12, item 7): a changed version with the
    // old checksum is damage, set aside at open; only a sealed file of another version is
    // "unsupported", left alone.
    let mut version = good.clone();
    version[8..10].copy_from_slice(&3u16.to_le_bytes());
    assert!(matches!(decode(version.clone()), Err(FormatError::ChecksumMismatch { .. })));
    reseal(&mut version);
    assert!(matches!(decode(version), Err(FormatError::UnsupportedVersion { found: 3 })));

    let mut checksum = good.clone();
    let last = checksum.len() - 1;
    checksum[last] ^= 0x80;
    assert!(matches!(decode(checksum), Err(FormatError::ChecksumMismatch { .. })));

    let mut flags = good.clone();
    flags[10] = 1;
    reseal(&mut flags);
    assert!(matches!(decode(flags), Err(FormatError::UnknownFlags(1))));

    let mut unsorted = good.clone();
    // Swap the two keys: same bytes, wrong order.
    let second_key = HEADER_LEN + 32 + 24 + 4 + 3;
    unsorted[HEADER_LEN..HEADER_LEN + 32].copy_from_slice(&[2; 32]);
    unsorted[second_key..second_key + 32].copy_from_slice(&[1; 32]);
    reseal(&mut unsorted);
    assert!(matches!(decode(unsorted), Err(FormatError::UnsortedKeys { index: 1 })));

    let mut trailing = good[..good.len() - TRAILER_LEN].to_vec();
    trailing.extend_from_slice(b"junk");
    trailing.extend_from_slice(&[0; TRAILER_LEN]);
    reseal(&mut trailing);
    assert!(matches!(decode(trailing), Err(FormatError::TrailingBytes(4))));

    let small = FormatLimits { max_file_bytes: good.len() as u64 - 1, ..FormatLimits::default() };
    assert!(matches!(
        format::decode(&Bytes::from(good.clone()), &small),
        Err(FormatError::OverLimit { field: "file size", .. })
    ));
    assert_eq!(decode(good).expect("the undamaged file decodes"), entries);
}

#[test]
fn decoded_artifacts_share_the_file_buffer() {
    let entries = vec![(KernelKey([7; 32]), Bytes::from(vec![9u8; 1000]))];
    let file = Bytes::from(encode(&entries));
    let decoded = format::decode(&file, &FormatLimits::default()).expect("decode");
    let artifact = &decoded[0].1;
    let file_range = file.as_ptr() as usize..file.as_ptr() as usize + file.len();
    assert!(file_range.contains(&(artifact.as_ptr() as usize)), "the artifact is a slice of the file, not a copy");
}
