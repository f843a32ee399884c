//! Per-scenario overhead of the harness (runner + journal + inotify black box + survivor check)
//! against a bare spawn-and-wait of the same do-nothing child.
//!
//! `cargo bench -p exit-harness --bench overhead`

use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use exit_harness::{ChildSpec, FileUnderTest};

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("do-nothing child");
    group.bench_function("bare Command::status", |b| {
        b.iter(|| assert!(Command::new("/bin/true").status().expect("spawn").success()));
    });
    let spec = ChildSpec::new("/bin/true");
    let files = [FileUnderTest::new("cache.bin")];
    group.bench_function("exit-harness run", |b| {
        b.iter(|| assert!(spec.run(&files).expect("observation").outcome.shell_code() == 0));
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
