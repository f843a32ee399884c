//! Every oracle fails on a bad child and passes on a good one.

mod common;

use common::{CHILD, cache, child, observe};
use exit_harness::ChildSpec;
use exit_harness::oracle::{
    ExitStatus, FileIntact, NoLeakedProcesses, NoLostEntries, QuietStderr, RegistryBound, SaveCount,
};

#[test]
fn save_count_passes_one_save_and_fails_two() {
    let once = observe(child(["save:{scratch}/cache"]));
    once.assert().oracle(SaveCount::exactly(1));
    once.assert().oracle(SaveCount::at_most(1).of("cache"));
    once.assert().fails(SaveCount::none(), &["expected exactly 0", "journal: 1 save(s), black box: 1"]);

    let twice = observe(child(["save:{scratch}/cache", "save:{scratch}/cache"]));
    twice.assert().fails(SaveCount::exactly(1), &["expected exactly 1", "journal: 2 save(s)", "2 rename(s)"]);
    twice.assert().oracle(SaveCount::exactly(2));

    let never = observe(child(["marker:done"]));
    never.assert().oracle(SaveCount::none());
    never.assert().fails(SaveCount::exactly(1), &["journal: 0 save(s), black box: 0"]);
}

#[test]
fn save_count_catches_a_journal_that_disagrees_with_the_black_box() {
    let hidden = observe(child(["save-unjournaled:{scratch}/cache"]));
    hidden.assert().fails(SaveCount::none(), &["journal and black box disagree", "journal: 0", "black box: 1"]);
    hidden.assert().fails(SaveCount::at_most(1), &["disagree"]);

    let invented = observe(child(["journal-save:{scratch}/cache"]));
    invented.assert().fails(SaveCount::exactly(1), &["disagree", "journal: 1", "black box: 0", "\"kind\":\"save\""]);

    let in_place = observe(child(["write-in-place:{scratch}/cache"]));
    in_place.assert().oracle(SaveCount::exactly(1));
}

#[test]
fn save_count_per_process_and_unknown_file() {
    let two = observe(
        ChildSpec::new("sh")
            .arg("-c")
            .arg(format!("{CHILD} merge-save:{{scratch}}/cache && {CHILD} merge-save:{{scratch}}/cache")),
    );
    two.assert().oracle(SaveCount::exactly(1).per_process());
    two.assert().fails(SaveCount::exactly(1), &["journal: 2 save(s)"]);
    two.assert().fails(SaveCount::exactly(1).of("nope"), &["no file under test is named \"nope\""]);
}

#[test]
fn torn_commit_is_tolerated_only_when_asked_and_killed() {
    let obs = observe(child(["save-unjournaled:{scratch}/cache", "torn"]));
    obs.assert().fails(SaveCount::at_most(1), &["disagree"]);
    obs.assert().oracle(SaveCount::at_most(1).allow_torn_commit());
    let exited = observe(child(["save-unjournaled:{scratch}/cache"]));
    exited.assert().fails(SaveCount::at_most(1).allow_torn_commit(), &["disagree"]);
}

#[test]
fn quiet_stderr() {
    let noisy = observe(child(["stderr:Exception ignored in drop"]));
    noisy.assert().fails(QuietStderr::empty(), &["1 unexpected stderr line", "Exception ignored in drop"]);
    noisy.assert().oracle(QuietStderr::empty().allow_substring("Exception ignored"));

    let quiet = observe(child(["save:{scratch}/cache"]));
    quiet.assert().oracle(QuietStderr::empty());

    let panicked = observe(child(["panic:boom at exit", "stderr:never"]));
    panicked.assert().oracle(QuietStderr::empty().allow_panic("boom at exit"));
    panicked.assert().fails(QuietStderr::empty(), &["boom at exit"]);
    let panic_and_noise = observe(child(["stderr:stray", "panic:boom"]));
    panic_and_noise.assert().fails(QuietStderr::empty().allow_panic("boom"), &["stray"]);
}

#[test]
fn registry_bound() {
    let over = observe(child(["registry:1:1", "registry:3:2"]));
    over.assert().fails(RegistryBound::new(), &["1 of 2 sample(s)", "\"len\":3"]);

    let bounded = observe(child(["registry:1:1", "registry:2:2", "registry:0:0"]));
    bounded.assert().oracle(RegistryBound::new().max_growth(0));

    let growing = observe(child(["registry:1:1", "registry:5:5"]));
    growing.assert().oracle(RegistryBound::new());
    growing.assert().fails(RegistryBound::new().max_growth(2), &["grew by 4 (bound 2)"]);

    let silent = observe(child(["marker:x"]));
    silent.assert().fails(RegistryBound::new(), &["no `registry` samples"]);
}

#[test]
fn no_lost_entries() {
    // Two processes that each write only their own key: last writer wins, one key is lost.
    let script = format!("{CHILD} save:{{scratch}}/cache && {CHILD} save:{{scratch}}/cache");
    let lossy = observe(ChildSpec::new("sh").arg("-c").arg(script));
    lossy.assert().fails(NoLostEntries::new(), &["1 of 2 committed key(s) missing", "2 process(es)"]);

    let script = format!("{CHILD} merge-save:{{scratch}}/cache && {CHILD} merge-save:{{scratch}}/cache");
    let merged = observe(ChildSpec::new("sh").arg("-c").arg(script));
    merged.assert().oracle(NoLostEntries::new().of("cache"));

    let nothing = observe(child(["marker:x"]));
    nothing.assert().fails(NoLostEntries::new(), &["no `committed` events"]);
}

#[test]
fn file_intact() {
    let old = cache().seeded("valid\nold-key\n");
    let torn = child(["garbage:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    torn.assert().fails(FileIntact::new(), &["torn or invalid", "INVALID: bad header"]);

    let merged = child(["merge-save:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    merged.assert().oracle(FileIntact::new());
    merged.assert().fails(FileIntact::unchanged(), &["changed"]);

    let clobbered = child(["save:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    clobbered.assert().fails(FileIntact::new(), &["lost 1 old key", "old-key"]);

    let killed = child(["torn"]).run(&[old]).unwrap();
    killed.assert().oracle(FileIntact::unchanged());
}

#[test]
fn exit_status() {
    let three = observe(child(["exit:3"]));
    three.assert().oracle(ExitStatus::code(3));
    three.assert().fails(ExitStatus::success(), &["expected exit code 0, got exit code 3"]);

    let killed = observe(child(["torn"]));
    killed.assert().oracle(ExitStatus::signal(9));
    killed.assert().fails(ExitStatus::code(0), &["signal 9 (SIGKILL)"]);

    let hung = child(["hang"]).timeout(std::time::Duration::from_millis(200)).run(&[cache()]).unwrap();
    hung.assert().fails(ExitStatus::signal(15), &["only because the harness's timeout ended the run"]);
    hung.assert().fails(ExitStatus::success(), &["after the harness's timeout"]);
}

#[test]
fn no_leaked_processes() {
    let leaky = observe(child(["leak"]));
    leaky.assert().fails(NoLeakedProcesses, &["1 descendant(s)", "sleep 30"]);
    let tidy = observe(child(["save:{scratch}/cache"]));
    tidy.assert().oracle(NoLeakedProcesses);
}
