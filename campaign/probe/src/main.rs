//! Campaign probes: each one drives a promise of the cache's contract (DESIGN.md) that the
//! campaign's bugs break, in the smallest deterministic way, and says whether it holds.
//!
//! `campaign-probe NAME...` runs the named probes (all without a name) and prints one line each:
//! `holds NAME` or `BROKEN NAME: evidence`; the exit status is 1 if any is broken. Probes that need
//! a real process ending run the same binary as a child (`campaign-probe child-NAME DIR`).

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use runtime_cache::{
    Backend, CacheError, CacheOptions, Engine, Event, KernelKey, KernelSpec, RuntimeCache, RuntimeSettings,
    SyntheticCompiler,
};

type Verdict = Result<(), String>;

const PROBES: &[(&str, &str, fn(&Path) -> Verdict)] = &[
    (
        "failed-save-then-drop",
        "a failed save leaves the entries dirty: the drop still writes them",
        failed_save_then_drop,
    ),
    ("insert-during-save", "an entry inserted during a save is not marked clean by it", insert_during_save),
    ("replace-during-save", "an entry replaced during a save is not marked clean by it", replace_during_save),
    ("exit-budget-total", "the exit with 6 handles blocked on a held lock ends within the budget", exit_budget_total),
    ("late-signal", "SIGTERM long after the handler was installed still saves once", late_signal),
    ("no-temp-after-failed-write", "a save failing mid-write (EFBIG) leaves no temp file", no_temp_after_failed_write),
    (
        "corrupt-beside-old-set-aside",
        "a corrupt file is set aside without overwriting an old .corrupt-1",
        corrupt_beside_old,
    ),
    ("corrupt-fourth", "with .corrupt-0..2 present, the next corrupt file is still kept", corrupt_fourth),
    (
        "other-version-at-save",
        "a file of another version appearing before a save is neither set aside nor overwritten",
        other_version_at_save,
    ),
    ("other-version-at-open", "a file of another version is refused at open, left byte-exact", other_version_at_open),
    ("open-does-not-wait", "opening while another process holds the lock does not wait for it", open_does_not_wait),
    ("cold-start-merge", "two handles that cold-started on one path lose no entries", cold_start_merge),
    (
        "commit-between-read-and-lock",
        "a save merges what another process committed while it waited for the lock",
        commit_while_waiting,
    ),
    (
        "exit-while-save-blocked",
        "an exit while another thread's save waits for the lock ends within the budget",
        exit_while_save_blocked,
    ),
    (
        "single-flight-stress",
        "4 threads missing 2000 kernels at once compile each exactly once (5 rounds)",
        single_flight_stress,
    ),
    ("write-through-failure", "a failed write-through save leaves the entry for the autosave", write_through_failure),
    (
        "ours-win-on-shared-key",
        "a full-rewrite save keeps this handle's artifact on a key the file also holds",
        ours_win_on_shared_key,
    ),
    ("remove-then-drop", "a remove() followed by the drop reaches the file", remove_then_drop),
    (
        "synced-before-rename",
        "every byte of the new file is written before its fsync, and the fsync before the rename (strace)",
        synced_before_rename,
    ),
    (
        "exit-waits-for-drop-save",
        "an exit racing a drop that is saving on another thread waits for that save",
        exit_waits_for_drop_save,
    ),
    ("exit-failure-reported", "a failed exit save reaches the observer (SaveFailed)", exit_failure_reported),
    ("swap-to-unusable", "a swap to an unusable cache saves the old one at the swap", swap_to_unusable),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(child) = args.first().and_then(|arg| arg.strip_prefix("child-")) {
        let dir = PathBuf::from(&args[1]);
        child_main(child, &dir);
        return;
    }
    let mut broken = 0;
    for (name, promise, probe) in PROBES {
        if !args.is_empty() && !args.iter().any(|arg| arg == name) {
            continue;
        }
        let dir = scratch(name);
        match probe(&dir) {
            Ok(()) => println!("holds  {name}: {promise}"),
            Err(evidence) => {
                broken += 1;
                println!("BROKEN {name}: {promise}: {evidence}");
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }
    std::process::exit(if broken > 0 { 1 } else { 0 });
}

// ---------------------------------------------------------------- helpers

fn scratch(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "campaign-probe-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir_all(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

fn key(n: u8) -> KernelKey {
    KernelKey([n; 32])
}

fn art(n: u8, len: usize) -> Bytes {
    Bytes::from(vec![n; len])
}

fn opts(lock_timeout_ms: u64, autosave: bool) -> CacheOptions {
    CacheOptions { lock_timeout: Duration::from_millis(lock_timeout_ms), autosave, ..CacheOptions::default() }
}

/// Another holder of `<path>.lock` (flock conflicts between open file descriptions, even in one
/// process).
fn hold_lock(path: &Path) -> File {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let holder = File::options().read(true).write(true).create(true).truncate(false).open(name).unwrap();
    holder.lock().unwrap();
    holder
}

/// The entries in the file at `path` (key byte -> artifact), through a fresh non-autosave handle.
fn on_disk(path: &Path) -> Result<Vec<(u8, Bytes)>, String> {
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let cache = RuntimeCache::open(path, opts(2000, false)).map_err(|e| format!("reopen failed: {e}"))?;
    Ok(cache.entries().iter().map(|e| (e.key.0[0], cache.get(&e.key).unwrap())).collect())
}

fn has_keys(path: &Path, want: &[u8]) -> Verdict {
    let got: Vec<u8> = on_disk(path)?.into_iter().map(|(k, _)| k).collect();
    let missing: Vec<u8> = want.iter().copied().filter(|k| !got.contains(k)).collect();
    if missing.is_empty() { Ok(()) } else { Err(format!("the file lacks keys {missing:?} (has {got:?})")) }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

fn saved_file(path: &Path, keys: &[u8]) {
    let cache = RuntimeCache::open(path, opts(2000, false)).unwrap();
    for &k in keys {
        cache.insert(key(k), art(k, 64));
    }
    cache.save().unwrap();
}

fn check(ok: bool, evidence: impl FnOnce() -> String) -> Verdict {
    if ok { Ok(()) } else { Err(evidence()) }
}

/// Runs `child-NAME DIR`, waits for its "go" line, then runs `then` (with the child's pid) and
/// waits for it; returns (seconds from "go" to its end, its status).
fn run_child(name: &str, dir: &Path, then: impl FnOnce(u32)) -> (f64, std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg(format!("child-{name}"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        let go = line == "go";
        seen.push(line);
        if go {
            break;
        }
    }
    let started = Instant::now();
    then(child.id());
    let status = child.wait().unwrap();
    let took = started.elapsed().as_secs_f64();
    let mut stderr = String::new();
    use std::io::Read;
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (took, status, format!("{} {}", seen.join("|"), stderr.trim()))
}

// ---------------------------------------------------------------- probes

/// Promise: "A failed save leaves the entries dirty, so a later save still writes them."
fn failed_save_then_drop(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let cache = RuntimeCache::open(&path, opts(100, true)).unwrap();
    cache.insert(key(1), art(1, 64));
    {
        let _held = hold_lock(&path);
        if cache.save().is_ok() {
            return Err("the save succeeded while the lock was held".into());
        }
    }
    let dirty = cache.is_dirty();
    drop(cache);
    has_keys(&path, &[1])
        .map_err(|e| format!("explicit save failed, then the drop: {e} (is_dirty after the failure: {dirty})"))
}

static DURING: OnceLock<(Arc<RuntimeCache>, PathBuf, u8, Bytes)> = OnceLock::new();
static FIRED: AtomicBool = AtomicBool::new(false);

/// Inserts (key, artifact) into the cache from the observer, on the first SaveStarted: exactly
/// between the save's snapshot and its commit.
fn insert_on_first_save_started(cache: Arc<RuntimeCache>, path: PathBuf, k: u8, artifact: Bytes) {
    FIRED.store(false, Ordering::SeqCst);
    let _ = DURING.set((cache, path, k, artifact));
    runtime_cache::set_observer(|event| {
        if let Event::SaveStarted { path, .. } = event
            && let Some((cache, ours, k, artifact)) = DURING.get()
            && path == ours
            && !FIRED.swap(true, Ordering::SeqCst)
        {
            cache.insert(key(*k), artifact.clone());
        }
    });
}

/// Promise: "an entry added on another thread during a save is never marked clean by it".
fn insert_during_save(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let cache = Arc::new(RuntimeCache::open(&path, opts(2000, false)).unwrap());
    cache.insert(key(1), art(1, 64));
    insert_on_first_save_started(cache.clone(), path.clone(), 2, art(2, 64));
    cache.save().map_err(|e| e.to_string())?;
    runtime_cache::clear_observer();
    let dirty = cache.entries().iter().find(|e| e.key == key(2)).map(|e| e.dirty);
    let _ = cache.save();
    check(dirty == Some(true), || format!("key 2, inserted during the save, is marked dirty={dirty:?} after it"))?;
    has_keys(&path, &[1, 2])
}

fn replace_during_save(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    // `insert_on_first_save_started` keeps its first registration: a fresh process for this one.
    let (_, status, out) = run_child("replace-during-save", dir, |_| {});
    check(status.success(), || format!("child: {status} {out}"))?;
    let got = on_disk(&path)?;
    let artifact = got.iter().find(|(k, _)| *k == 1).map(|(_, a)| a.clone());
    check(artifact == Some(art(9, 64)), || {
        format!(
            "the file holds the artifact of before the save ({:?}..), not the one re-inserted during it",
            artifact.map(|a| a[0])
        )
    })
}

/// Promise: "The whole exit finishes within the exit budget, whatever the number of handles".
fn exit_budget_total(dir: &Path) -> Verdict {
    let (took, status, out) = run_child("exit-budget-total", dir, |_| {});
    check(status.success(), || format!("child: {status} {out}"))?;
    check(took < 1.0, || format!("6 blocked handles, budget 300 ms: the exit took {took:.2} s"))
}

/// Promise: "a termination signal saves once however long after the handler was installed it arrives".
fn late_signal(dir: &Path) -> Verdict {
    let (_, status, out) = run_child("late-signal", dir, |pid| unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    });
    use std::os::unix::process::ExitStatusExt;
    check(status.signal() == Some(libc::SIGTERM), || format!("child ended by {status}, not SIGTERM ({out})"))?;
    has_keys(&dir.join("k.rtc"), &[1]).map_err(|e| format!("SIGTERM 600 ms after install, budget 300 ms: {e}"))
}

/// Promise: "A save that fails ... leaves the old file intact, with no temp file left behind."
fn no_temp_after_failed_write(dir: &Path) -> Verdict {
    let (_, status, out) = run_child("efbig", dir, |_| {});
    check(status.success() && out.contains("save: failed"), || format!("child: {status} {out}"))?;
    let temps: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".tmp-")).collect();
    check(temps.is_empty(), || format!("left behind: {temps:?}"))
}

/// Promise: "A corrupt file is set aside (kept byte-exact)" - and an earlier one is not destroyed.
fn corrupt_beside_old(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    fs::write(dir.join("k.rtc.corrupt-1"), b"evidence of an earlier corruption").unwrap();
    fs::write(&path, b"RTKCACHE garbage garbage garbage").unwrap();
    let cache = RuntimeCache::open(&path, opts(2000, false)).map_err(|e| format!("open: {e}"))?;
    drop(cache);
    let old = fs::read(dir.join("k.rtc.corrupt-1")).unwrap_or_default();
    check(old == b"evidence of an earlier corruption", || {
        format!("k.rtc.corrupt-1 was overwritten; folder: {:?}", names(dir))
    })?;
    let kept = names(dir).iter().any(|n| {
        n.starts_with("k.rtc.corrupt-")
            && fs::read(dir.join(n)).unwrap_or_default() == b"RTKCACHE garbage garbage garbage"
    });
    check(kept, || format!("the corrupt file is not kept; folder: {:?}", names(dir)))
}

/// Promise: "only the newest few set-aside files are kept" - the one just set aside among them.
fn corrupt_fourth(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    for n in 0..3 {
        fs::write(dir.join(format!("k.rtc.corrupt-{n}")), format!("old {n}")).unwrap();
    }
    fs::write(&path, b"RTKCACHE the fourth corrupt file").unwrap();
    drop(RuntimeCache::open(&path, opts(2000, false)).map_err(|e| format!("open: {e}"))?);
    let kept = names(dir).iter().any(|n| {
        n.starts_with("k.rtc.corrupt-")
            && fs::read(dir.join(n)).unwrap_or_default() == b"RTKCACHE the fourth corrupt file"
    });
    check(kept, || format!("the newest corrupt file is gone; folder: {:?}", names(dir)))
}

/// A valid file of a newer format version, 4 (header checksum and all), holding key 7: a version-3
/// file as this crate saves it, with the version raised and the header's XXH3-64 (bytes 32..40,
/// "a later version keeps this") recomputed, so it reads as "unsupported", not as damage.
fn other_version_file(dir: &Path) -> Vec<u8> {
    let side = dir.join("side.rtc");
    saved_file(&side, &[7]);
    let mut other = fs::read(&side).unwrap();
    fs::remove_file(&side).unwrap();
    assert_eq!(other[8..10], 3u16.to_le_bytes(), "the probe expects this crate to save format version 3");
    other[8..10].copy_from_slice(&4u16.to_le_bytes());
    let checksum = xxhash_rust::xxh3::xxh3_64(&other[..32]);
    other[32..40].copy_from_slice(&checksum.to_le_bytes());
    other
}

/// Promise: "A file of another format version is neither set aside nor overwritten."
fn other_version_at_save(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let other = other_version_file(dir);
    let cache = RuntimeCache::open(&path, opts(2000, false)).unwrap();
    cache.insert(key(1), art(1, 64));
    // A newer build of the application saves the same path meanwhile.
    fs::write(&path, &other).unwrap();
    let result = cache.save();
    let now = fs::read(&path).unwrap_or_default();
    let set_aside: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".corrupt-")).collect();
    check(now == other && set_aside.is_empty(), || {
        format!(
            "save returned {result:?}; the v4 file was {} and set aside as {set_aside:?}",
            if now == other { "kept" } else { "overwritten" }
        )
    })
}

