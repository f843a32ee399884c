//! Scenario-specific oracles: small named checks over the journal and the files, for the parts of
//! the contract the harness's generic oracles do not know about (markers, forks, quarantine, an
//! engine that runs without its cache).

use exit_harness::Observation;
use exit_harness::oracle::{Oracle, OracleVerdict};
use runtime_cache::UnavailableReason;

/// The judgement of a [`Check`]: `Ok(())` passes, `Err(evidence)` fails.
type Judgement = Box<dyn Fn(&Observation) -> Result<(), String> + Send + Sync>;

/// A named check written as a function of the observation: `Ok(())` passes, `Err(evidence)` fails.
pub struct Check {
    name: &'static str,
    check: Judgement,
}

impl Check {
    /// A check named `name`.
    pub fn new(name: &'static str, check: impl Fn(&Observation) -> Result<(), String> + Send + Sync + 'static) -> Self {
        Self { name, check: Box::new(check) }
    }

    /// Every journaled save of file `file` comes before marker `marker`, and there is at least one.
    pub fn saved_before(marker: &'static str, file: &str) -> Self {
        let suffix = format!("/{file}");
        Self::new("saved_before_marker", move |obs| {
            let lines = &obs.journal.entries;
            let marker_at = lines
                .iter()
                .position(|entry| entry.kind == "marker" && entry.str_field("name") == Some(marker))
                .ok_or_else(|| format!("marker `{marker}` is not in the journal"))?;
            let saves: Vec<usize> = lines
                .iter()
                .enumerate()
                .filter(|(_, entry)| {
                    entry.kind == "save" && entry.str_field("file").is_some_and(|f| f.ends_with(&suffix))
                })
                .map(|(at, _)| at)
                .collect();
            match saves.iter().find(|&&at| at > marker_at) {
                _ if saves.is_empty() => Err(format!("no save of {suffix} before marker `{marker}`")),
                Some(&late) => Err(format!("save after marker `{marker}`: {}", lines[late].raw)),
                None => Ok(()),
            }
        })
    }

    /// The journal holds at least one event of `kind`.
    pub fn journal_has(kind: &'static str) -> Self {
        Self::new("journal_has", move |obs| {
            if obs.journal.of_kind(kind).next().is_some() {
                Ok(())
            } else {
                Err(format!("no `{kind}` event in the journal ({} lines)", obs.journal.entries.len()))
            }
        })
    }

    /// The journal holds marker `name`.
    pub fn marker(name: &'static str) -> Self {
        Self::new("marker", move |obs| {
            if obs.journal.has_marker(name) { Ok(()) } else { Err(format!("marker `{name}` is not in the journal")) }
        })
    }

    /// Every `kind` event (e.g. `worker_exit`) has field `field` equal to `value`, and there are `count`.
    pub fn all_events(kind: &'static str, field: &'static str, value: u64, count: usize) -> Self {
        Self::new("process_endings", move |obs| {
            let events: Vec<_> = obs.journal.of_kind(kind).collect();
            if events.len() != count {
                return Err(format!("{} `{kind}` events, expected {count}", events.len()));
            }
            match events.iter().find(|entry| entry.u64_field(field) != Some(value)) {
                Some(odd) => Err(format!("expected {field}={value}: {}", odd.raw)),
                None => Ok(()),
            }
        })
    }

    /// Exactly `processes` processes journaled a save, each exactly one.
    pub fn one_save_per_saving_process(processes: usize) -> Self {
        Self::new("one_save_per_process", move |obs| {
            let mut by_pid = std::collections::BTreeMap::<u32, usize>::new();
            for save in obs.journal.of_kind("save") {
                *by_pid.entry(save.pid).or_default() += 1;
            }
            if let Some((pid, saves)) = by_pid.iter().find(|(_, saves)| **saves != 1) {
                return Err(format!("process {pid} saved {saves} times"));
            }
            if by_pid.len() == processes {
                Ok(())
            } else {
                Err(format!("{} processes saved, expected {processes}", by_pid.len()))
            }
        })
    }

