//! runtime-cache's own oracles: the parts of its contract that only its journal events show
//! (kernels compiled or found, the engine running cold with a typed reason, the exit registry
//! around a construction, a forked child, resident memory). Each is an [`oracle::from_fn`]; what
//! any resource's program could journal (markers, save triggers, saves before a marker,
//! deadlines, counts of events) is judged by the harness's generic oracles instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use exit_harness::Oracle;
use exit_harness::journal::Entry;
use exit_harness::oracle::{self, OracleVerdict, quote_lines};
use runtime_cache::format::{self, FormatLimits};
use runtime_cache::{EvictReason, KernelKey, SaveKind, UnavailableReason};

/// The first `marker` named `name`: its index in the journal.
fn marker_at(entries: &[Entry], name: &str) -> Result<usize, OracleVerdict> {
    entries
        .iter()
        .position(|entry| entry.kind == "marker" && entry.str_field("name") == Some(name))
        .ok_or_else(|| OracleVerdict::fail(format!("marker `{name}` is not in the journal")))
}

/// The first event of `kind`, or a failure saying what is missing.
fn first<'a>(entries: &'a [Entry], kind: &str, missing: &str) -> Result<&'a Entry, OracleVerdict> {
    entries.iter().find(|entry| entry.kind == kind).ok_or_else(|| OracleVerdict::fail(missing.to_owned()))
}

/// Turns a judgement written with `?` into a verdict.
fn verdict(judgement: Result<(), OracleVerdict>) -> OracleVerdict {
    judgement.err().unwrap_or(OracleVerdict::Pass)
}

/// Exactly `processes` processes journaled a save, each exactly one (the drop-exit race: each
/// worker saves once, whoever of the drop and the exit wins).
pub fn one_save_per_saving_process(processes: usize) -> impl Oracle {
    oracle::from_fn("one_save_per_process", move |obs| {
        let mut by_pid = BTreeMap::<u32, Vec<&str>>::new();
        for save in obs.journal.of_kind("save") {
            by_pid.entry(save.pid).or_default().push(&save.raw);
        }
        if let Some((pid, saves)) = by_pid.iter().find(|(_, saves)| saves.len() != 1) {
            return OracleVerdict::fail(format!(
                "process {pid} saved {} times:\n{}",
                saves.len(),
                quote_lines(saves.iter().copied(), 4)
            ));
        }
        match by_pid.len() == processes {
            true => OracleVerdict::Pass,
            false => OracleVerdict::fail(format!("{} processes saved, expected {processes}", by_pid.len())),
        }
    })
}

/// Every `kernel` event after marker `marker` is a cache hit, and there are `count`.
pub fn hits_after(marker: &'static str, count: usize) -> impl Oracle {
    oracle::from_fn("cache_hits", move |obs| {
        let entries = &obs.journal.entries;
        verdict((|| {
            let from = marker_at(entries, marker)?;
            let kernels: Vec<&Entry> = entries[from..].iter().filter(|entry| entry.kind == "kernel").collect();
            if kernels.len() != count {
                return Err(OracleVerdict::fail(format!(
                    "{} kernels after `{marker}`, expected {count}",
                    kernels.len()
                )));
            }
            match kernels.iter().find(|kernel| kernel.str_field("origin") != Some("hit")) {
                Some(miss) => Err(OracleVerdict::fail(format!("recompiled instead of a cache hit: {}", miss.raw))),
                None => Ok(()),
            }
        })())
    })
}

/// A process that marked itself `forked-child` journaled no save.
pub fn forked_child_saves_nothing() -> impl Oracle {
    oracle::from_fn("fork_child_silent", |obs| {
        let entries = &obs.journal.entries;
        verdict((|| {
            let child = entries[marker_at(entries, "forked-child")?].pid;
            match obs.journal.of_kind("save").find(|entry| entry.pid == child) {
                Some(save) => Err(OracleVerdict::fail(format!("the forked child (pid {child}) saved: {}", save.raw))),
                None => Ok(()),
            }
        })())
    })
}

