//! Wires runtime-cache's observer to the harness journal: every cache event becomes a journal line.
//! Used by the child program and by the inline (rusty-fork) tests alike.

use exit_harness::journal::{self, Event as Line};
use runtime_cache::Event;

/// Installs the observer. Each event is one `write(2)` to the journal, safe at exit.
pub fn wire_observer() {
    runtime_cache::set_observer(|event| {
        let _ = journal::record(&line_for(event));
    });
}

/// Installs a logger that journals runtime-cache's warnings and errors (what an operator would
/// see on the application's log) as `log` lines: `level`, `target`, `message`. Each is one
/// `write(2)` to the journal, like the observer's; debug and info records are not formatted.
pub fn wire_log() {
    static JOURNAL_LOG: JournalLog = JournalLog;
    if log::set_logger(&JOURNAL_LOG).is_ok() {
        log::set_max_level(log::LevelFilter::Warn);
    }
}

/// The logger [`wire_log`] installs.
struct JournalLog;

impl log::Log for JournalLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = Line::new("log")
                .with("level", record.level().as_str())
                .with("target", record.target())
                .with("message", record.args().to_string());
            let _ = journal::record(&line);
        }
    }

    fn flush(&self) {}
}

fn line_for(event: &Event) -> Line {
    match event {
        Event::BackendSelected { reason } => Line::new("backend").with("reason", reason.as_str()),
        Event::Opened { path, entries } => {
            Line::new("opened").with("file", path_str(path)).with("entries", *entries as u64)
        }
        Event::CacheUnavailable { path, reason, error } => Line::new("cache_unavailable")
            .with("file", path_str(path))
            .with("reason", reason.to_string())
            .with("error", error.as_str()),
        Event::Quarantined { path, moved_to, reason } => Line::new("quarantined")
            .with("file", path_str(path))
            .with("moved_to", path_str(moved_to))
            .with("reason", reason.as_str()),
        Event::TempFilesRemoved { path, count } => {
            Line::new("temp_removed").with("file", path_str(path)).with("count", *count as u64)
        }
        Event::HookRegistered { token, registry_len } => {
            Line::new("hook").with("op", "register").with("token", token.to_string()).with("len", *registry_len as u64)
        }
        Event::HookUnregistered { token, registry_len } => Line::new("hook")
            .with("op", "unregister")
            .with("token", token.to_string())
            .with("len", *registry_len as u64),
        Event::SaveStarted { path, trigger } => {
            Line::new("save_started").with("file", path_str(path)).with("trigger", trigger.to_string())
        }
        Event::SaveCommitted { path, trigger, entries, bytes, keys, kind } => {
            // The committed keys go in their own line right after (see `committed`).
            let _ = journal::record(&Line::committed(path, keys.iter().map(|key| key.to_hex())));
            Line::save(path)
                .with("trigger", trigger.to_string())
                .with("entries", *entries as u64)
                .with("bytes", *bytes)
                .with("how", kind.to_string())
        }
        Event::SaveFailed { path, trigger, error } => {
            Line::save_failed(path, error).with("trigger", trigger.to_string())
        }
        Event::SaveSkipped { path, trigger, reason } => Line::new("save_skipped")
            .with("file", path_str(path))
            .with("trigger", trigger.to_string())
            .with("reason", reason.to_string()),
        Event::Evicted { path, evicted } => Line::new("evicted")
            .with("file", path_str(path))
            .with("keys", evicted.iter().map(|(key, _)| key.to_hex()).collect::<Vec<_>>())
            .with("reasons", evicted.iter().map(|(_, reason)| reason.to_string()).collect::<Vec<_>>()),
        Event::OverLimits { path, detail } => {
            Line::new("over_limits").with("file", path_str(path)).with("detail", detail.as_str())
        }
        other => Line::new("cache_event").with("debug", format!("{other:?}")),
    }
}

fn path_str(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Records a registry sample: the exit registry's size against the handles this program holds.
pub fn sample_registry(live: u64) {
    let _ = journal::record(&Line::registry(runtime_cache::exit_registry_len() as u64, live));
}

/// Records a named point of the program.
pub fn marker(name: &str) {
    let _ = journal::record(&Line::marker(name));
}

/// Records a free-form event.
pub fn record(line: Line) {
    let _ = journal::record(&line);
}

/// Records how a child process ended: `line` (e.g. `worker_exit`) with its `code` or `signal`.
pub fn record_exit(line: Line, status: std::process::ExitStatus) {
    record(match crate::contract::outcome_of(status) {
        exit_harness::ExitOutcome::Code(code) => line.with("code", code),
        exit_harness::ExitOutcome::Signal(signal) => line.with("signal", signal),
    });
}

/// How a process ended, as [`record_exit`] journaled it.
pub fn outcome_in(entry: &exit_harness::journal::Entry) -> Option<exit_harness::ExitOutcome> {
    match (entry.fields.get("code").and_then(serde_json::Value::as_i64), entry.u64_field("signal")) {
        (Some(code), _) => Some(exit_harness::ExitOutcome::Code(code as i32)),
        (_, Some(signal)) => Some(exit_harness::ExitOutcome::Signal(signal as i32)),
        _ => None,
    }
}
