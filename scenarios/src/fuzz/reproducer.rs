//! Reproducers: small, human-readable TOML files an issue report can carry. They hold the
//! explicit operation list and the expectations, not a proptest seed (which breaks the day the
//! strategy changes).
//!
//! ```toml
//! title = "A forked child must not save its parent's cache"
//! issue = "https://github.com/pytorch/TensorRT/pull/4362"   # optional
//! defect = "fork-unaware"                                  # optional: the defect-zoo bug it catches
//! ops = [
//!   "create e0 a.rtc",
//!   "compile e0 k1",
//!   "fork exit(0)",
//! ]
//! ending = "return"
//!
//! [expect]
//! exit = "code 0"          # or "signal SIGTERM"
//! stderr = "empty"         # or "panic message only"
//! registry = 1             # live autosave handles when the ending begins
//! saves = { main = { "a.rtc" = 1 }, fork-3 = { "a.rtc" = 0 } }
//! entries = { "a.rtc" = ["k1"] }
//! children = { fork-3 = "code 0" }
//! failed_saves = 1         # optional, default 0: saves made to fail by `fail-save`
//! ```
//!
//! `[expect]` may be left out (the model's predictions are then used); when present it must agree
//! with the model (for a racy case, with one of its legal outcomes, and a run is then held to
//! that one), and a run is judged against it. The operations' syntax is in
//! [`super::ops`]. Every error names the file and the line.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use exit_harness::ExitOutcome;
use exit_harness::observation::signal_name;
use serde::Deserialize;
use toml::Spanned;

use super::model::{self, Expectations, Prediction};
use super::ops::{Case, Op};
use crate::contract::Ending;
use crate::defects::Defect;

/// A parsed reproducer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reproducer {
    /// The file it came from (empty for one built in memory).
    pub path: PathBuf,
    /// One line saying what goes wrong.
    pub title: String,
    /// An issue or pull request link.
    pub issue: Option<String>,
    /// The defect-zoo variant this reproducer catches, if it maps to one.
    pub defect: Option<Defect>,
    /// The operations and the ending.
    pub case: Case,
    /// What must hold at the end (the file's `[expect]`, else the model's first outcome).
    pub expect: Expectations,
    /// The model's predictions, one per legal outcome (per-op checks come from them); only
    /// the one `[expect]` agrees with when the file has one.
    pub predictions: Vec<Prediction>,
    /// Whether `expect` is the file's own (else every prediction's expectations hold).
    pub expect_from_file: bool,
}

/// Why a reproducer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReproducerError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is malformed.
    #[error("{path}:{line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    title: String,
    issue: Option<String>,
    defect: Option<Spanned<String>>,
    ops: Vec<Spanned<String>>,
    ending: Spanned<String>,
    expect: Option<Spanned<ExpectFile>>,
}

