//! The harness never passes what it did not observe, never hangs on what a child leaves, and
//! never grows without bound: each test here is a way a hostile or careless child (or a slip in
//! a test) once made it pass, hang or balloon.

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{cache, child, observe, validate};
use exit_harness::observation::{FileObservation, FileSnapshot};
use exit_harness::oracle::{FileIntact, NoLeakedProcesses, NoLostEntries, RegistryBound, SaveCount};
use exit_harness::report::{human, json, table};
use exit_harness::{Cell, ChildSpec, FileUnderTest, Limits, Observation, Oracle, OracleVerdict, Scenario};

fn is_running(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty() && !stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z'))
}

#[test]
fn a_grandchild_that_left_the_process_group_is_reported_and_killed() {
    let obs = observe(child(["escape"]));
    // The escaped shell, and (caught between fork and exec) its `sleep`, are all reported.
    assert!(obs.leaked.iter().any(|p| p.cmdline.contains("escaped-")), "{:?}", obs.leaked);
    assert!(obs.descendants_watched);
    let verdict = NoLeakedProcesses.judge(&obs);
    assert!(verdict.evidence().is_some_and(|e| e.contains("escaped-")), "{verdict}");
    for pid in obs.leaked.iter().map(|p| p.pid.expect("a spawned run knows the pid")) {
        assert!(!is_running(pid), "the escaped descendant {pid} is still running");
    }
    let scratch = obs.scratch_path().expect("kept until dropped").to_owned();
    drop(obs);
    assert!(!scratch.exists(), "the run folder is gone, whatever the grandchild wrote into it");
}

/// A custom oracle that lists the scratch folder while judging, as users write them.
struct ListsScratch(Arc<Mutex<Option<PathBuf>>>);

impl Oracle for ListsScratch {
    fn name(&self) -> &str {
        "lists_scratch"
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let Some(scratch) = obs.scratch_path() else { return OracleVerdict::cannot_judge("no scratch folder") };
        *self.0.lock().unwrap() = Some(scratch.to_owned());
        match std::fs::read_dir(scratch) {
            Ok(entries) => {
                let names: Vec<String> = entries.map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
                if names == ["cache"] { OracleVerdict::Pass } else { OracleVerdict::fail(format!("{names:?}")) }
            }
            Err(e) => OracleVerdict::fail(e.to_string()),
        }
    }
}

#[test]
fn the_scratch_folder_stays_until_every_oracle_has_judged_and_goes_after() {
    for _ in 0..20 {
        let seen = Arc::new(Mutex::new(None));
        let result = Cell::new("lists", "custom", child(["save:{scratch}/cache"]))
            .file(cache())
            .oracle(ListsScratch(seen.clone()))
            .run();
        assert!(result.passed(), "{:?}", result.failures());
        let scratch = seen.lock().unwrap().clone().expect("the oracle ran");
        assert!(!scratch.exists(), "{} is left behind", scratch.display());
        assert!(!scratch.parent().unwrap().exists(), "the run folder is left behind");
    }
}

#[test]
fn two_instances_of_one_oracle_have_their_own_ids_and_the_table_never_shows_a_failed_one_as_pass() {
    let result = Cell::new("two-files", "ids", child(["save:{scratch}/a", "save:{scratch}/b", "save:{scratch}/b"]))
        .file(FileUnderTest::new("a").validated_by(validate))
        .file(FileUnderTest::new("b").validated_by(validate))
        .oracle(SaveCount::exactly(1).of("a"))
        .oracle(SaveCount::exactly(1).of("b"))
        .run();
    assert!(result.verdict("save_count[a]").is_some_and(OracleVerdict::passed));
    assert!(result.verdict("save_count[b]").is_some_and(|v| !v.passed()));
    assert_eq!(result.status_of("save_count"), Some("FAIL"));
    let rendered = table::render(std::slice::from_ref(&result));
    let row = rendered.lines().find(|l| l.starts_with("two-files")).unwrap();
    assert!(row.contains("FAIL") && !row.contains("pass"), "{rendered}");
    let human = human::render(std::slice::from_ref(&result), &|_| String::new());
    assert!(human.contains("save_count[b]: b: expected exactly 1"), "{human}");
    assert!(!human.contains("save_count[a]:"), "a passing instance is not reported as failing: {human}");
    let report = json::render(std::slice::from_ref(&result));
    assert!(report.contains("\"id\": \"save_count[b]\""), "{report}");

    // The same oracle twice without a qualifier: distinct ids too.
    let result = Cell::new("twice", "ids", child(["marker:x"]))
        .file(cache())
        .oracle(SaveCount::none())
        .oracle(SaveCount::exactly(1))
        .run();
    let ids: Vec<&str> = result.verdicts.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(ids, ["save_count", "save_count#2"]);
}

fn unobserved_file(after: FileSnapshot) -> FileObservation {
    FileObservation { name: "cache".into(), path: "/nowhere/cache".into(), before: None, after, black_box: None }
}

#[test]
fn what_a_runner_did_not_observe_is_cannot_judge_never_a_pass() {
    let mut obs = observe(child(["marker:x"]));
    obs.files = vec![unobserved_file(FileSnapshot::absent())];
    obs.descendants_watched = false;
    for oracle in [&FileIntact::new() as &dyn Oracle, &SaveCount::none(), &NoLeakedProcesses] {
        let verdict = oracle.judge(&obs);
        assert!(matches!(verdict, OracleVerdict::CannotJudge { .. }), "{}: {verdict}", oracle.name());
        assert!(!verdict.passed());
    }
    let scenario = Scenario::new("unobserved").file(cache()).oracle(FileIntact::new());
    let judged = scenario.judge(Ok(obs), Duration::ZERO, String::new());
    assert!(!judged.passed(), "a cell with a 'cannot judge' verdict fails");
    assert!(judged.try_assert_passed().unwrap_err().to_string().contains("file_intact (cannot judge)"));
}

