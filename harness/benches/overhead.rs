//! Per-run overhead of the harness against a bare spawn-and-wait of the same do-nothing child:
//! the hardened runner (private run folder, journal, inotify black box, descendant sweep) and a
//! scenario file's cell (the same, plus judging by its oracles).
//!
//! `cargo bench -p exit-harness --bench overhead`

use std::path::Path;
use std::process::Command;

use criterion::{Criterion, criterion_group, criterion_main};
use exit_harness::{ChildSpec, FileUnderTest, scenario_file};

fn overhead(c: &mut Criterion) {
    let mut group = c.benchmark_group("do-nothing child");
    group.bench_function("bare Command::status", |b| {
        b.iter(|| assert!(Command::new("/bin/true").status().expect("spawn").success()));
    });
    let spec = ChildSpec::new("/bin/true");
    let files = [FileUnderTest::new("cache.bin")];
    group.bench_function("exit-harness runner", |b| {
        b.iter(|| assert!(spec.run(&files).expect("observation").outcome.shell_code() == 0));
    });
    let file = "name = \"do nothing\"\ncommand = [\"/bin/true\"]\n[expect]\nexit = \"code 0\"\n";
    let cell = scenario_file::parse(Path::new("bench.toml"), file).expect("a valid scenario");
    group.bench_function("scenario file (exit-harness run)", |b| {
        b.iter(|| assert!(cell.run().passed()));
    });
    group.finish();
}

criterion_group!(benches, overhead);
criterion_main!(benches);