fn other_version_at_open(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let other = other_version_file(dir);
    fs::write(&path, &other).unwrap();
    let opened = RuntimeCache::open(&path, opts(2000, false));
    let typed = matches!(opened, Err(CacheError::Unsupported { .. }));
    drop(opened);
    let now = fs::read(&path).unwrap_or_default();
    let set_aside: Vec<String> = names(dir).into_iter().filter(|n| n.contains(".corrupt-")).collect();
    check(typed && now == other && set_aside.is_empty(), || {
        format!("open Unsupported: {typed}; file kept: {}; set aside: {set_aside:?}", now == other)
    })
}

/// Promise: "Opening never waits for writers".
fn open_does_not_wait(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    saved_file(&path, &[1]);
    let _held = hold_lock(&path);
    let started = Instant::now();
    let cache = RuntimeCache::open(&path, opts(2000, false)).map_err(|e| format!("open: {e}"))?;
    let took = started.elapsed();
    check(took < Duration::from_millis(500) && cache.len() == 1, || format!("open took {took:?} with the lock held"))
}

/// Promise: "K processes sharing one cache path lose no entries" - from a cold start too.
fn cold_start_merge(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let a = RuntimeCache::open(&path, opts(2000, false)).unwrap();
    let b = RuntimeCache::open(&path, opts(2000, false)).unwrap();
    b.insert(key(2), art(2, 64));
    b.save().map_err(|e| e.to_string())?;
    a.insert(key(1), art(1, 64));
    a.save().map_err(|e| e.to_string())?;
    has_keys(&path, &[1, 2]).map_err(|e| format!("A and B cold-started; B saved, then A: {e}"))
}

