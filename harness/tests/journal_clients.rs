//! The journal clients for other languages (`harness/clients/python`, `harness/clients/sh`) speak
//! the same line protocol as the Rust writer: a child that journals its saves through them
//! passes the two-observer `SaveCount`, and one whose journal lies is caught.
//!
//! Needs `python3` (3.8+), `sh` and `bash` on `PATH`.

mod common;

use std::path::{Path, PathBuf};

use common::validate;
use exit_harness::journal::{Entry, MAX_LINE};
use exit_harness::oracle::{ExitStatus, NoLostEntries, QuietStderr, SaveCount};
use exit_harness::{ChildSpec, FileUnderTest, Observation};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the harness lives in the workspace").to_owned()
}

fn python_client_dir() -> PathBuf {
    repo().join("harness/clients/python")
}

fn sh_client() -> PathBuf {
    repo().join("harness/clients/sh/exit-harness-journal.sh")
}

/// `cache.bin` in the scratch folder, in the test child's format (`valid\n` + one key a line).
fn cache_bin() -> FileUnderTest {
    FileUnderTest::new("cache.bin").validated_by(validate)
}

fn run(spec: ChildSpec) -> Observation {
    spec.run(&[cache_bin()]).expect("the run produces an observation")
}

/// The journal's only `save` entry.
#[track_caller]
fn only_save(obs: &Observation) -> &Entry {
    let saves: Vec<&Entry> = obs.journal.of_kind("save").collect();
    assert_eq!(saves.len(), 1, "one save expected in the journal:\n{obs:#?}");
    saves[0]
}

/// Every line the child wrote parsed, none torn, each shorter than `MAX_LINE` bytes.
#[track_caller]
fn journal_is_clean(obs: &Observation) {
    assert!(obs.journal.torn_tail.is_none(), "torn journal tail: {:?}", obs.journal.torn_tail);
    for e in &obs.journal.entries {
        assert!(e.raw.len() < MAX_LINE, "line {} is {} bytes", e.line, e.raw.len() + 1);
    }
}

#[test]
fn python_child_that_journals_its_save_passes_the_two_observer_save_count() {
    let script = repo().join("third-party/python/journaled_save.py");
    let obs = run(ChildSpec::new("python3").arg(&script).arg("{scratch}/cache.bin"));

    obs.assert().oracle(ExitStatus::success());
    obs.assert().oracle(QuietStderr::empty());
    obs.assert().oracle(SaveCount::exactly(1));
    obs.assert().oracle(NoLostEntries::new().of("cache.bin"));
    journal_is_clean(&obs);

    let save = only_save(&obs);
    let file = obs.file("cache.bin").expect("cache.bin is watched");
    assert_eq!(save.file(), Some(file.path.as_path()), "the save names the absolute path: {}", save.raw);
    assert_eq!(save.u64_field("entries"), Some(2), "{}", save.raw);
    assert_eq!(save.str_field("trigger"), Some("main"), "{}", save.raw);
    assert!(obs.journal.has_marker("ready"));

    // One process, seq counting from 0 in write order, time moving forward.
    let pids: Vec<u32> = obs.journal.entries.iter().map(|e| e.pid).collect();
    assert!(pids.iter().all(|&p| p == pids[0] && p != std::process::id()), "{pids:?}");
    let seqs: Vec<u64> = obs.journal.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert!(obs.journal.entries.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    let committed = obs.journal.of_kind("committed").next().expect("a committed entry");
    assert_eq!(committed.keys().collect::<Vec<_>>(), ["gemm", "softmax"]);
}

#[test]
fn python_child_that_renames_twice_but_journals_once_is_caught() {
    let script = repo().join("third-party/python/journaled_save.py");
    let obs = run(ChildSpec::new("python3").arg(&script).arg("{scratch}/cache.bin").args(["--renames", "2"]));
    obs.assert().oracle(ExitStatus::success());
    assert_eq!(obs.journal.of_kind("save").count(), 1);
    obs.assert().fails(SaveCount::exactly(1), &["journal and black box disagree", "journal: 1", "black box: 2"]);
    obs.assert().fails(SaveCount::exactly(2), &["disagree"]);
}

#[test]
fn python_client_lines_survive_fork_truncation_shutdown_and_odd_values() {
    // Everything the client promises, read back by the harness's own parser.
    let program = r#"
import os, sys
sys.path.insert(0, sys.argv[1])
import exit_harness_journal as j
scratch = os.environ["EXIT_HARNESS_SCRATCH"]
j.marker("start")
pid = os.fork()
if pid == 0:
    j.marker("forked")
    os._exit(0)
os.waitpid(pid, 0)
j.committed(os.path.join(scratch, "big"), ["key-%05d" % i for i in range(2000)])
j.record("custom", note="\u00e9" * 5000, pid=1, seq=99, odd=object(), nan=float("nan"), path=b"/x/\xff")
j.registry(2, 1)
class Late:
    def __del__(self):
        j.marker("late-del")
late = Late()  # collected at interpreter shutdown, after module teardown began
"#;
    let obs = run(ChildSpec::new("python3").arg("-c").arg(program).arg(python_client_dir()));
    obs.assert().oracle(ExitStatus::success());
    obs.assert().oracle(QuietStderr::empty());
    journal_is_clean(&obs);

    let kinds: Vec<&str> = obs.journal.entries.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["marker", "marker", "committed", "custom", "registry", "marker"], "{obs:#?}");
    let parent = obs.journal.entries[0].pid;
    let forked = &obs.journal.entries[1];
    assert_eq!(forked.str_field("name"), Some("forked"));
    assert_ne!(forked.pid, parent, "pid is read at write time");
    assert_eq!(forked.seq, 1, "a forked child continues its parent's seq");

    let committed = &obs.journal.entries[2];
    assert!(committed.truncated() && committed.keys().count() > 10, "{}", committed.raw);
    let custom = &obs.journal.entries[3];
    assert!(custom.truncated());
    assert_eq!((custom.pid, custom.seq), (parent, 2), "reserved fields cannot be forged: {}", custom.raw);
    assert!(custom.str_field("note").is_some_and(|n| n.starts_with("éé")));
    assert_eq!(custom.str_field("nan"), Some("nan"));
    assert_eq!(custom.str_field("path"), Some("/x/\u{fffd}"));
    let registry = &obs.journal.entries[4];
    assert_eq!((registry.u64_field("len"), registry.u64_field("live")), (Some(2), Some(1)));
    assert!(obs.journal.has_marker("late-del"), "the client still writes at interpreter shutdown");
}