/// `Engine::new` changed the exit registry's size by exactly `growth` (the child's
/// `construction_registry` line: the size before and after): 0 when construction failed or
/// the engine runs without its cache, 1 when it opened an autosaving cache.
pub fn registry_growth(growth: u64) -> impl Oracle {
    let name = if growth == 0 { "registry_unchanged" } else { "registry_growth" };
    oracle::from_fn(name, move |obs| {
        verdict((|| {
            let event = first(&obs.journal.entries, "construction_registry", "no `construction_registry` sample")?;
            match (event.u64_field("before"), event.u64_field("after")) {
                (Some(before), Some(after)) if after.checked_sub(before) == Some(growth) => Ok(()),
                _ => Err(OracleVerdict::fail(format!(
                    "the construction should grow the exit registry by {growth}: {}",
                    event.raw
                ))),
            }
        })())
    })
}

/// The child built its engine and `Engine::cache_unavailable` reported `reason`; and the
/// observer reported exactly one `CacheUnavailable` event, with the same reason, for a cache
/// file named `file` (in whatever folder the cause put it).
pub fn cache_unavailable(file: &str, reason: UnavailableReason) -> impl Oracle + use<> {
    let (file, reason) = (file.to_owned(), reason.to_string());
    oracle::from_fn("cache_unavailable", move |obs| {
        let reason = reason.as_str();
        verdict((|| {
            let built = first(&obs.journal.entries, "engine_built", "the engine was not built (no `engine_built`)")?;
            if built.str_field("cache") != Some("unavailable") || built.str_field("reason") != Some(reason) {
                return Err(OracleVerdict::fail(format!(
                    "expected the engine to run cold because `{reason}`: {}",
                    built.raw
                )));
            }
            let events: Vec<&Entry> = obs.journal.of_kind("cache_unavailable").collect();
            let named =
                |event: &Entry| event.file().and_then(Path::file_name).is_some_and(|name| name == file.as_str());
            match events.as_slice() {
                [event] if event.str_field("reason") == Some(reason) && named(event) => Ok(()),
                [] => Err(OracleVerdict::fail(format!("no `CacheUnavailable` event (expected reason `{reason}`)"))),
                _ => Err(OracleVerdict::fail(format!(
                    "expected one `CacheUnavailable` event for {file} because `{reason}`:\n{}",
                    quote_lines(events.iter().map(|event| event.raw.as_str()), 5)
                ))),
            }
        })())
    })
}

/// The child built its engine with its cache open, `entries` entries loaded from the file.
pub fn cache_opened(entries: u64) -> impl Oracle {
    oracle::from_fn("cache_opened", move |obs| {
        verdict((|| {
            let built = first(&obs.journal.entries, "engine_built", "the engine was not built (no `engine_built`)")?;
            match built.str_field("cache") == Some("open") && built.u64_field("entries") == Some(entries) {
                true => Ok(()),
                false => Err(OracleVerdict::fail(format!(
                    "expected the engine's cache open with {entries} entries loaded: {}",
                    built.raw
                ))),
            }
        })())
    })
}

/// Between markers `from` and `to`, the engine compiled `count` kernels and then found the
/// same `count` again (a cache hit: in memory for an engine that runs cold).
pub fn compiled_then_found(from: &'static str, to: &'static str, count: usize) -> impl Oracle {
    oracle::from_fn("engine_works", move |obs| {
        let entries = &obs.journal.entries;
        verdict((|| {
            let (start, end) = (marker_at(entries, from)?, marker_at(entries, to)?);
            let origins: Vec<&str> = entries[start..end]
                .iter()
                .filter(|entry| entry.kind == "kernel")
                .map(|entry| entry.str_field("origin").unwrap_or("?"))
                .collect();
            let expected: Vec<&str> =
                std::iter::repeat_n("compiled", count).chain(std::iter::repeat_n("hit", count)).collect();
            match origins == expected {
                true => Ok(()),
                false => Err(OracleVerdict::fail(format!(
                    "kernel origins between `{from}` and `{to}`: {origins:?}, expected {expected:?}"
                ))),
            }
        })())
    })
}