/// Promise: "save = lock, re-read, merge, write temp, rename" - what another process commits
/// while this save waits for the lock is merged, not overwritten.
fn commit_while_waiting(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    saved_file(&path, &[0]);
    let a = Arc::new(RuntimeCache::open(&path, opts(5000, false)).unwrap());
    a.insert(key(1), art(1, 64));
    // Another process's file with key 2, renamed into place under the lock, as its save would.
    let side = dir.join("side.rtc");
    saved_file(&side, &[0, 2]);
    let held = hold_lock(&path);
    let saver = {
        let a = a.clone();
        std::thread::spawn(move || a.save())
    };
    std::thread::sleep(Duration::from_millis(300));
    fs::rename(&side, &path).unwrap();
    drop(held);
    saver.join().unwrap().map_err(|e| e.to_string())?;
    has_keys(&path, &[0, 1, 2]).map_err(|e| format!("another process committed key 2 while A waited for the lock: {e}"))
}

/// Promise: "The whole exit finishes within the exit budget" - also when another thread's save
/// holds the handle.
fn exit_while_save_blocked(dir: &Path) -> Verdict {
    let (took, status, out) = run_child("exit-while-save-blocked", dir, |_| {});
    check(status.success(), || format!("child: {status} {out}"))?;
    check(took < 1.5, || format!("budget 300 ms, a thread's save waiting 5 s for the lock: the exit took {took:.2} s"))
}