#[derive(Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct ExpectFile {
    exit: Spanned<String>,
    stderr: Spanned<String>,
    registry: u64,
    #[serde(default)]
    saves: BTreeMap<String, BTreeMap<String, u64>>,
    #[serde(default)]
    entries: BTreeMap<String, BTreeSet<String>>,
    #[serde(default)]
    children: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    failed_saves: u64,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Reproducer {
    /// Reads and checks the reproducer at `path`.
    pub fn load(path: &Path) -> Result<Self, ReproducerError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ReproducerError::Io { path: path.to_owned(), source })?;
        Self::parse(path, &text)
    }

    /// Parses reproducer `text`; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ReproducerError> {
        let malformed = |offset: usize, message: String| ReproducerError::Malformed {
            path: path.to_owned(),
            line: line_of(text, offset),
            message,
        };
        let file: File = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            malformed(offset, error.message().trim().to_owned())
        })?;
        let defect = match &file.defect {
            None => None,
            Some(name) => Some(Defect::from_name(name.get_ref()).ok_or_else(|| {
                let known: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
                malformed(
                    name.span().start,
                    format!("unknown defect `{}` (one of {})", name.get_ref(), known.join(", ")),
                )
            })?),
        };
        let mut ops = Vec::with_capacity(file.ops.len());
        for op in &file.ops {
            ops.push(op.get_ref().parse::<Op>().map_err(|message| malformed(op.span().start, message))?);
        }
        let ending =
            file.ending.get_ref().parse::<Ending>().map_err(|message| malformed(file.ending.span().start, message))?;
        let case = Case { ops, ending };
        let mut predictions = model::predict_all(&case).map_err(|error| {
            let offset = file.ops.get(error.op - 1).map_or(0, |op| op.span().start);
            malformed(offset, format!("op {}: {}", error.op, error.message))
        })?;
        let expect = match &file.expect {
            None => predictions[0].expect.clone(),
            Some(spanned) => {
                let raw = spanned.get_ref();
                let expect = Expectations {
                    exit: parse_outcome(raw.exit.get_ref()).map_err(|m| malformed(raw.exit.span().start, m))?,
                    panic_message: match raw.stderr.get_ref().as_str() {
                        "empty" => false,
                        "panic message only" => true,
                        other => {
                            return Err(malformed(
                                raw.stderr.span().start,
                                format!("stderr is \"empty\" or \"panic message only\", not {other:?}"),
                            ));
                        }
                    },
                    registry: raw.registry,
                    saves: raw.saves.clone(),
                    entries: raw.entries.clone(),
                    children: raw
                        .children
                        .iter()
                        .map(|(name, outcome)| {
                            parse_outcome(outcome.get_ref())
                                .map(|o| (name.clone(), o))
                                .map_err(|m| malformed(outcome.span().start, m))
                        })
                        .collect::<Result<_, _>>()?,
                    failed_saves: raw.failed_saves,
                };
                let agrees = predictions.iter().position(|p| differences(&expect, &p.expect).is_empty());
                let Some(agrees) = agrees else {
                    return Err(malformed(
                        spanned.span().start,
                        format!(
                            "[expect] disagrees with the model: {}",
                            differences(&expect, &predictions[0].expect).join("; ")
                        ),
                    ));
                };
                predictions = vec![predictions.swap_remove(agrees)];
                expect
            }
        };
        let expect_from_file = file.expect.is_some();
        Ok(Self {
            path: path.to_owned(),
            title: file.title,
            issue: file.issue,
            defect,
            case,
            expect,
            predictions,
            expect_from_file,
        })
    }

    /// The outcomes a run of this reproducer may match: each prediction with the expectations
    /// to hold it to (the file's own `[expect]`, else the prediction's).
    pub fn outcomes(&self) -> Vec<(&Prediction, &Expectations)> {
        self.predictions
            .iter()
            .map(|prediction| (prediction, if self.expect_from_file { &self.expect } else { &prediction.expect }))
            .collect()
    }

    /// A reproducer for `case`, with the model's expectations.
    pub fn from_case(title: impl Into<String>, case: Case, defect: Option<Defect>) -> Result<Self, model::CaseError> {
        let predictions = model::predict_all(&case)?;
        Ok(Self {
            path: PathBuf::new(),
            title: title.into(),
            issue: None,
            defect,
            expect: predictions[0].expect.clone(),
            case,
            predictions,
            expect_from_file: false,
        })
    }

    /// Whether the case is racy (more than one legal outcome): its written form then leaves
    /// `[expect]` out, so that a replay accepts every legal outcome.
    pub fn is_racy(&self) -> bool {
        self.predictions.len() > 1
    }

    /// The reproducer as TOML text (what [`parse`](Self::parse) reads back).
    pub fn to_toml(&self) -> String {
        let quote = |text: &str| toml::Value::String(text.to_owned()).to_string();
        let mut out = String::new();
        let _ = writeln!(out, "title = {}", quote(&self.title));
        if let Some(issue) = &self.issue {
            let _ = writeln!(out, "issue = {}", quote(issue));
        }
        if let Some(defect) = self.defect {
            let _ = writeln!(out, "defect = {}", quote(defect.name()));
        }
        out.push_str("ops = [\n");
        for op in &self.case.ops {
            let _ = writeln!(out, "  {},", quote(&op.to_string()));
        }
        out.push_str("]\n");
        let _ = writeln!(out, "ending = {}", quote(&self.case.ending.to_string()));
        if self.is_racy() && !self.expect_from_file {
            let _ = writeln!(
                out,
                "# racy: {} legal outcomes, each predicted by the model (no [expect]: a replay accepts any of them)",
                self.predictions.len()
            );
            return out;
        }
        let expect = &self.expect;
        out.push_str("\n[expect]\n");
        let _ = writeln!(out, "exit = {}", quote(&outcome_text(expect.exit)));
        let stderr = if expect.panic_message { "panic message only" } else { "empty" };
        let _ = writeln!(out, "stderr = {}", quote(stderr));
        let _ = writeln!(out, "registry = {}", expect.registry);
        out.push_str("\n[expect.saves]\n");
        for (process, files) in &expect.saves {
            let files: Vec<String> = files.iter().map(|(file, n)| format!("{} = {n}", quote(file))).collect();
            let _ = if files.is_empty() {
                writeln!(out, "{process} = {{}}")
            } else {
                writeln!(out, "{process} = {{ {} }}", files.join(", "))
            };
        }
        out.push_str("\n[expect.entries]\n");
        for (file, kernels) in &expect.entries {
            let kernels: Vec<String> = kernels.iter().map(|kernel| quote(kernel)).collect();
            let _ = writeln!(out, "{} = [{}]", quote(file), kernels.join(", "));
        }
        if expect.failed_saves > 0 {
            // A key of [expect], written before its sub-tables (TOML puts later keys in them).
            let at = out.find("\n[expect.saves]").unwrap_or(out.len());
            out.insert_str(at, &format!("failed_saves = {}\n", expect.failed_saves));
        }
        if !expect.children.is_empty() {
            out.push_str("\n[expect.children]\n");
            for (name, outcome) in &expect.children {
                let _ = writeln!(out, "{name} = {}", quote(&outcome_text(*outcome)));
            }
        }
        out
    }
}

