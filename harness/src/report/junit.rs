//! JUnit XML: one `<testcase>` per cell (class name = family), failing with every failed
//! oracle's evidence; a cell without an observation is an `<error>`.

use std::fmt::Write as _;

use super::Summary;
use crate::cell::CellResult;

/// Renders `results` as a JUnit XML document.
pub fn render(results: &[CellResult]) -> String {
    let s = Summary::of(results);
    let errors = results.iter().filter(|r| r.observation.is_err()).count();
    let total: f64 = results.iter().map(|r| r.wall.as_secs_f64()).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"exit-harness\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" time=\"{total:.3}\">",
        s.cells,
        s.failed - errors
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"exit-harness\" tests=\"{}\" failures=\"{}\" errors=\"{errors}\" time=\"{total:.3}\">",
        s.cells,
        s.failed - errors
    );
    for r in results {
        let _ = write!(
            out,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
            escape(&r.family),
            escape(&r.name),
            r.wall.as_secs_f64()
        );
        match &r.observation {
            Err(error) => {
                let _ = writeln!(out, ">\n      <error message=\"{}\"/>\n    </testcase>", escape(error));
            }
            Ok(_) if r.passed() => out.push_str("/>\n"),
            Ok(obs) => {
                let failed: Vec<_> = r.verdicts.iter().filter(|v| !v.verdict.passed()).collect();
                let names: Vec<&str> = failed.iter().map(|v| v.id.as_str()).collect();
                let body: Vec<String> = r.failures();
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"failed: {}\">{}</failure>\n      <system-err>{}</system-err>\n    </testcase>",
                    escape(&names.join(", ")),
                    escape(&body.join("\n")),
                    escape(&obs.stderr)
                );
            }
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Escapes text for XML attributes and content, dropping characters XML 1.0 forbids.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\r' | '\t' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}
