//! The child runner: timeouts, signals on markers, torn journals, separate streams.

mod common;

use std::time::Duration;

use common::{cache, child, observe};
use exit_harness::{ChildSpec, ExitOutcome, FileUnderTest, Limits};

#[test]
fn stdout_and_stderr_are_kept_apart() {
    let obs = observe(ChildSpec::new("sh").arg("-c").arg("echo out; echo err >&2"));
    assert_eq!(obs.stdout, "out\n");
    assert_eq!(obs.stderr, "err\n");
    assert_eq!(obs.outcome, ExitOutcome::Code(0));
}

#[test]
fn output_is_bounded() {
    let limits = Limits { output_cap: 100, ..Limits::default() };
    let obs =
        ChildSpec::new("sh").arg("-c").arg("head -c 5000 /dev/zero | tr '\\0' x >&2").limits(limits).run(&[]).unwrap();
    assert!(obs.stderr.starts_with(&"x".repeat(100)), "{}", obs.stderr);
    assert!(obs.stderr.ends_with("[truncated 4900 bytes]\n"), "{}", obs.stderr);
}

#[test]
fn a_hanging_child_is_terminated_at_the_timeout() {
    // Long enough for the child to start and journal its marker on a loaded 2-core machine.
    let timeout = Duration::from_millis(1500);
    let obs = child(["marker:ready", "hang"]).timeout(timeout).run(&[cache()]).unwrap();
    assert!(obs.timed_out);
    assert_eq!(obs.outcome, ExitOutcome::Signal(15));
    assert!(obs.journal.has_marker("ready"));
    assert!(obs.wall >= timeout && obs.wall < timeout + Duration::from_secs(10), "{:?}", obs.wall);
}

#[test]
fn a_child_ignoring_sigterm_gets_sigkill_after_the_grace() {
    // The timeout leaves `sh` ample time to install its trap before the SIGTERM comes.
    let limits =
        Limits { timeout: Duration::from_millis(1500), grace: Duration::from_millis(300), ..Limits::default() };
    let obs = ChildSpec::new("sh").arg("-c").arg("trap '' TERM; sleep 20").limits(limits).run(&[]).unwrap();
    assert!(obs.timed_out);
    assert_eq!(obs.outcome, ExitOutcome::Signal(9));
    assert!(obs.leaked.is_empty(), "the whole group was killed: {:?}", obs.leaked);
}

#[test]
fn a_signal_is_sent_when_the_journal_shows_the_marker() {
    let obs = child(["marker:mid-program", "hang"]).signal_on_marker("mid-program", 15).run(&[cache()]).unwrap();
    assert!(!obs.timed_out);
    assert_eq!(obs.outcome, ExitOutcome::Signal(15));
    assert_eq!(obs.signals_sent, vec![("marker \"mid-program\"".to_owned(), 15)]);
}

