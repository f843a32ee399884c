//! Issue #16, item 7: per-key single flight. Seen failing before the fix: 8 threads x 3 kernels
//! on a cold cache made 24 compiles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use bytes::Bytes;
use runtime_cache::{
    Backend, CompileError, CompilerIdentity, Engine, EngineError, KernelCompiler, KernelOrigin, KernelSpec,
    RuntimeSettings, SyntheticCompiler,
};

fn spec(i: u32) -> KernelSpec {
    KernelSpec::new(format!("k{i}.cu"), format!("extern \"C\" __global__ void k{i}() {{}}"), format!("k{i}"))
}

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    // A compile that takes long enough for every thread to miss while it runs.
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::from_millis(200))),
        ..RuntimeSettings::with_cache(dir.join("kernels.rtc"))
    };
    Arc::new(Engine::new(settings).unwrap())
}

#[test]
fn eight_threads_missing_three_kernels_compile_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (engine, start) = (engine.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..3).map(|i| engine.kernel(&spec(i)).unwrap()).collect::<Vec<_>>()
            })
        })
        .collect();
    let kernels: Vec<_> = threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect();
    let stats = engine.stats();
    assert_eq!(stats.compiles, 3, "8 threads x 3 kernels made {} compiles", stats.compiles);
    let compiled = kernels.iter().filter(|kernel| kernel.origin == KernelOrigin::Compiled).count();
    assert_eq!(compiled, 3);
    assert_eq!(stats.awaited + stats.hits, 21, "{stats:?}");
    assert_eq!(stats.misses, 3 + stats.awaited, "{stats:?}");
    // Every thread got the same artifact for a key.
    for i in 0..3 {
        let first = engine.kernel(&spec(i)).unwrap();
        assert!(kernels.iter().filter(|kernel| kernel.key == first.key).all(|kernel| kernel.bytes() == first.bytes()));
    }
}

/// A compile error is shared with the callers waiting for it (same source, same error): one
/// compile, every caller gets NVRTC's (here: the compiler's) log, nothing is cached.
#[test]
fn a_failed_kernel_compile_is_shared_with_its_waiters() {
    #[derive(Debug)]
    struct Failing {
        identity: CompilerIdentity,
        runs: AtomicUsize,
    }
    impl KernelCompiler for Failing {
        fn identity(&self) -> &CompilerIdentity {
            &self.identity
        }
        fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError> {
            self.runs.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(200));
            Err(CompileError::Rejected {
                program: spec.program_name.clone(),
                log: "error: expected an expression".into(),
            })
        }
    }
    let failing = Arc::new(Failing {
        identity: CompilerIdentity { name: "failing".into(), version: "1".into() },
        runs: AtomicUsize::new(0),
    });
    let dir = tempfile::tempdir().unwrap();
    let settings = RuntimeSettings {
        backend: Backend::Custom(failing.clone()),
        ..RuntimeSettings::with_cache(dir.path().join("k.rtc"))
    };
    let engine = Arc::new(Engine::new(settings).unwrap());
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, start) = (engine.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                engine.kernel(&spec(1))
            })
        })
        .collect();
    for thread in threads {
        match thread.join().unwrap() {
            Err(EngineError::Compile(CompileError::Rejected { log, .. })) => assert!(log.contains("expected")),
            other => panic!("expected the shared compile error, got {other:?}"),
        }
    }
    assert_eq!(failing.runs.load(Ordering::SeqCst), 1, "the failing compile ran more than once");
    assert!(engine.runtime_cache().unwrap().is_empty());
    // The next call tries again.
    assert!(engine.kernel(&spec(1)).is_err());
    assert_eq!(failing.runs.load(Ordering::SeqCst), 2);
}

/// `get_or_compile`'s error type is the application's: it cannot be handed to the waiters, so
/// each of them runs its own closure, one at a time; nothing is cached, and a later call tries
/// again.
#[test]
fn a_failed_get_or_compile_runs_each_waiters_closure_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(RuntimeSettings::with_cache(dir.path().join("k.rtc"))).unwrap());
    let start = Arc::new(Barrier::new(4));
    let key = runtime_cache::KernelKey::from_parts(&[b"failing"]);
    let runs = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, start, runs) = (engine.clone(), start.clone(), runs.clone());
            std::thread::spawn(move || {
                start.wait();
                engine.get_or_compile(key, || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    Err::<Vec<u8>, _>("the application's compiler failed")
                })
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), Err("the application's compiler failed"));
    }
    // An application's error cannot be cloned to the waiters: each ran its own closure, one at a
    // time (never two at once for one key).
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    assert_eq!(engine.stats().failed, 4);
    assert!(engine.runtime_cache().unwrap().is_empty());
    let compiled = engine.get_or_compile(key, || Ok::<_, ()>(b"now it works".to_vec())).unwrap();
    assert_eq!(compiled.origin, KernelOrigin::Compiled);
}

#[test]
fn get_or_compile_runs_one_closure_per_key_across_threads() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(RuntimeSettings::with_cache(dir.path().join("k.rtc"))).unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (engine, start, runs) = (engine.clone(), start.clone(), runs.clone());
            std::thread::spawn(move || {
                start.wait();
                let key = runtime_cache::KernelKey::from_parts(&[b"nvcc 12.9", b"saxpy.cu", b"sm_90"]);
                engine
                    .get_or_compile(key, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(200));
                        Ok::<_, ()>(b"cubin".to_vec())
                    })
                    .unwrap()
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().bytes, &b"cubin"[..]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}