/// Promise: "A new cache that cannot be used makes the engine run cold ... the old one saves
/// exactly once, with trigger swap".
fn swap_to_unusable(dir: &Path) -> Verdict {
    let first = dir.join("first.rtc");
    let second = dir.join("second.rtc");
    saved_file(&second, &[5]);
    fs::set_permissions(&second, fs::Permissions::from_mode(0o666)).unwrap();
    let settings = |path: &Path| RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::default()),
        ..RuntimeSettings::with_cache(path)
    };
    let mut engine = Engine::new(settings(&first)).unwrap();
    engine.kernel(&KernelSpec::new("k.cu", "__global__ void k() {}", "k")).unwrap();
    engine.set_settings(settings(&second)).map_err(|e| e.to_string())?;
    let at_swap = first.exists();
    let still_used = engine.runtime_cache().is_some();
    drop(engine);
    check(at_swap && !still_used, || {
        format!("after the swap: old file written: {at_swap}; the engine still holds a cache: {still_used}")
    })
}

/// Promise: "Concurrent misses of one key compile it once" (single flight).
/// Statistical (the race window is microseconds): up to 5 rounds, broken at the first duplicate.
fn single_flight_stress(dir: &Path) -> Verdict {
    for round in 0..5 {
        single_flight_round(&dir.join(format!("k{round}.rtc"))).map_err(|e| format!("round {}: {e}", round + 1))?;
    }
    Ok(())
}