/// File `name` exists after the run and is byte-identical to `expected` (a quarantined copy).
pub fn set_aside_byte_exact(name: &'static str, expected: Vec<u8>) -> impl Oracle {
    let expected_hash = blake3::hash(&expected).to_hex().to_string();
    oracle::from_fn("set_aside_byte_exact", move |obs| match obs.file(name) {
        None => OracleVerdict::fail(format!("{name} is not a file under test")),
        Some(file) if file.after.hash.as_deref() == Some(expected_hash.as_str()) => OracleVerdict::Pass,
        Some(file) => OracleVerdict::fail(format!(
            "{name} after the run: {}; expected the {} original bytes",
            file.after.describe(),
            expected.len()
        )),
    })
}

/// Resident memory grew by at most `max_kib` between the first and last `rss` samples.
pub fn rss_growth_at_most(max_kib: u64) -> impl Oracle {
    oracle::from_fn("memory_bounded", move |obs| {
        let samples: Vec<u64> = obs.journal.of_kind("rss").filter_map(|entry| entry.u64_field("kib")).collect();
        let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
            return OracleVerdict::fail("no `rss` samples in the journal");
        };
        let growth = last.saturating_sub(*first);
        match growth <= max_kib {
            true => OracleVerdict::Pass,
            false => OracleVerdict::fail(format!(
                "resident memory grew {growth} KiB ({first} -> {last}), limit {max_kib} KiB"
            )),
        }
    })
}

/// After the run, the file under test `name` is valid and holds every key of `kept` and none of
/// `removed` (hex keys, as its validator lists them).
pub fn file_keys(name: &str, kept: Vec<String>, removed: Vec<String>) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("file_keys", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let Some(keys) = file.after.keys() else {
            return OracleVerdict::fail(format!(
                "{name}: no valid file with keys after the run: {}",
                file.after.describe()
            ));
        };
        let missing: Vec<&str> = kept.iter().filter(|key| !keys.contains(*key)).map(String::as_str).collect();
        let still: Vec<&str> = removed.iter().filter(|key| keys.contains(*key)).map(String::as_str).collect();
        match (missing.is_empty(), still.is_empty()) {
            (true, true) => OracleVerdict::Pass,
            _ => OracleVerdict::fail(format!(
                "{name}: keys that should be there but are not: {missing:?}; removed keys still there: {still:?}"
            )),
        }
    })
}

/// After the run, the file under test `name` is valid and holds exactly `count` keys.
pub fn file_key_count(name: &str, count: usize) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("file_key_count", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        match file.after.keys() {
            Some(keys) if keys.len() == count => OracleVerdict::Pass,
            Some(keys) => OracleVerdict::fail(format!("{name} holds {} keys, expected {count}: {keys:?}", keys.len())),
            None => {
                OracleVerdict::fail(format!("{name}: no valid file with keys after the run: {}", file.after.describe()))
            }
        }
    })
}

/// After the run, the file under test `name` decodes and holds `expected` under `key`, byte for
/// byte (read from its path, which stays until the observation is judged).
pub fn file_artifact(name: &str, key: KernelKey, expected: bytes::Bytes) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("file_artifact", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let entries = match std::fs::read(&file.path) {
            Ok(bytes) => format::decode(&bytes::Bytes::from(bytes), &FormatLimits::default()),
            Err(error) => return OracleVerdict::fail(format!("{name}: cannot read it after the run: {error}")),
        };
        let entries = match entries {
            Ok(entries) => entries,
            Err(error) => return OracleVerdict::fail(format!("{name}: does not decode after the run: {error}")),
        };
        match entries.iter().find(|(found, _)| *found == key) {
            None => OracleVerdict::fail(format!("{name}: no entry for key {}", key.to_hex())),
            Some((_, artifact)) if *artifact == expected => OracleVerdict::Pass,
            Some((_, artifact)) => OracleVerdict::fail(format!(
                "{name}: key {} holds another artifact ({} B, blake3 {}) than ours ({} B, blake3 {})",
                key.to_hex(),
                artifact.len(),
                &blake3::hash(artifact).to_hex()[..12],
                expected.len(),
                &blake3::hash(&expected).to_hex()[..12],
            )),
        }
    })
}