    /// The saves of file `file`, in journal order, have exactly these triggers.
    pub fn save_triggers(file: &str, triggers: &'static [&'static str]) -> Self {
        let suffix = format!("/{file}");
        Self::new("save_triggers", move |obs| {
            let seen: Vec<&str> = obs
                .journal
                .of_kind("save")
                .filter(|save| save.str_field("file").is_some_and(|f| f.ends_with(&suffix)))
                .map(|save| save.str_field("trigger").unwrap_or("?"))
                .collect();
            if seen == triggers {
                Ok(())
            } else {
                Err(format!("saves of {suffix} by trigger: {seen:?}, expected {triggers:?}"))
            }
        })
    }

    /// Every save of file `file` has trigger `trigger` (e.g. `swap`), and there is at least one.
    pub fn save_trigger(file: &str, trigger: &'static str) -> Self {
        let suffix = format!("/{file}");
        Self::new("save_trigger", move |obs| {
            let saves: Vec<_> = obs
                .journal
                .of_kind("save")
                .filter(|save| save.str_field("file").is_some_and(|f| f.ends_with(&suffix)))
                .collect();
            match saves.iter().find(|save| save.str_field("trigger") != Some(trigger)) {
                _ if saves.is_empty() => Err(format!("no save of {suffix}")),
                Some(other) => Err(format!("expected trigger `{trigger}`: {}", other.raw)),
                None => Ok(()),
            }
        })
    }

    /// Some save was skipped for `reason` (as runtime-cache words it, e.g. `forked child`).
    pub fn skipped_because(reason: &'static str) -> Self {
        Self::new("save_skipped", move |obs| {
            if obs.journal.of_kind("save_skipped").any(|skip| skip.str_field("reason") == Some(reason)) {
                Ok(())
            } else {
                let skips: Vec<&str> = obs.journal.of_kind("save_skipped").map(|skip| skip.raw.as_str()).collect();
                Err(format!("no save skipped because `{reason}`; skips: {skips:?}"))
            }
        })
    }

    /// No save was skipped for `reason`.
    pub fn never_skipped_because(reason: &'static str) -> Self {
        Self::new("save_skipped", move |obs| {
            match obs.journal.of_kind("save_skipped").find(|skip| skip.str_field("reason") == Some(reason)) {
                Some(skip) => Err(format!("a save was skipped because `{reason}`: {}", skip.raw)),
                None => Ok(()),
            }
        })
    }

    /// Every `kernel` event after marker `marker` is a cache hit, and there are `count`.
    pub fn hits_after(marker: &'static str, count: usize) -> Self {
        Self::new("cache_hits", move |obs| {
            let lines = &obs.journal.entries;
            let from = lines
                .iter()
                .position(|entry| entry.kind == "marker" && entry.str_field("name") == Some(marker))
                .ok_or_else(|| format!("marker `{marker}` is not in the journal"))?;
            let kernels: Vec<_> = lines[from..].iter().filter(|entry| entry.kind == "kernel").collect();
            if kernels.len() != count {
                return Err(format!("{} kernels after `{marker}`, expected {count}", kernels.len()));
            }
            match kernels.iter().find(|kernel| kernel.str_field("origin") != Some("hit")) {
                Some(miss) => Err(format!("recompiled instead of a cache hit: {}", miss.raw)),
                None => Ok(()),
            }
        })
    }

    /// Event `to` comes at most `limit` after event `from` (both of kind `marker` or any kind,
    /// matched by kind and, for markers, name), in the same process.
    pub fn within(from: (&'static str, Option<&'static str>), to: &'static str, limit: std::time::Duration) -> Self {
        Self::new("within_deadline", move |obs| {
            let start = obs
                .journal
                .entries
                .iter()
                .find(|entry| entry.kind == from.0 && from.1.is_none_or(|name| entry.str_field("name") == Some(name)))
                .ok_or_else(|| format!("no `{}` event", from.1.unwrap_or(from.0)))?;
            let end = obs
                .journal
                .entries
                .iter()
                .find(|entry| entry.kind == to && entry.pid == start.pid)
                .ok_or_else(|| format!("no `{to}` event from process {}", start.pid))?;
            let took = std::time::Duration::from_micros(end.t_us.saturating_sub(start.t_us));
            if took <= limit {
                Ok(())
            } else {
                Err(format!("`{to}` came {took:?} after `{}`, limit {limit:?}", from.1.unwrap_or(from.0)))
            }
        })
    }

    /// The journal holds no event of `kind`.
    pub fn journal_lacks(kind: &'static str) -> Self {
        Self::new("journal_lacks", move |obs| match obs.journal.of_kind(kind).next() {
            Some(event) => Err(format!("unexpected `{kind}` event: {}", event.raw)),
            None => Ok(()),
        })
    }

    /// The last journaled save of `file` reports as many entries as the final file holds.
    pub fn reported_entries_match(file: &'static str) -> Self {
        let suffix = format!("/{file}");
        Self::new("reported_entries", move |obs| {
            let last = obs
                .journal
                .of_kind("save")
                .filter(|save| save.str_field("file").is_some_and(|f| f.ends_with(&suffix)))
                .last()
                .ok_or_else(|| format!("no save of {suffix}"))?;
            let on_disk = obs
                .file(file)
                .and_then(|f| f.after.keys())
                .ok_or_else(|| format!("{file} has no valid content after the run"))?
                .len() as u64;
            match last.u64_field("entries") {
                Some(reported) if reported == on_disk => Ok(()),
                _ => Err(format!(
                    "the last save reported {:?} entries; the file holds {on_disk}: {}",
                    last.u64_field("entries"),
                    last.raw
                )),
            }
        })
    }

    /// A process that marked itself `forked-child` journaled no save.
    pub fn forked_child_saves_nothing() -> Self {
        Self::new("fork_child_silent", |obs| {
            let child = obs
                .journal
                .entries
                .iter()
                .find(|entry| entry.kind == "marker" && entry.str_field("name") == Some("forked-child"))
                .ok_or("the forked child never ran (no `forked-child` marker)")?
                .pid;
            match obs.journal.of_kind("save").find(|entry| entry.pid == child) {
                Some(save) => Err(format!("the forked child (pid {child}) saved: {}", save.raw)),
                None => Ok(()),
            }
        })
    }

    /// `Engine::new` changed the exit registry's size by exactly `growth` (the child's
    /// `construction_registry` line: the size before and after): 0 when construction failed or
    /// the engine runs without its cache, 1 when it opened an autosaving cache.
    pub fn registry_growth(growth: u64) -> Self {
        let name = if growth == 0 { "registry_unchanged" } else { "registry_growth" };
        Self::new(name, move |obs| {
            let event =
                obs.journal.of_kind("construction_registry").next().ok_or("no `construction_registry` sample")?;
            match (event.u64_field("before"), event.u64_field("after")) {
                (Some(before), Some(after)) if after.checked_sub(before) == Some(growth) => Ok(()),
                _ => Err(format!("the construction should grow the exit registry by {growth}: {}", event.raw)),
            }
        })
    }

    /// The child built its engine and `Engine::cache_unavailable` reported `reason` (as
    /// runtime-cache words an `UnavailableReason`, e.g. `untrusted file`); and the observer
    /// reported exactly one `CacheUnavailable` event, with the same reason, for a path ending in
    /// `/file`.
    pub fn cache_unavailable(file: &str, reason: UnavailableReason) -> Self {
        let suffix = format!("/{file}");
        let reason = reason.to_string();
        Self::new("cache_unavailable", move |obs| {
            let reason = reason.as_str();
            let built =
                obs.journal.of_kind("engine_built").next().ok_or("the engine was not built (no `engine_built`)")?;
            if built.str_field("cache") != Some("unavailable") || built.str_field("reason") != Some(reason) {
                return Err(format!("expected the engine to run cold because `{reason}`: {}", built.raw));
            }
            let events: Vec<_> = obs.journal.of_kind("cache_unavailable").collect();
            match events.as_slice() {
                [event]
                    if event.str_field("reason") == Some(reason)
                        && event.str_field("file").is_some_and(|f| f.ends_with(&suffix)) =>
                {
                    Ok(())
                }
                [] => Err(format!("no `CacheUnavailable` event (expected reason `{reason}`)")),
                _ => Err(format!(
                    "expected one `CacheUnavailable` event for {suffix} because `{reason}`: {:?}",
                    events.iter().map(|event| event.raw.as_str()).collect::<Vec<_>>()
                )),
            }
        })
    }

    /// The child built its engine with its cache open, `entries` entries loaded from the file.
    pub fn cache_opened(entries: u64) -> Self {
        Self::new("cache_opened", move |obs| {
            let built =
                obs.journal.of_kind("engine_built").next().ok_or("the engine was not built (no `engine_built`)")?;
            if built.str_field("cache") == Some("open") && built.u64_field("entries") == Some(entries) {
                Ok(())
            } else {
                Err(format!("expected the engine's cache open with {entries} entries loaded: {}", built.raw))
            }
        })
    }

    /// Between markers `from` and `to`, the engine compiled `count` kernels and then found the
    /// same `count` again (a cache hit: in memory for an engine that runs cold).
    pub fn compiled_then_found(from: &'static str, to: &'static str, count: usize) -> Self {
        Self::new("engine_works", move |obs| {
            let lines = &obs.journal.entries;
            let at = |name: &str| {
                lines
                    .iter()
                    .position(|entry| entry.kind == "marker" && entry.str_field("name") == Some(name))
                    .ok_or_else(|| format!("marker `{name}` is not in the journal"))
            };
            let (start, end) = (at(from)?, at(to)?);
            let origins: Vec<&str> = lines[start..end]
                .iter()
                .filter(|entry| entry.kind == "kernel")
                .map(|entry| entry.str_field("origin").unwrap_or("?"))
                .collect();
            let expected: Vec<&str> =
                std::iter::repeat_n("compiled", count).chain(std::iter::repeat_n("hit", count)).collect();
            if origins == expected {
                Ok(())
            } else {
                Err(format!("kernel origins between `{from}` and `{to}`: {origins:?}, expected {expected:?}"))
            }
        })
    }

    /// File `name` exists after the run and is byte-identical to `expected` (a quarantined copy).
    pub fn file_equals(name: &'static str, expected: Vec<u8>) -> Self {
        let expected_hash = blake3::hash(&expected).to_hex().to_string();
        Self::new("set_aside_byte_exact", move |obs| {
            let file = obs.file(name).ok_or_else(|| format!("{name} is not a file under test"))?;
            match &file.after.hash {
                Some(hash) if *hash == expected_hash => Ok(()),
                _ => Err(format!(
                    "{name} after the run: {}; expected the {} original bytes",
                    file.after.describe(),
                    expected.len()
                )),
            }
        })
    }

    /// Resident memory grew by at most `max_kib` between the first and last `rss` samples.
    pub fn rss_growth_at_most(max_kib: u64) -> Self {
        Self::new("memory_bounded", move |obs| {
            let samples: Vec<u64> = obs.journal.of_kind("rss").filter_map(|entry| entry.u64_field("kib")).collect();
            let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
                return Err("no `rss` samples in the journal".into());
            };
            let growth = last.saturating_sub(*first);
            if growth <= max_kib {
                Ok(())
            } else {
                Err(format!("resident memory grew {growth} KiB ({first} -> {last}), limit {max_kib} KiB"))
            }
        })
    }
}

impl Oracle for Check {
    fn name(&self) -> &str {
        self.name
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        match (self.check)(obs) {
            Ok(()) => OracleVerdict::Pass,
            Err(evidence) => OracleVerdict::fail(evidence),
        }
    }
}
