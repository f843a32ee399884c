//! JUnit XML through `quick-junit` (nextest's writer): one `<testcase>` per cell (class name =
//! family), failing with every failed oracle instance's evidence; a cell without an
//! observation is an `<error>`.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::cell::CellResult;

/// Renders `results` as a JUnit XML document.
pub fn render(results: &[CellResult]) -> String {
    let mut suite = TestSuite::new("exit-harness");
    for r in results {
        let status = if r.passed() {
            TestCaseStatus::success()
        } else {
            let kind = if r.observation.is_err() { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut status = TestCaseStatus::non_success(kind);
            let failed: Vec<&str> = r.verdicts.iter().filter(|v| !v.verdict.passed()).map(|v| v.id.as_str()).collect();
            match &r.observation {
                Err(error) => status.set_message(error.as_str()),
                Ok(_) => status.set_message(format!("failed: {}", failed.join(", "))),
            };
            status.set_description(r.failures().join("\n"));
            status
        };
        let mut case = TestCase::new(r.name.as_str(), status);
        case.set_classname(r.family.as_str()).set_time(r.wall);
        if let Ok(obs) = &r.observation
            && !r.passed()
        {
            case.set_system_err_lossy(obs.stderr.as_bytes());
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("exit-harness");
    report.add_test_suite(suite);
    report.to_string().unwrap_or_else(|e| format!("<!-- could not write the JUnit report: {e} -->\n"))
}
