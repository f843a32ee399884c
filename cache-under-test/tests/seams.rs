//! The seams of the lifecycle code (`src/seam.rs`) exist only with the `failpoints` feature: a
//! user's build (`cargo test -p runtime-cache`, no feature) carries no seam, no seam name, no
//! injected-failure text and no exit-path print, in any profile. Checked on this test's own
//! executable after running the code that holds the seams; in the workspace build (the
//! scenarios crate turns `failpoints` on) the same search must find them, which shows that the
//! search itself works.

use std::time::Duration;

use bytes::Bytes;
use runtime_cache::{CacheOptions, KernelKey, RuntimeCache};

/// Texts only seam code holds, each reversed so that this test's own literals never match.
const SEAM_TEXTS_REVERSED: [&str; 7] = [
    "kcol-piks",            // FileLock::acquire
    "egrem-piks",           // store::save
    "draug-ecno-piks",      // Shared::save_now, autosave
    "retsigernu-piks",      // RuntimeCache::finish_autosave
    "kooh-tixe-piks",       // RuntimeCache::open
    " ta eruliaf detcejni", // seam::injected ("injected failure at ")
    "tixe ta )s(ehcac ",    // seam::print_at_exit (" cache(s) at exit")
];

fn occurs(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[test]
fn a_users_build_carries_no_seam() {
    // Run every path that holds a seam, so that the linker keeps it.
    let dir = tempfile::tempdir().unwrap();
    let options = CacheOptions { autosave: true, lock_timeout: Duration::from_secs(2), ..CacheOptions::default() };
    let cache = RuntimeCache::open(dir.path().join("kernels.rtc"), options).unwrap();
    cache.insert(KernelKey([7; 32]), Bytes::from_static(b"artifact"));
    cache.save().unwrap();
    cache.insert(KernelKey([8; 32]), Bytes::from_static(b"artifact"));
    drop(cache);

    let binary = std::fs::read(std::env::current_exe().unwrap()).unwrap();
    let found: Vec<String> = SEAM_TEXTS_REVERSED
        .iter()
        .map(|reversed| reversed.chars().rev().collect::<String>())
        .filter(|text| occurs(&binary, text.as_bytes()))
        .collect();
    if cfg!(feature = "failpoints") {
        assert_eq!(found.len(), SEAM_TEXTS_REVERSED.len(), "with failpoints, every seam text is built in: {found:?}");
    } else {
        assert_eq!(found, Vec::<String>::new(), "a build without failpoints carries seam code");
    }
}