/// What the hostile family planted at a path, as it must still be there after the run: the
/// cache refuses what it did not create, and never replaces or removes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Planted {
    /// A FIFO.
    Fifo,
    /// A symlink pointing to this target (as written in the link).
    Link(&'static str),
}

/// After the run, `name` (relative to the scratch folder) is still what was planted there,
/// untouched: a FIFO, or a symlink with the same target.
pub fn planted_kept(name: &str, planted: Planted) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("planted_kept", move |obs| {
        let Some(scratch) = obs.scratch_path() else {
            return OracleVerdict::cannot_judge("the run's scratch folder was not kept for judging");
        };
        let path = scratch.join(&name);
        let found = match std::fs::symlink_metadata(&path) {
            Ok(metadata) => metadata.file_type(),
            Err(error) => return OracleVerdict::fail(format!("{name}: what was planted there is gone: {error}")),
        };
        use std::os::unix::fs::FileTypeExt as _;
        match planted {
            Planted::Fifo if found.is_fifo() => OracleVerdict::Pass,
            Planted::Link(target) if found.is_symlink() => match std::fs::read_link(&path) {
                Ok(link) if link == Path::new(target) => OracleVerdict::Pass,
                Ok(link) => OracleVerdict::fail(format!(
                    "{name}: the planted symlink now points to {}, not {target}",
                    link.display()
                )),
                Err(error) => OracleVerdict::fail(format!("{name}: cannot read the planted symlink: {error}")),
            },
            _ => OracleVerdict::fail(format!("{name}: planted {planted:?}, replaced by a {found:?} during the run")),
        }
    })
}

/// Exactly one `evicted` event about the file under test `name`, dropping exactly `expected`
/// (each key, in hex, with the reason it journals): what the limits or the eviction policy
/// dropped, at open or at a save, and nothing else.
pub fn evicted_once(name: &str, expected: Vec<(String, EvictReason)>) -> impl Oracle + use<> {
    let name = name.to_owned();
    let expected: BTreeSet<(String, String)> =
        expected.into_iter().map(|(key, reason)| (key, reason.to_string())).collect();
    oracle::from_fn("evicted_once", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let lines = oracle::journal_about(obs, "evicted", file);
        let [line] = lines.as_slice() else {
            return OracleVerdict::fail(format!(
                "{} `evicted` events about {name}, expected 1 dropping {expected:?}:\n{}",
                lines.len(),
                quote_lines(lines.iter().map(|line| line.raw.as_str()), 4)
            ));
        };
        let reasons = line.fields.get("reasons").and_then(|v| v.as_array()).cloned().unwrap_or_default();
        let dropped: BTreeSet<(String, String)> = line
            .keys()
            .zip(reasons.iter().map(|reason| reason.as_str().unwrap_or_default()))
            .map(|(key, reason)| (key.to_owned(), reason.to_owned()))
            .collect();
        match dropped == expected {
            true => OracleVerdict::Pass,
            false => OracleVerdict::fail(format!(
                "{name}: the `evicted` event dropped (key, reason) {dropped:?}, expected {expected:?}:\n{}",
                quote_lines([line.raw.as_str()], 1)
            )),
        }
    })
}

/// Every kernel a process compiled (the keys of its `kernel` events with origin `compiled`) is
/// among the keys its `committed` or `evicted` events for the file under test `name` list, and
/// some process compiled one: a save that reports no keys for what it wrote would otherwise
/// leave `no_lost_entries` nothing to check. For cells whose processes compile into that one
/// file.
pub fn compiled_kernels_committed(name: &str) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("compiled_kernels_committed", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let mut compiled = BTreeMap::<u32, BTreeSet<&str>>::new();
        for kernel in obs.journal.of_kind("kernel").filter(|line| line.str_field("origin") == Some("compiled")) {
            let Some(key) = kernel.str_field("key") else {
                return OracleVerdict::fail(format!("a `kernel` event has no `key`: {}", kernel.raw));
            };
            compiled.entry(kernel.pid).or_default().insert(key);
        }
        if compiled.is_empty() {
            return OracleVerdict::fail("no process compiled a kernel (no `kernel` event with origin `compiled`)");
        }
        let mut accounted = BTreeMap::<u32, BTreeSet<&str>>::new();
        for kind in ["committed", "evicted"] {
            for line in oracle::journal_about(obs, kind, file) {
                accounted.entry(line.pid).or_default().extend(line.keys());
            }
        }
        for (pid, keys) in &compiled {
            let missing: Vec<&str> =
                keys.iter().copied().filter(|key| !accounted.get(pid).is_some_and(|seen| seen.contains(key))).collect();
            if !missing.is_empty() {
                return OracleVerdict::fail(format!(
                    "process {pid} compiled {} kernel(s), but its `committed` (or `evicted`) events for {name} \
                     do not list {missing:?}",
                    keys.len()
                ));
            }
        }
        OracleVerdict::Pass
    })
}