#[test]
fn a_torn_journal_tail_is_reported_not_fatal() {
    let obs = child(["marker:before", "torn"]).run(&[cache()]).unwrap();
    assert_eq!(obs.outcome, ExitOutcome::Signal(9));
    assert_eq!(obs.journal.entries.len(), 1);
    assert_eq!(obs.journal.torn_tail.as_deref(), Some(r#"{"pid":1,"seq":9,"kind":"sa"#));
}

#[test]
fn a_leaked_grandchild_is_reported_and_killed() {
    let obs = observe(child(["leak"]));
    let [leaked] = obs.leaked.as_slice() else { panic!("{:?}", obs.leaked) };
    assert!(leaked.cmdline.contains("sleep 30"));
    let pid = leaked.pid.expect("the pid of a spawned run's leftover is known");
    let gone = (0..1000).any(|_| {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let done = stat.is_empty() || stat.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z'));
        if !done {
            std::thread::sleep(Duration::from_millis(5));
        }
        done
    });
    assert!(gone, "the leaked process {pid} is still running");
}

#[test]
fn files_are_seeded_and_snapshotted() {
    let obs = child(["marker:x"]).run(&[FileUnderTest::new("sub/old").seeded("valid\nk\n")]).unwrap();
    let file = obs.file("sub/old").unwrap();
    let before = file.before.as_ref().expect("a spawned run snapshots before");
    assert!(before.exists && file.after.exists);
    assert_eq!(before.hash, file.after.hash);
    assert!(file.path.is_absolute());
}

#[test]
fn a_missing_working_folder_is_named_as_such_not_as_a_missing_program() {
    let err = ChildSpec::new("sh").current_dir("/nonexistent/folder").run(&[]).unwrap_err();
    assert!(err.to_string().contains("working folder /nonexistent/folder does not exist"), "{err}");
}

#[test]
fn a_missing_program_is_a_typed_error() {
    let err = ChildSpec::new("/nonexistent/program").run(&[]).unwrap_err();
    assert!(err.to_string().contains("could not start /nonexistent/program"), "{err}");
}

#[test]
fn a_signal_is_sent_when_the_output_shows_a_line_or_after_a_delay() {
    use exit_harness::spec::When;
    let script = "echo starting; echo ready; sleep 20";
    let when = When::Output(regex::Regex::new("^ready$").unwrap());
    let obs = ChildSpec::new("sh").args(["-c", script]).signal_when(when, 15).run(&[]).unwrap();
    assert_eq!(obs.outcome, ExitOutcome::Signal(15));
    assert_eq!(obs.signals_sent, vec![("output /^ready$/".to_owned(), 15)]);
    assert!(!obs.timed_out);

    let obs =
        ChildSpec::new("sleep").arg("20").signal_when(When::After(Duration::from_millis(50)), 2).run(&[]).unwrap();
    assert_eq!(obs.outcome, ExitOutcome::Signal(2));
    assert!(!obs.timed_out);
}

/// A shell starts a background job (`cargo test &`) with SIGINT ignored, and the harness's own
/// process would pass that on to every child: the runner gives the child SIGINT's default action
/// back, so a SIGINT a scenario sends still ends it. Runs in a copy of this test binary started
/// with SIGINT ignored (`trap '' INT`).
#[test]
fn a_child_ends_on_sigint_even_when_the_harness_process_ignores_sigint() {
    const INSIDE: &str = "RUNNER_TEST_WITH_SIGINT_IGNORED";
    if std::env::var_os(INSIDE).is_some() {
        // The precondition: a child started without the harness inherits the ignored SIGINT.
        let plain = std::process::Command::new("sh").args(["-c", "kill -INT $$; echo survived"]).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&plain.stdout), "survived\n", "SIGINT is not ignored here");
        let obs = ChildSpec::new("sleep")
            .arg("20")
            .timeout(Duration::from_secs(5))
            .signal_when(exit_harness::spec::When::After(Duration::from_millis(50)), 2)
            .run(&[])
            .unwrap();
        assert_eq!(obs.outcome, ExitOutcome::Signal(2), "the child ignored the SIGINT it was sent");
        assert!(!obs.timed_out);
        return;
    }
    let name = "a_child_ends_on_sigint_even_when_the_harness_process_ignores_sigint";
    let inner = std::process::Command::new("sh")
        .args(["-c", "trap '' INT; exec \"$0\" --exact \"$1\" --nocapture --test-threads 1"])
        .arg(std::env::current_exe().unwrap())
        .arg(name)
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&inner.stdout).into_owned() + &String::from_utf8_lossy(&inner.stderr);
    assert!(inner.status.success() && output.contains("1 passed"), "the run with SIGINT ignored:\n{output}");
}

#[test]
fn cargo_bin_finds_a_binary_of_the_package_and_names_what_it_looked_for() {
    let spec = ChildSpec::cargo_bin("exit-harness-test-child").expect("the test child is built with the tests");
    assert_eq!(spec.program(), std::path::Path::new(common::CHILD));
    let obs = spec.arg("marker:x").run(&[]).unwrap();
    assert!(obs.journal.has_marker("x"));
    let error = ChildSpec::cargo_bin("no-such-binary").unwrap_err().to_string();
    assert!(error.contains("no Cargo binary named \"no-such-binary\"") && error.contains("target"), "{error}");
}
