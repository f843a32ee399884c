//! Reports and the command-line library, over a small catalog of test children.

mod common;

use std::process::ExitCode;

use common::{cache, child};
use exit_harness::cli::{main_with_args, run_cells};
use exit_harness::oracle::{ExitStatus, QuietStderr, SaveCount};
use exit_harness::report::{RunEvent, human, json, junit, table};
use exit_harness::{Catalog, Cell};

struct TestCatalog;

impl Catalog for TestCatalog {
    fn cells(&self) -> Vec<Cell> {
        let judged = |name: &str, actions: &[&str]| {
            Cell::new(name, "test", child([]).args(actions.iter().copied()))
                .file(cache())
                .oracle(SaveCount::exactly(1))
                .oracle(QuietStderr::empty())
                .oracle(ExitStatus::success())
        };
        vec![
            judged("good/saves-once", &["save:{scratch}/cache"]),
            judged("bad/saves-twice", &["save:{scratch}/cache", "save:{scratch}/cache"]),
            judged("bad/noisy", &["save:{scratch}/cache", "save:{scratch}/cache", "stderr:Exception ignored"]),
        ]
    }
}

#[test]
fn human_json_and_junit_show_pass_and_fail_with_every_failing_oracle() {
    let results = run_cells(&TestCatalog.cells(), 2, &mut |_: &RunEvent<'_>| {});
    let names: Vec<&str> = results.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["good/saves-once", "bad/saves-twice", "bad/noisy"]);

    let rerun = |r: &exit_harness::CellResult| format!("my-catalog check --filter '{}'", r.name);
    let text = human::render(&results, &rerun);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("  PASS [") && lines[0].ends_with("test  good/saves-once"), "{text}");
    assert!(lines[1].starts_with("  FAIL [") && lines[1].ends_with("bad/saves-twice"), "{text}");
    assert!(text.lines().all(|l| l.chars().count() <= human::WIDTH || l.starts_with(' ')), "{text}");
    assert!(text.contains("--- FAIL bad/saves-twice (test)\n  save_count: cache: expected exactly 1"), "{text}");
    // Every failing oracle of a cell, not only the first: the noisy cell fails two.
    let noisy = text.split("--- FAIL bad/noisy").nth(1).expect("a block for bad/noisy");
    assert!(noisy.contains("quiet_stderr: 1 unexpected stderr line") && noisy.contains("save_count: cache"), "{text}");
    assert!(noisy.contains("command: ") && noisy.contains("stderr: quoted above"), "{text}");
    let twice = text.split("--- FAIL bad/saves-twice").nth(1).unwrap();
    assert!(twice.contains("stderr: (empty)"), "{text}");
    assert!(noisy.contains("rerun: my-catalog check --filter 'bad/noisy'"), "{text}");
    assert!(text.ends_with("\n1 passed, 2 failed\n"), "{text}");

    let matrix = table::render(&results);
    assert!(matrix.starts_with("test") && matrix.contains("save_count") && !matrix.contains("saves j/bb"), "{matrix}");

    let report: serde_json::Value = serde_json::from_str(&json::render(&results)).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["summary"]["failed"], 2);
    assert_eq!(report["cells"][0]["passed"], true);
    assert_eq!(report["cells"][0]["outcome"]["code"], 0);
    assert_eq!(report["cells"][1]["saves"]["black_box"], 2);
    assert_eq!(report["cells"][1]["verdicts"][0]["passed"], false);
    assert_eq!(report["cells"][1]["verdicts"][0]["id"], "save_count");

    let xml = junit::render(&results);
    assert!(xml.contains(r#"tests="3""#) && xml.contains(r#"failures="2""#), "{xml}");
    assert!(xml.contains(r#"<failure message="failed: save_count, quiet_stderr""#), "{xml}");
    assert!(xml.contains(r#"name="good/saves-once""#), "{xml}");
}

#[test]
fn check_exit_code_follows_the_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let junit_path = dir.path().join("junit.xml");
    let args = ["h", "check", "--filter", "good", "--jobs", "1", "--junit"];
    let code =
        main_with_args(&TestCatalog, args.iter().map(|a| a.to_string()).chain([junit_path.display().to_string()]));
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(std::fs::read_to_string(&junit_path).unwrap().contains("good/saves-once"));

    assert_eq!(main_with_args(&TestCatalog, ["h", "check", "--json", "--filter", "bad"]), ExitCode::FAILURE);
    assert_eq!(main_with_args(&TestCatalog, ["h", "check", "--filter", "nothing"]), ExitCode::from(2));
    assert_eq!(main_with_args(&TestCatalog, ["h", "list"]), ExitCode::SUCCESS);
    assert_eq!(main_with_args(&TestCatalog, ["h", "frobnicate"]), ExitCode::from(2));
}
