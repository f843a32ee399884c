//! Exit registry: one register + unregister cycle, with 0, 1 000 and 100 000 other live
//! registrations (target: flat in the live count, <= 100 ns).

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use runtime_cache::testing::DummyRegistration;

fn register_unregister(c: &mut Criterion) {
    let mut group = c.benchmark_group("registry_register_unregister");
    for live in [0usize, 1_000, 100_000] {
        let held: Vec<DummyRegistration> =
            (0..live).map(|_| DummyRegistration::register().expect("register")).collect();
        assert_eq!(runtime_cache::exit_registry_len(), live);
        group.bench_with_input(BenchmarkId::from_parameter(live), &live, |b, _| {
            b.iter(|| drop(std::hint::black_box(DummyRegistration::register().expect("register"))));
        });
        drop(held);
        assert_eq!(runtime_cache::exit_registry_len(), 0);
    }
    group.finish();
}

criterion_group!(benches, register_unregister);
criterion_main!(benches);
