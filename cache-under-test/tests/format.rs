//! The file format: what `encode` writes, `decode` reads back exactly; any damage to the bytes of
//! a written file (truncation, a flipped bit, a huge length, random input) is a typed
//! [`FormatError`], never a panic, and never an allocation beyond the input's own size. (A torn
//! *appended* frame is not damage: `tests/store.rs` covers appends.)

use bytes::Bytes;
use proptest::prelude::*;
use runtime_cache::format::{self, MAGIC, VERSION};
use runtime_cache::{FormatError, FormatLimits, KernelKey};

const HEADER_LEN: usize = format::HEADER_LEN;
/// The one frame of an encoded file: its header (magic, sequence, payload length) starts here.
const FRAME: usize = HEADER_LEN;
/// The frame's payload (entry count, entries) starts here.
const PAYLOAD: usize = FRAME + 24;
const FOOTER_LEN: usize = 24;
const LEGACY_HEADER_LEN: usize = 16;
const LEGACY_TRAILER_LEN: usize = 8;

fn encode(entries: &[(KernelKey, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    let written = format::encode(&mut out, entries.iter().map(|(key, artifact)| (key, artifact))).expect("encode");
    assert_eq!(written, out.len() as u64, "encode reports the bytes it wrote");
    out
}

/// Re-seals a version-1/2 `file` with a correct whole-file checksum.
fn reseal_legacy(file: &mut [u8]) {
    let body_end = file.len() - LEGACY_TRAILER_LEN;
    // XXH3-64 of everything before the trailer, as the format documents.
    let checksum = xxhash_rust::xxh3::xxh3_64(&file[..body_end]);
    file[body_end..].copy_from_slice(&checksum.to_le_bytes());
}

/// Re-seals the header of a version-3 `file`: bytes 32..40 are the XXH3-64 of bytes 0..32.
fn reseal_header(file: &mut [u8]) {
    let checksum = xxhash_rust::xxh3::xxh3_64(&file[..32]);
    file[32..40].copy_from_slice(&checksum.to_le_bytes());
}

/// Re-seals the one frame of an encoded file (file id 0) after its payload was edited in place,
/// so the decoder gets past the checksum to the field under test.
fn reseal_frame(file: &mut [u8]) {
    let footer = file.len() - FOOTER_LEN;
    let checksum = xxhash_rust::xxh3::xxh3_64_with_seed(&file[FRAME..footer], 0);
    file[footer..footer + 8].copy_from_slice(&checksum.to_le_bytes());
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
        // length handling is what is exercised: a version-2 file, and a version-3 frame.
        let mut file = Vec::with_capacity(LEGACY_HEADER_LEN + body.len() + LEGACY_TRAILER_LEN);
        file.extend_from_slice(&MAGIC);
        file.extend_from_slice(&2u16.to_le_bytes());
        file.extend_from_slice(&0u16.to_le_bytes());
        file.extend_from_slice(&count.to_le_bytes());
        file.extend_from_slice(&body);
        file.extend_from_slice(&[0u8; LEGACY_TRAILER_LEN]);
        reseal_legacy(&mut file);
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        if let Ok(entries) = result {
            prop_assert_eq!(entries.len() as u64, u64::from(count));
        }
        let mut file = encode(&[]);
        file.truncate(PAYLOAD);
        file.extend_from_slice(&count.to_le_bytes());
        file.extend_from_slice(&body);
        let payload_len = (4 + body.len()) as u64;
        file[FRAME + 16..FRAME + 24].copy_from_slice(&payload_len.to_le_bytes());
        file.extend_from_slice(&[0u8; 8]);
        file.extend_from_slice(&payload_len.to_le_bytes());
        file.extend_from_slice(&format::FOOTER_MAGIC);
        let base_len = file.len() as u64;
        file[24..32].copy_from_slice(&base_len.to_le_bytes());
        reseal_header(&mut file);
        reseal_frame(&mut file);
        let result = format::decode(&Bytes::from(file), &FormatLimits::default());
        if let Ok(entries) = result {
            prop_assert_eq!(entries.len() as u64, u64::from(count));
        }
    }

    #[test]
    fn a_huge_artifact_length_is_a_typed_error(entries in entries_strategy(), len in any::<u32>()) {
        prop_assume!(!entries.is_empty());
        let mut file = encode(&entries);
        // The first entry's length field sits right after the frame's entry count, its 32-byte
        // key and its 24 bytes of metadata (compiler tag, build tag, last use).
        let field = PAYLOAD + 4 + 32 + 24;
        let original = u32::from_le_bytes(file[field..field + 4].try_into().unwrap());
        prop_assume!(len != original);
        file[field..field + 4].copy_from_slice(&len.to_le_bytes());
        reseal_frame(&mut file);
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
        file[PAYLOAD..PAYLOAD + 4].copy_from_slice(&count.to_le_bytes());
        reseal_frame(&mut file);
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
    version[8..10].copy_from_slice(&(VERSION + 1).to_le_bytes());
    assert!(matches!(decode(version.clone()), Err(FormatError::ChecksumMismatch { .. })));
    reseal_header(&mut version);
    assert!(matches!(decode(version), Err(FormatError::UnsupportedVersion { found: 4 })));

    let mut header_checksum = good.clone();
    header_checksum[39] ^= 0x80;
    assert!(matches!(decode(header_checksum), Err(FormatError::ChecksumMismatch { .. })));

    // The frame below the base length was written whole: damage there is corruption.
    let mut frame_checksum = good.clone();
    let footer = frame_checksum.len() - FOOTER_LEN;
    frame_checksum[footer] ^= 0x80;
    assert!(matches!(decode(frame_checksum), Err(FormatError::DamagedFrame { .. })));

    let mut base_len = good.clone();
    base_len[24..32].copy_from_slice(&(good.len() as u64 + 1).to_le_bytes());
    reseal_header(&mut base_len);
    assert!(matches!(decode(base_len), Err(FormatError::Truncated { .. })));

    let mut flags = good.clone();
    flags[10] = 1;
    reseal_header(&mut flags);
    assert!(matches!(decode(flags), Err(FormatError::UnknownFlags(1))));

    let mut unsorted = good.clone();
    // Swap the two keys: same bytes, wrong order.
    let first_key = PAYLOAD + 4;
    let second_key = first_key + 32 + 24 + 4 + 3;
    unsorted[first_key..first_key + 32].copy_from_slice(&[2; 32]);
    unsorted[second_key..second_key + 32].copy_from_slice(&[1; 32]);
    reseal_frame(&mut unsorted);
    assert!(matches!(decode(unsorted), Err(FormatError::UnsortedKeys { index: 1 })));

    // Four bytes of junk after the last entry, inside a frame whose lengths and seals agree.
    let footer = good.len() - FOOTER_LEN;
    let mut trailing = good[..footer].to_vec();
    trailing.extend_from_slice(b"junk");
    trailing.extend_from_slice(&good[footer..]);
    let payload_len = u64::from_le_bytes(good[FRAME + 16..FRAME + 24].try_into().unwrap()) + 4;
    trailing[FRAME + 16..FRAME + 24].copy_from_slice(&payload_len.to_le_bytes());
    let footer = trailing.len() - FOOTER_LEN;
    trailing[footer + 8..footer + 16].copy_from_slice(&payload_len.to_le_bytes());
    let base_len = trailing.len() as u64;
    trailing[24..32].copy_from_slice(&base_len.to_le_bytes());
    reseal_header(&mut trailing);
    reseal_frame(&mut trailing);
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