/// One `entry` as [`listed_entries`] expects it in an `entries` event: its key (hex), or any key
/// not otherwise named when `None`; its last use in Unix seconds, exactly or at least; dirty.
#[derive(Debug, Clone)]
pub struct ListedEntry {
    /// What the entry is, for the failure message (e.g. "the oldest seeded entry").
    pub role: &'static str,
    /// The hex key, or `None` for an entry whose key the cell does not know (a kernel the child
    /// compiled).
    pub key: Option<String>,
    /// Its last use, in Unix seconds.
    pub last_used: LastUse,
    /// Whether the handle still has to save it.
    pub dirty: bool,
}

/// A last use as [`ListedEntry`] expects it.
#[derive(Debug, Clone, Copy)]
pub enum LastUse {
    /// Exactly these Unix seconds (0: unknown).
    Exactly(u64),
    /// These Unix seconds or later.
    AtLeast(u64),
}

/// The one `entries` event (what `RuntimeCache::entries` listed) holds exactly `expected`, in
/// any order: the same number of entries, each with its last use and dirtiness.
pub fn listed_entries(expected: Vec<ListedEntry>) -> impl Oracle {
    oracle::from_fn("listed_entries", move |obs| {
        let lines: Vec<&Entry> = obs.journal.of_kind("entries").collect();
        let [line] = lines.as_slice() else {
            return OracleVerdict::fail(format!("{} `entries` events, expected 1", lines.len()));
        };
        let column = |name: &str| line.fields.get(name).and_then(|v| v.as_array()).cloned().unwrap_or_default();
        let (last_used, dirty) = (column("last_used"), column("dirty"));
        let listed: Vec<(&str, Option<u64>, Option<bool>)> = line
            .keys()
            .enumerate()
            .map(|(i, key)| (key, last_used.get(i).and_then(|v| v.as_u64()), dirty.get(i).and_then(|v| v.as_bool())))
            .collect();
        let fits = |want: &ListedEntry, (key, used, dirty): &(&str, Option<u64>, Option<bool>)| {
            let used_fits = match (want.last_used, used) {
                (LastUse::Exactly(at), Some(used)) => *used == at,
                (LastUse::AtLeast(at), Some(used)) => *used >= at,
                (_, None) => false,
            };
            let named = expected.iter().filter_map(|e| e.key.as_deref()).any(|k| k == *key);
            let key_fits = want.key.as_deref().map_or(!named, |k| k == *key);
            key_fits && used_fits && *dirty == Some(want.dirty)
        };
        let mut unmatched: Vec<_> = listed.clone();
        for want in &expected {
            match unmatched.iter().position(|entry| fits(want, entry)) {
                Some(at) => {
                    unmatched.remove(at);
                }
                None => {
                    let listed: Vec<String> = listed
                        .iter()
                        .map(|(key, used, dirty)| format!("{key} last use {used:?} dirty {dirty:?}"))
                        .collect();
                    return OracleVerdict::fail(format!(
                        "`entries` lists no {} (key {}, last use {:?}, dirty {}); it listed:\n    {}",
                        want.role,
                        want.key.as_deref().unwrap_or("not named by the cell"),
                        want.last_used,
                        want.dirty,
                        listed.join("\n    ")
                    ));
                }
            }
        }
        match unmatched.is_empty() {
            true => OracleVerdict::Pass,
            false => OracleVerdict::fail(format!("`entries` listed more than expected: {unmatched:?}")),
        }
    })
}