#[test]
fn a_fifo_or_a_symlink_in_place_of_the_journal_neither_hangs_nor_misleads() {
    for action in ["journal-fifo", "journal-zero"] {
        let obs = child(["marker:before", action, "marker:after"]).timeout(Duration::from_secs(20)).run(&[]).unwrap();
        assert!(!obs.timed_out, "{action}");
        // The harness reads the file it created: the marker written before the swap is there.
        assert!(obs.journal.has_marker("before"), "{action}: {:?}", obs.journal);
        assert!(obs.journal.cut_at.is_none() && obs.journal.malformed.is_empty(), "{action}: {:?}", obs.journal);
    }
}

#[test]
fn a_fifo_symlink_or_huge_file_under_test_is_reported_unread_not_hashed() {
    let obs = observe(child(["fifo:{scratch}/cache"]));
    let after = &obs.file("cache").unwrap().after;
    assert!(after.unreadable.as_deref().is_some_and(|why| why.contains("FIFO")), "{after:?}");
    let verdict = FileIntact::new().judge(&obs);
    assert!(matches!(verdict, OracleVerdict::CannotJudge { .. }), "{verdict}");

    // 3 GB, sparse: refused by its size before a byte is read.
    let obs = observe(child(["sparse:{scratch}/cache:3000000000"]));
    let after = &obs.file("cache").unwrap().after;
    assert!(after.unreadable.as_deref().is_some_and(|why| why.contains("over the harness's limit")), "{after:?}");

    let obs = observe(ChildSpec::new("ln").args(["-s", "/etc/passwd", "{scratch}/cache"]));
    let after = &obs.file("cache").unwrap().after;
    assert!(after.unreadable.as_deref().is_some_and(|why| why.contains("symbolic link")), "{after:?}");
    assert!(after.hash.is_none());
}

#[test]
fn a_journal_over_its_limit_is_cut_and_cannot_be_judged() {
    let limits = Limits { journal_cap: 256 * 1024, ..Limits::default() };
    let obs = child(["save:{scratch}/cache", "journal-flood:2000000"]).limits(limits).run(&[cache()]).unwrap();
    assert_eq!(obs.journal.cut_at, Some(256 * 1024));
    let verdict = SaveCount::exactly(1).judge(&obs);
    assert!(verdict.evidence().is_some_and(|e| e.contains("exceeded the harness's limit")), "{verdict}");
    assert!(!verdict.passed());
}

#[test]
fn one_malformed_journal_line_fails_the_journal_oracles_and_keeps_the_observation() {
    let obs = child(["save:{scratch}/cache", "journal-garbage", "registry:1:1"]).run(&[cache()]).unwrap();
    assert_eq!(obs.journal.entries.len(), 3, "the well-formed lines are kept");
    for oracle in [&SaveCount::exactly(1) as &dyn Oracle, &RegistryBound::new(), &NoLostEntries::new()] {
        let verdict = oracle.judge(&obs);
        assert!(matches!(verdict, OracleVerdict::Fail { .. }), "{}: {verdict}", oracle.name());
        assert!(verdict.evidence().unwrap().contains("this is not json"), "{verdict}");
    }
}

#[test]
fn the_journal_is_created_by_the_harness_in_a_private_run_folder() {
    let script = r#"stat -c %a "$EXIT_HARNESS_JOURNAL" "$(dirname "$EXIT_HARNESS_JOURNAL")" "$EXIT_HARNESS_SCRATCH"
                   case "$EXIT_HARNESS_JOURNAL" in "$EXIT_HARNESS_SCRATCH"/*) echo inside;; esac"#;
    let obs = observe(ChildSpec::new("sh").args(["-c", script]));
    assert_eq!(obs.stdout, "600\n700\n700\n", "journal 0600, run folder 0700, scratch 0700, journal outside scratch");
}

#[test]
fn no_run_folder_is_left_behind_once_the_observation_is_dropped() {
    let obs = observe(child(["save:{scratch}/cache"]));
    let scratch = obs.scratch_path().unwrap().to_owned();
    let mode = std::fs::metadata(scratch.parent().unwrap()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
    let clone = obs.clone();
    drop(obs);
    assert!(scratch.exists(), "a clone still holds it");
    drop(clone);
    assert!(!scratch.parent().unwrap().exists(), "removed synchronously, with no cleanup thread to wait for");
}

/// A write the black box cannot see (through a hard link in another folder) must not pass as
/// "no save": the before/after snapshots saw the content change.
#[test]
fn a_change_the_black_box_did_not_see_is_cannot_judge_not_no_save() {
    let spec = ChildSpec::new("/bin/sh")
        .arg("-c")
        .arg("mkdir other && ln state other/link && printf new-content > other/link")
        .without_journal();
    let obs = spec.run(&[FileUnderTest::new("state").seeded(b"old".to_vec())]).expect("observation");
    let verdict = SaveCount::none().of("state").judge(&obs);
    assert!(
        matches!(&verdict, OracleVerdict::CannotJudge { reason } if reason.contains("the black box saw no write")),
        "{verdict:?}"
    );
    let untouched = ChildSpec::new("/bin/true").without_journal();
    let obs = untouched.run(&[FileUnderTest::new("state").seeded(b"old".to_vec())]).expect("observation");
    assert_eq!(SaveCount::none().of("state").judge(&obs), OracleVerdict::Pass);
}
