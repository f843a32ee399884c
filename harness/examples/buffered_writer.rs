//! Testing a resource that is not a cache: a buffered writer that must flush exactly once, when
//! it is dropped, and leave a whole file behind.
//!
//! `cargo run -p exit-harness --example buffered_writer` runs it as a spawned program (this same
//! executable, with the output path as argument); `cargo test -p exit-harness --example
//! buffered_writer` runs it inline, inside a `#[test]`, through rusty-fork.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use exit_harness::oracle::{ExitStatus, FileIntact, QuietStderr, SaveCount};
use exit_harness::{Cell, ChildSpec, Event, FileUnderTest, Scenario, ValidContent, journal};

/// The resource under test: buffers lines, writes them to `path` once, on drop.
struct BufferedWriter {
    path: PathBuf,
    buffer: String,
}

impl BufferedWriter {
    fn line(&mut self, text: &str) {
        self.buffer.push_str(text);
        self.buffer.push('\n');
    }
}

impl Drop for BufferedWriter {
    fn drop(&mut self) {
        let tmp = self.path.with_extension("tmp");
        let flushed = std::fs::write(&tmp, &self.buffer).and_then(|()| std::fs::rename(&tmp, &self.path));
        let _ = journal::record(&match flushed {
            Ok(()) => Event::save(&self.path).with("bytes", self.buffer.len()),
            Err(e) => Event::save_failed(&self.path, e),
        });
    }
}

/// The program under test: three lines, then return from `main`.
fn write_three_lines(path: &Path) {
    let mut writer = BufferedWriter { path: path.to_owned(), buffer: String::new() };
    for i in 0..3 {
        writer.line(&format!("line {i}"));
    }
}

/// A valid file is whole lines; its keys are the lines.
fn whole_lines(bytes: &[u8]) -> Result<ValidContent, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    if !text.ends_with('\n') {
        return Err(format!("torn: {text:?} does not end with a newline"));
    }
    Ok(ValidContent::with_keys(text.lines()))
}

/// The scenario: the file, and what must hold when the program has ended, however it is run.
fn scenario() -> Scenario {
    Scenario::new("buffered-writer/return-from-main")
        .family("buffered-writer")
        .file(FileUnderTest::new("out.log").validated_by(whole_lines))
        .oracle(SaveCount::exactly(1))
        .oracle(QuietStderr::empty())
        .oracle(ExitStatus::success())
        .oracle(FileIntact::new())
}

fn main() -> ExitCode {
    if let Some(path) = std::env::args_os().nth(1) {
        write_three_lines(Path::new(&path)); // the child
        return ExitCode::SUCCESS;
    }
    let Ok(me) = std::env::current_exe() else { return ExitCode::FAILURE };
    // As a spawned program that owns its `main`:
    let result = Cell { scenario: scenario(), spec: ChildSpec::new(me).arg("{scratch}/out.log") }.run();
    let rerun = |_: &exit_harness::CellResult| "cargo run -p exit-harness --example buffered_writer".to_owned();
    print!("{}", exit_harness::report::human::render(std::slice::from_ref(&result), &rerun));
    if result.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

#[cfg(test)]
mod tests {
    // Or inline, inside a #[test], through rusty-fork: the body runs in a child that really exits.
    exit_harness::exit_test! {
        #[test]
        fn flushes_exactly_once_inline(scenario = super::scenario(), ctx) {
            super::write_three_lines(&ctx.scratch.join("out.log"));
        }
    }
}
