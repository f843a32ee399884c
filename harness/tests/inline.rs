//! The inline runner: closures in `#[test]`s, run in a child through rusty-fork.

mod common;

use common::cache;
use exit_harness::inline::Inline;
use exit_harness::journal::{self, Event};
use exit_harness::oracle::{ExitStatus, QuietStderr, SaveCount};
use exit_harness::{ExitOutcome, fork_id, test_path};

fn save(path: &std::path::Path) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, "valid\nk\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
    let _ = journal::record(&Event::save(path));
}

#[test]
fn an_inline_child_that_saves_once_passes() {
    let obs = Inline::new(test_path!(an_inline_child_that_saves_once_passes))
        .file(cache())
        .run(fork_id!(), |ctx| save(&ctx.scratch.join("cache")))
        .unwrap();
    obs.assert().oracle(SaveCount::exactly(1));
    obs.assert().oracle(QuietStderr::empty());
    obs.assert().oracle(ExitStatus::success());
}

#[test]
fn an_inline_child_that_saves_twice_and_talks_fails_with_separate_streams() {
    let obs = Inline::new(test_path!(an_inline_child_that_saves_twice_and_talks_fails_with_separate_streams))
        .file(cache())
        .run(fork_id!(), |ctx| {
            save(&ctx.scratch.join("cache"));
            save(&ctx.scratch.join("cache"));
            println!("to stdout");
            eprintln!("to stderr");
        })
        .unwrap();
    obs.assert().fails(SaveCount::exactly(1), &["journal: 2 save(s), black box: 2"]);
    obs.assert().fails(QuietStderr::empty(), &["to stderr"]);
    assert!(obs.stdout.contains("to stdout") && !obs.stdout.contains("to stderr"), "{}", obs.stdout);
}

#[test]
fn an_inline_child_killed_at_a_marker() {
    let obs = Inline::new(test_path!(an_inline_child_killed_at_a_marker))
        .file(cache())
        .signal_on_marker("ready", 9)
        .run(fork_id!(), |_| {
            let _ = journal::record(&Event::marker("ready"));
            std::thread::sleep(std::time::Duration::from_secs(20));
        })
        .unwrap();
    assert_eq!(obs.outcome, ExitOutcome::Signal(9));
    obs.assert().oracle(SaveCount::none());
}

#[test]
fn a_body_that_never_ran_is_an_error_not_a_quiet_pass() {
    // A copy-paste slip: the path names a test that does not exist, so the child runs 0 tests.
    let error = Inline::new(test_path!(a_test_that_does_not_exist))
        .file(cache())
        .run(fork_id!(), |_| unreachable!("the child never gets here"))
        .unwrap_err();
    assert!(matches!(error, exit_harness::inline::InlineError::BodyNeverRan { .. }), "{error}");
    assert!(error.to_string().contains("a_test_that_does_not_exist"), "{error}");
}