#[test]
fn python_client_is_a_silent_no_op_without_the_variable() {
    let program = "import sys; sys.path.insert(0, sys.argv[1]); import exit_harness_journal as j; \
                   assert j.save('x') is False and j.marker('m') is False";
    let obs = run(ChildSpec::new("python3")
        .env_remove("EXIT_HARNESS_JOURNAL")
        .arg("-c")
        .arg(program)
        .arg(python_client_dir()));
    obs.assert().oracle(ExitStatus::success());
    obs.assert().oracle(QuietStderr::empty());
    assert!(obs.journal.entries.is_empty());
}

/// A shell script that sources the sh client, writes a marker, saves with a rename, and
/// journals the save (with a value that needs escaping).
const SH_SAVE: &str = r#"
set -eu
. "$EHJ_CLIENT"
exit_harness_journal marker name=ready
printf 'valid\ngemm\n' > "$1.tmp.$$"
mv "$1.tmp.$$" "$1"
exit_harness_journal save file="$1" entries:=1 note='say "hi" \ bye
next'
exit_harness_journal registry len:=3 live:=3
"#;

fn sh_child(shell: &str, extra: &str) -> Observation {
    run(ChildSpec::new(shell)
        .env("EHJ_CLIENT", sh_client())
        .arg("-c")
        .arg(format!("{SH_SAVE}{extra}"))
        .arg("journal-client")
        .arg("{scratch}/cache.bin"))
}

#[test]
fn sh_client_under_dash_and_bash_passes_the_two_observer_save_count() {
    for shell in ["sh", "bash"] {
        let obs = sh_child(shell, "");
        obs.assert().oracle(ExitStatus::success());
        obs.assert().oracle(QuietStderr::empty());
        obs.assert().oracle(SaveCount::exactly(1));
        journal_is_clean(&obs);

        let save = only_save(&obs);
        let file = obs.file("cache.bin").expect("cache.bin is watched");
        assert_eq!(save.file(), Some(file.path.as_path()), "{shell}: {}", save.raw);
        assert_eq!(save.u64_field("entries"), Some(1), "{shell}: {}", save.raw);
        assert_eq!(save.str_field("note"), Some("say \"hi\" \\ bye\nnext"), "{shell}: {}", save.raw);
        assert!(obs.journal.has_marker("ready"), "{shell}");
        let seqs: Vec<u64> = obs.journal.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2], "{shell}");
        assert!(obs.journal.entries.iter().all(|e| e.pid == obs.journal.entries[0].pid && e.t_us > 0));
        let registry = obs.journal.of_kind("registry").next().expect("a registry sample");
        assert_eq!(registry.u64_field("len"), Some(3), "{shell}: numbers with := stay numbers");
    }
}

#[test]
fn sh_client_that_renames_twice_but_journals_once_is_caught() {
    let again = r#"printf 'valid\ngemm\n' > "$1.tmp.$$"; mv "$1.tmp.$$" "$1""#;
    let obs = sh_child("sh", again);
    obs.assert().fails(SaveCount::exactly(1), &["journal and black box disagree", "journal: 1", "black box: 2"]);
}

#[test]
fn sh_client_cuts_long_lines_and_is_silent_without_the_variable() {
    for shell in ["sh", "bash"] {
        let script = r#"
. "$EHJ_CLIENT"
big=$(printf '%06000d' 0)
uni=$(printf '\303\251%.0s' $(seq 3000))
exit_harness_journal custom big="$big" small=ok
exit_harness_journal custom uni="$uni"
unset EXIT_HARNESS_JOURNAL
exit_harness_journal marker name=unseen
"#;
        let obs = run(ChildSpec::new(shell).env("EHJ_CLIENT", sh_client()).arg("-c").arg(script));
        obs.assert().oracle(ExitStatus::success());
        obs.assert().oracle(QuietStderr::empty());
        journal_is_clean(&obs);
        assert_eq!(obs.journal.entries.len(), 2, "{shell}: {obs:#?}");
        for e in &obs.journal.entries {
            assert!(e.truncated(), "{shell}: {}", e.raw);
        }
        assert_eq!(obs.journal.entries[0].str_field("small"), Some("ok"), "{shell}");
    }
}