/// How a save changed the size of the file, against the save before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeChange {
    /// It grew: the save appended.
    Grew,
    /// It shrank: the save rewrote the file without superseded bytes.
    Shrank,
}

/// The saves of the file under test `name` changed its size as `expected` says, each against
/// the one before (so there is one save more than `expected` has entries), by the file sizes
/// their `save` events journal (`bytes`).
pub fn file_size_changes(name: &str, expected: Vec<SizeChange>) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("file_size_changes", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let sizes: Vec<Option<u64>> =
            oracle::journal_about(obs, "save", file).iter().map(|save| save.u64_field("bytes")).collect();
        let changes: Option<Vec<SizeChange>> = sizes
            .windows(2)
            .map(|pair| match (pair[0], pair[1]) {
                (Some(before), Some(after)) if after > before => Some(SizeChange::Grew),
                (Some(before), Some(after)) if after < before => Some(SizeChange::Shrank),
                _ => None,
            })
            .collect();
        match changes {
            Some(changes) if changes == expected => OracleVerdict::Pass,
            _ => OracleVerdict::fail(format!(
                "{name}: the file's size after each save was {sizes:?}, expected changes {expected:?}"
            )),
        }
    })
}

/// The saves of the file under test `name` wrote it as `expected` says, in the journal's order
/// (each `save` event's `how`: `appended` for one frame added to the file, `rewritten` for a new
/// file renamed into place), whichever handle or process saved.
pub fn save_kinds(name: &str, expected: Vec<SaveKind>) -> impl Oracle + use<> {
    let name = name.to_owned();
    oracle::from_fn("save_kinds", move |obs| {
        let Some(file) = obs.file(&name) else {
            return OracleVerdict::fail(format!("{name} is not a file under test"));
        };
        let saves = oracle::journal_about(obs, "save", file);
        let written: Vec<&str> = saves.iter().map(|save| save.str_field("how").unwrap_or("(no `how`)")).collect();
        // Spelled here, not by runtime-cache's `Display`: the expectation must not come from the
        // code under test.
        let expected: Vec<&str> = expected
            .iter()
            .map(|kind| match kind {
                SaveKind::Appended => "appended",
                SaveKind::Rewritten => "rewritten",
            })
            .collect();
        if written == expected {
            return OracleVerdict::Pass;
        }
        // The first save that differs: a long sequence (64 appends) is not quoted whole.
        let at = written.iter().zip(&expected).take_while(|(how, want)| how == want).count();
        let (how, want) =
            (written.get(at).copied().unwrap_or("(no save)"), expected.get(at).copied().unwrap_or("(none)"));
        OracleVerdict::fail(format!(
            "{name}: {} save(s), expected {}; save {} of them wrote it as `{how}`, expected `{want}`",
            written.len(),
            expected.len(),
            at + 1
        ))
    })
}

/// runtime-cache's warnings (the `log` lines of level `WARN` that the child's logger journals),
/// in order, are exactly `expected`: one each, each containing its text.
pub fn warnings(expected: Vec<&'static str>) -> impl Oracle {
    oracle::from_fn("warnings", move |obs| {
        let journal = match obs.judgeable_journal() {
            Ok(journal) => journal,
            Err(verdict) => return verdict,
        };
        let warned: Vec<&str> = journal
            .of_kind("log")
            .filter(|line| line.str_field("level") == Some("WARN"))
            .map(|line| line.str_field("message").unwrap_or_default())
            .collect();
        let matches = warned.len() == expected.len()
            && warned.iter().zip(&expected).all(|(message, text)| message.contains(text));
        match matches {
            true => OracleVerdict::Pass,
            false if expected.is_empty() => OracleVerdict::fail(format!(
                "runtime-cache warned {} time(s), expected never: {warned:?}",
                warned.len()
            )),
            false => OracleVerdict::fail(format!(
                "runtime-cache warned {} time(s): {warned:?}; expected one warning containing each of {expected:?}",
                warned.len()
            )),
        }
    })
}