/// `code 0` or `signal SIGTERM`.
pub fn outcome_text(outcome: ExitOutcome) -> String {
    match outcome {
        ExitOutcome::Code(code) => format!("code {code}"),
        ExitOutcome::Signal(signal) => format!("signal {}", signal_name(signal)),
    }
}

fn parse_outcome(text: &str) -> Result<ExitOutcome, String> {
    let bad = || format!("an exit is \"code N\" or \"signal SIGNAME\", not {text:?}");
    match text.split_once(' ') {
        Some(("code", code)) => code.parse().map(ExitOutcome::Code).map_err(|_| bad()),
        Some(("signal", name)) => {
            (1..32).find(|&signal| signal_name(signal) == name).map(ExitOutcome::Signal).ok_or_else(bad)
        }
        _ => Err(bad()),
    }
}

/// Where a file's expectations and the model's differ, in words.
fn differences(file: &Expectations, model: &Expectations) -> Vec<String> {
    let mut out = Vec::new();
    if file.exit != model.exit {
        out.push(format!("exit: file says {}, model {}", outcome_text(file.exit), outcome_text(model.exit)));
    }
    if file.panic_message != model.panic_message {
        out.push("stderr".into());
    }
    if file.registry != model.registry {
        out.push(format!("registry: file says {}, model {}", file.registry, model.registry));
    }
    let nonzero = |saves: &model::Saves| -> BTreeMap<(String, String), u64> {
        saves
            .iter()
            .flat_map(|(p, files)| files.iter().map(move |(f, n)| ((p.clone(), f.clone()), *n)))
            .filter(|(_, n)| *n > 0)
            .collect()
    };
    if nonzero(&file.saves) != nonzero(&model.saves) {
        out.push(format!("saves: file says {:?}, model {:?}", nonzero(&file.saves), nonzero(&model.saves)));
    }
    let present = |entries: &BTreeMap<String, BTreeSet<String>>| -> BTreeMap<String, BTreeSet<String>> {
        entries.iter().filter(|(_, kernels)| !kernels.is_empty()).map(|(f, k)| (f.clone(), k.clone())).collect()
    };
    if present(&file.entries) != present(&model.entries) {
        out.push(format!("entries: file says {:?}, model {:?}", present(&file.entries), present(&model.entries)));
    }
    if file.children != model.children {
        out.push("children".into());
    }
    if file.failed_saves != model.failed_saves {
        out.push(format!("failed saves: file says {}, model {}", file.failed_saves, model.failed_saves));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"title = "t"
ops = [
  "create e0 a.rtc",
  "compile e0 k1",
]
ending = "exit(3)"
"#;

    #[test]
    fn written_reproducers_read_back_identically() {
        let first = Reproducer::parse(Path::new("x.toml"), GOOD).unwrap();
        let again = Reproducer::parse(Path::new("x.toml"), &first.to_toml()).unwrap();
        assert_eq!(first.case, again.case);
        assert_eq!(first.expect, again.expect);
        assert_eq!(again.expect.exit, ExitOutcome::Code(3));
    }

    #[test]
    fn a_racy_case_is_written_without_expectations_and_read_back_with_every_outcome() {
        let racy =
            GOOD.replace("\"compile e0 k1\",", "\"compile e0 k1\",\n  \"thread-compile e0 k2\",\n  \"save e0\",");
        let first = Reproducer::parse(Path::new("x.toml"), &racy).unwrap();
        assert!(first.is_racy());
        let text = first.to_toml();
        assert!(!text.contains("\n[expect]") && text.contains("# racy: 2 legal outcomes"), "{text}");
        let again = Reproducer::parse(Path::new("x.toml"), &text).unwrap();
        assert_eq!(again.outcomes().len(), 2);
        // An [expect] names one outcome: the run is held to that one alone.
        let held = format!(
            "{racy}\n[expect]\nexit = \"code 3\"\nstderr = \"empty\"\nregistry = 1\n\n[expect.saves]\nmain = {{ \"a.rtc\" = 2 }}\n\n[expect.entries]\n\"a.rtc\" = [\"k1\", \"k2\"]\n"
        );
        let held = Reproducer::parse(Path::new("x.toml"), &held).unwrap();
        assert_eq!(held.outcomes().len(), 1);
        assert_eq!(held.outcomes()[0].0.expect.saves["main"]["a.rtc"], 2);
    }

    #[test]
    fn failed_saves_are_written_and_read_back() {
        let failing = GOOD.replace("\"compile e0 k1\",", "\"compile e0 k1\",\n  \"fail-save e0 lock\",");
        let first = Reproducer::parse(Path::new("x.toml"), &failing).unwrap();
        assert_eq!(first.expect.failed_saves, 1);
        let text = first.to_toml();
        assert!(text.contains("failed_saves = 1\n"), "{text}");
        let again = Reproducer::parse(Path::new("x.toml"), &text).unwrap();
        assert_eq!(again.expect, first.expect);
        let wrong = text.replace("failed_saves = 1", "failed_saves = 0");
        let error = Reproducer::parse(Path::new("x.toml"), &wrong).unwrap_err().to_string();
        assert!(error.contains("failed saves: file says 0, model 1"), "{error}");
    }

    #[test]
    fn errors_name_the_line() {
        let bad_op = GOOD.replace("compile e0 k1", "compile e9 k1");
        let error = Reproducer::parse(Path::new("x.toml"), &bad_op).unwrap_err().to_string();
        assert!(error.starts_with("x.toml:4: op 2: e9 was never created"), "{error}");
        let bad_word = GOOD.replace("compile e0 k1", "compyle e0 k1");
        let error = Reproducer::parse(Path::new("x.toml"), &bad_word).unwrap_err().to_string();
        assert!(error.starts_with("x.toml:4: unknown operation `compyle`"), "{error}");
        let bad_toml = GOOD.replace("ending = \"exit(3)\"", "ending = exit(3)");
        let error = Reproducer::parse(Path::new("x.toml"), &bad_toml).unwrap_err().to_string();
        assert!(error.starts_with("x.toml:6:"), "{error}");
        let wrong = format!("{GOOD}\n[expect]\nexit = \"code 0\"\nstderr = \"empty\"\nregistry = 1\n");
        let error = Reproducer::parse(Path::new("x.toml"), &wrong).unwrap_err().to_string();
        assert!(error.contains("disagrees with the model: exit: file says code 0, model code 3"), "{error}");
    }
}
