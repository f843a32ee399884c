//! Snapshot testing with insta: everything a run showed, normalized, pinned down in a file
//! (`tests/snapshots/`), so a change in how a program ends is reviewed as a diff.

mod common;

use common::{cache, child};

#[test]
fn a_save_then_a_panic_at_exit() {
    let obs = child(["marker:ready", "save:{scratch}/cache", "stderr:Exception ignored in 0xdeadbeef", "panic:boom"])
        .run(&[cache().seeded("valid\nold\n")])
        .unwrap();
    insta::assert_yaml_snapshot!(obs.snapshot());
}