fn single_flight_round(path: &Path) -> Verdict {
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        ..RuntimeSettings::with_cache(path)
    };
    let engine = Arc::new(Engine::new(settings).unwrap());
    let kernels = 2000u32;
    let start = Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (engine, start) = (engine.clone(), start.clone());
            std::thread::spawn(move || {
                for i in 0..kernels {
                    start.wait();
                    let spec =
                        KernelSpec::new(format!("s{i}.cu"), format!("__global__ void s{i}() {{}}"), format!("s{i}"));
                    engine.kernel(&spec).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let compiles = engine.stats().compiles;
    check(compiles == u64::from(kernels), || format!("{kernels} kernels, {compiles} compiles"))
}

/// Promise: write-through "A failed save is reported and leaves the entry dirty; the one autosave
/// at drop or exit then saves whatever is still dirty".
fn write_through_failure(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    let options = CacheOptions { write_through: true, ..opts(100, true) };
    let cache = RuntimeCache::open(&path, options).unwrap();
    {
        let _held = hold_lock(&path);
        cache.insert(key(1), art(1, 64));
    }
    drop(cache);
    has_keys(&path, &[1]).map_err(|e| format!("write-through save failed (lock held), then the drop: {e}"))
}

/// Promise: "merge (union; ours win on a key both hold)". The merge is the full rewrite's (an
/// append writes our entries as the newest frame, which wins on its own), so A's save is made a
/// rewrite: A also removes key 2 (a save carrying removals always rewrites the file).
fn ours_win_on_shared_key(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    saved_file(&path, &[0, 2]);
    let a = RuntimeCache::open(&path, opts(2000, false)).unwrap();
    let b = RuntimeCache::open(&path, opts(2000, false)).unwrap();
    b.insert(key(1), art(3, 64));
    b.save().map_err(|e| e.to_string())?;
    a.insert(key(1), art(4, 64));
    a.remove(&key(2));
    let saved = a.save().map_err(|e| e.to_string())?;
    let file = on_disk(&path)?;
    let got = file.iter().find(|(k, _)| *k == 1).map(|(_, a)| a[0]);
    let keys: Vec<u8> = file.iter().map(|(k, _)| *k).collect();
    check(got == Some(4) && !keys.contains(&2), || {
        format!("A saved key 1 = 4s (and removed key 2) after B saved key 1 = 3s: the file holds key 1 = {got:?}, keys {keys:?} ({saved:?})")
    })
}

/// Promise: `remove` - "the next save keeps it out of the file too".
fn remove_then_drop(dir: &Path) -> Verdict {
    let path = dir.join("k.rtc");
    saved_file(&path, &[1, 2]);
    let cache = RuntimeCache::open(&path, opts(2000, true)).unwrap();
    cache.remove(&key(1));
    drop(cache);
    let got: Vec<u8> = on_disk(&path)?.into_iter().map(|(k, _)| k).collect();
    check(got == [2], || format!("removed key 1, dropped: the file holds {got:?}"))
}

/// Promise: `Durability::SyncFile` - "fsync the new file before the rename": a power loss leaves
/// the old or the new content. Judged from the system calls of a save (needs strace).
fn synced_before_rename(dir: &Path) -> Verdict {
    let trace = dir.join("strace.log");
    let status = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-e",
            "trace=openat,write,writev,pwrite64,fsync,fdatasync,rename,renameat,renameat2,close",
            "-o",
        ])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .arg("child-save")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let Ok(status) = status else { return Err("strace is not installed: cannot judge".into()) };
    check(status.success(), || format!("strace/child: {status}"))?;
    let log = fs::read_to_string(&trace).unwrap_or_default();
    // The temp file's descriptor: `openat(..., ".k.rtc.tmp-XXXXXXXXXX", ...) = N`.
    let mut fd = None;
    let mut order = Vec::new();
    for line in log.lines() {
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
        if call.starts_with("openat(") && call.contains(".k.rtc.tmp-") {
            fd = call.rsplit("= ").next().and_then(|n| n.trim().parse::<i32>().ok());
            continue;
        }
        let Some(fd) = fd else { continue };
        let on_fd = |name: &str| call.starts_with(&format!("{name}({fd},"));
        if ["write", "writev", "pwrite64"].iter().any(|name| on_fd(name)) {
            order.push("write");
        } else if on_fd("fsync")
            || on_fd("fdatasync")
            || call.starts_with(&format!("fsync({fd})"))
            || call.starts_with(&format!("fdatasync({fd})"))
        {
            order.push("fsync");
        } else if call.starts_with("rename") && call.contains(".k.rtc.tmp-") {
            order.push("rename");
            break;
        }
    }
    let fsync = order.iter().position(|c| *c == "fsync");
    let last_write = order.iter().rposition(|c| *c == "write");
    let rename = order.iter().position(|c| *c == "rename");
    check(matches!((fsync, last_write, rename), (Some(f), Some(w), Some(r)) if w < f && f < r), || {
        format!("system calls on the temp file, in order: {order:?}")
    })
}

