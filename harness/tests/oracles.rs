//! Every oracle fails on a bad child and passes on a good one.

mod common;

use common::{CHILD, cache, child, fails, observe, passes};
use exit_harness::ChildSpec;
use exit_harness::oracle::{
    ExitStatus, FileIntact, NoLeakedProcesses, NoLostEntries, QuietStderr, RegistryBound, SaveCount,
};

#[test]
fn save_count_passes_one_save_and_fails_two() {
    let once = observe(child(["save:{scratch}/cache"]));
    passes(&SaveCount::exactly(1), &once);
    passes(&SaveCount::at_most(1).of("cache"), &once);
    fails(&SaveCount::none(), &once, &["expected exactly 0", "journal: 1 save(s), black box: 1"]);

    let twice = observe(child(["save:{scratch}/cache", "save:{scratch}/cache"]));
    fails(&SaveCount::exactly(1), &twice, &["expected exactly 1", "journal: 2 save(s)", "2 rename(s)"]);
    passes(&SaveCount::exactly(2), &twice);

    let never = observe(child(["marker:done"]));
    passes(&SaveCount::none(), &never);
    fails(&SaveCount::exactly(1), &never, &["journal: 0 save(s), black box: 0"]);
}

#[test]
fn save_count_catches_a_journal_that_disagrees_with_the_black_box() {
    let hidden = observe(child(["save-unjournaled:{scratch}/cache"]));
    fails(&SaveCount::none(), &hidden, &["journal and black box disagree", "journal: 0", "black box: 1"]);
    fails(&SaveCount::at_most(1), &hidden, &["disagree"]);

    let invented = observe(child(["journal-save:{scratch}/cache"]));
    fails(&SaveCount::exactly(1), &invented, &["disagree", "journal: 1", "black box: 0", "\"kind\":\"save\""]);

    let in_place = observe(child(["write-in-place:{scratch}/cache"]));
    passes(&SaveCount::exactly(1), &in_place);
}

#[test]
fn save_count_per_process_and_unknown_file() {
    let two = observe(
        ChildSpec::new("sh")
            .arg("-c")
            .arg(format!("{CHILD} merge-save:{{scratch}}/cache && {CHILD} merge-save:{{scratch}}/cache")),
    );
    passes(&SaveCount::exactly(1).per_process(), &two);
    fails(&SaveCount::exactly(1), &two, &["journal: 2 save(s)"]);
    fails(&SaveCount::exactly(1).of("nope"), &two, &["no file under test is named \"nope\""]);
}

#[test]
fn torn_commit_is_tolerated_only_when_asked_and_killed() {
    let obs = observe(child(["save-unjournaled:{scratch}/cache", "torn"]));
    fails(&SaveCount::at_most(1), &obs, &["disagree"]);
    passes(&SaveCount::at_most(1).allow_torn_commit(), &obs);
    let exited = observe(child(["save-unjournaled:{scratch}/cache"]));
    fails(&SaveCount::at_most(1).allow_torn_commit(), &exited, &["disagree"]);
}

#[test]
fn quiet_stderr() {
    let noisy = observe(child(["stderr:Exception ignored in drop"]));
    fails(&QuietStderr::empty(), &noisy, &["1 unexpected stderr line", "Exception ignored in drop"]);
    passes(&QuietStderr::empty().allow_substring("Exception ignored"), &noisy);

    let quiet = observe(child(["save:{scratch}/cache"]));
    passes(&QuietStderr::empty(), &quiet);

    let panicked = observe(child(["panic:boom at exit", "stderr:never"]));
    passes(&QuietStderr::empty().allow_panic("boom at exit"), &panicked);
    fails(&QuietStderr::empty(), &panicked, &["boom at exit"]);
    let panic_and_noise = observe(child(["stderr:stray", "panic:boom"]));
    fails(&QuietStderr::empty().allow_panic("boom"), &panic_and_noise, &["stray"]);
}

#[test]
fn registry_bound() {
    let over = observe(child(["registry:1:1", "registry:3:2"]));
    fails(&RegistryBound::new(), &over, &["1 of 2 sample(s)", "\"len\":3"]);

    let bounded = observe(child(["registry:1:1", "registry:2:2", "registry:0:0"]));
    passes(&RegistryBound::new().max_growth(0), &bounded);

    let growing = observe(child(["registry:1:1", "registry:5:5"]));
    passes(&RegistryBound::new(), &growing);
    fails(&RegistryBound::new().max_growth(2), &growing, &["grew by 4 (bound 2)"]);

    let silent = observe(child(["marker:x"]));
    fails(&RegistryBound::new(), &silent, &["no `registry` samples"]);
}

#[test]
fn no_lost_entries() {
    // Two processes that each write only their own key: last writer wins, one key is lost.
    let script = format!("{CHILD} save:{{scratch}}/cache && {CHILD} save:{{scratch}}/cache");
    let lossy = observe(ChildSpec::new("sh").arg("-c").arg(script));
    fails(&NoLostEntries::new(), &lossy, &["1 of 2 committed key(s) missing", "2 process(es)"]);

    let script = format!("{CHILD} merge-save:{{scratch}}/cache && {CHILD} merge-save:{{scratch}}/cache");
    let merged = observe(ChildSpec::new("sh").arg("-c").arg(script));
    passes(&NoLostEntries::new().of("cache"), &merged);

    let nothing = observe(child(["marker:x"]));
    fails(&NoLostEntries::new(), &nothing, &["no `committed` events"]);
}

#[test]
fn file_intact() {
    let old = cache().seeded("valid\nold-key\n");
    let torn = child(["garbage:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    fails(&FileIntact::new(), &torn, &["torn or invalid", "INVALID: bad header"]);

    let merged = child(["merge-save:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    passes(&FileIntact::new(), &merged);
    fails(&FileIntact::unchanged(), &merged, &["changed"]);

    let clobbered = child(["save:{scratch}/cache"]).run(std::slice::from_ref(&old)).unwrap();
    fails(&FileIntact::new(), &clobbered, &["lost 1 old key", "old-key"]);

    let killed = child(["torn"]).run(&[old]).unwrap();
    passes(&FileIntact::unchanged(), &killed);
}

#[test]
fn exit_status() {
    let three = observe(child(["exit:3"]));
    passes(&ExitStatus::code(3), &three);
    fails(&ExitStatus::success(), &three, &["expected exit code 0, got exit code 3"]);

    let killed = observe(child(["torn"]));
    passes(&ExitStatus::signal(9), &killed);
    fails(&ExitStatus::code(0), &killed, &["signal 9 (SIGKILL)"]);

    let hung = child(["hang"]).timeout(std::time::Duration::from_millis(200)).run(&[cache()]).unwrap();
    fails(&ExitStatus::signal(15), &hung, &["after the harness's timeout"]);
}

#[test]
fn no_leaked_processes() {
    let leaky = observe(child(["leak"]));
    fails(&NoLeakedProcesses, &leaky, &["1 descendant(s)", "sleep 30"]);
    let tidy = observe(child(["save:{scratch}/cache"]));
    passes(&NoLeakedProcesses, &tidy);
}