/// Promise: "exactly one save even when a drop on one thread races the exit on another" - the
/// exit path waits for a drop saving on another thread.
fn exit_waits_for_drop_save(dir: &Path) -> Verdict {
    let (_, status, out) = run_child("drop-racing-exit", dir, |_| {});
    check(status.success(), || format!("child: {status} {out}"))?;
    has_keys(&dir.join("k.rtc"), &[1]).map_err(|e| {
        format!("a thread dropped the engine (its save waiting 500 ms for the lock) while main returned: {e}")
    })
}

/// Promise: "A save that fails ... is reported through `log` and the observer" - at exit too.
fn exit_failure_reported(dir: &Path) -> Verdict {
    let (_, status, out) = run_child("exit-save-fails", dir, |_| {});
    check(status.success(), || format!("child: {status} {out}"))?;
    let events = fs::read_to_string(dir.join("events")).unwrap_or_default();
    check(events.contains("SaveFailed"), || {
        format!("the exit save failed (lock held); the observer saw: {:?}", events.lines().collect::<Vec<_>>())
    })
}

// ---------------------------------------------------------------- children

fn child_main(name: &str, dir: &Path) {
    match name {
        "replace-during-save" => {
            let path = dir.join("k.rtc");
            let cache = Arc::new(RuntimeCache::open(&path, opts(2000, false)).unwrap());
            cache.insert(key(1), art(1, 64));
            insert_on_first_save_started(cache.clone(), path.clone(), 1, art(9, 64));
            cache.save().unwrap();
            runtime_cache::clear_observer();
            let _ = cache.save();
            println!("go");
        }
        "exit-budget-total" => {
            let path = dir.join("k.rtc");
            static HELD: OnceLock<File> = OnceLock::new();
            runtime_cache::set_exit_deadline(Duration::from_millis(300));
            let _ = HELD.set(hold_lock(&path));
            for n in 0..6 {
                let cache = RuntimeCache::open(&path, opts(5000, true)).unwrap();
                cache.insert(key(n), art(n, 64));
                std::mem::forget(cache);
            }
            println!("go");
        }
        "late-signal" => {
            let path = dir.join("k.rtc");
            runtime_cache::set_exit_deadline(Duration::from_millis(300));
            runtime_cache::install_termination_handler().unwrap();
            let cache = RuntimeCache::open(&path, opts(2000, true)).unwrap();
            cache.insert(key(1), art(1, 64));
            std::thread::sleep(Duration::from_millis(600));
            println!("go");
            std::thread::sleep(Duration::from_secs(20));
            drop(cache);
        }
        "efbig" => {
            let path = dir.join("k.rtc");
            unsafe {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let limit = libc::rlimit { rlim_cur: 4096, rlim_max: 4096 };
                libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            }
            let cache = RuntimeCache::open(&path, opts(2000, false)).unwrap();
            cache.insert(key(1), art(1, 64 * 1024));
            let result = cache.save();
            println!("save: {}", if result.is_err() { "failed" } else { "succeeded" });
            println!("go");
        }
        "exit-while-save-blocked" => {
            let path = dir.join("k.rtc");
            static HELD: OnceLock<File> = OnceLock::new();
            runtime_cache::set_exit_deadline(Duration::from_millis(300));
            let _ = HELD.set(hold_lock(&path));
            let cache = Arc::new(RuntimeCache::open(&path, opts(5000, true)).unwrap());
            cache.insert(key(1), art(1, 64));
            std::mem::forget(cache.clone());
            std::thread::spawn(move || {
                let _ = cache.save();
            });
            std::thread::sleep(Duration::from_millis(200));
            println!("go");
        }
        "save" => {
            let path = dir.join("k.rtc");
            let cache = RuntimeCache::open(&path, opts(2000, false)).unwrap();
            cache.insert(key(1), art(1, 4096));
            cache.save().unwrap();
        }
        "drop-racing-exit" => {
            let path = dir.join("k.rtc");
            let held = hold_lock(&path);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                drop(held);
            });
            let cache = RuntimeCache::open(&path, opts(5000, true)).unwrap();
            cache.insert(key(1), art(1, 64));
            std::thread::spawn(move || drop(cache));
            std::thread::sleep(Duration::from_millis(100));
            println!("go");
        }
        "exit-save-fails" => {
            let path = dir.join("k.rtc");
            let events = dir.join("events");
            static HELD: OnceLock<File> = OnceLock::new();
            runtime_cache::set_exit_deadline(Duration::from_millis(300));
            let _ = HELD.set(hold_lock(&path));
            runtime_cache::set_observer(move |event| {
                use std::io::Write;
                let name = format!("{event:?}");
                let name = name.split([' ', '{', '(']).next().unwrap_or("").to_owned();
                if let Ok(mut file) = File::options().create(true).append(true).open(&events) {
                    let _ = writeln!(file, "{name}");
                }
            });
            let cache = RuntimeCache::open(&path, opts(5000, true)).unwrap();
            cache.insert(key(1), art(1, 64));
            std::mem::forget(cache);
            println!("go");
        }
        other => panic!("no child {other}"),
    }
}
