//! Judges one run of a [`Case`] against the model: the child's journal (its own account, through
//! the cache's observer), the cache files left on disk (decoded), the exit status and stderr.
//! Every failure quotes its evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use exit_harness::journal::Entry;
use exit_harness::oracle::{Oracle, QuietStderr};
use exit_harness::{ExitOutcome, Observation};

use super::model::{Expectations, Saves, Step};
use super::ops::{Case, MAIN, kernel_key_hex};

/// One broken expectation, with what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Which expectation, in a few words (`saves`, `entries of a.rtc`, `exit status`, ...).
    pub what: String,
    /// What was expected and what was seen, with quoted journal or stderr lines.
    pub evidence: String,
}

/// The verdict on one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Checks made.
    pub checks: usize,
    /// Those that failed.
    pub failures: Vec<Failure>,
}

impl Verdict {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The first failure as one line (for titles and progress output).
    pub fn headline(&self) -> String {
        match self.failures.first() {
            None => "pass".into(),
            Some(failure) => {
                // The first line, and the first quoted line when the first only announces them.
                let mut lines = failure.evidence.lines().map(str::trim).filter(|line| !line.is_empty());
                let first = lines.next().unwrap_or("");
                match lines.next() {
                    Some(next) if first.ends_with(':') => format!("{}: {first} {next}", failure.what),
                    _ => format!("{}: {first}", failure.what),
                }
            }
        }
    }

    fn check(&mut self, what: impl Into<String>, result: Result<(), String>) {
        self.checks += 1;
        if let Err(evidence) = result {
            self.failures.push(Failure { what: what.into(), evidence });
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.passed() {
            return write!(f, "pass ({} checks)", self.checks);
        }
        writeln!(f, "{} of {} checks failed:", self.failures.len(), self.checks)?;
        for failure in &self.failures {
            writeln!(f, "- {}: {}", failure.what, failure.evidence.replace('\n', "\n  "))?;
        }
        Ok(())
    }
}

/// Which process wrote each journal line: `pid -> "main" | "fork-3" | ...`, from the
/// `fuzz_process` lines every process of a case writes first.
fn roles(obs: &Observation) -> BTreeMap<u32, String> {
    obs.journal
        .of_kind("fuzz_process")
        .filter_map(|entry| Some((entry.pid, entry.str_field("role")?.to_owned())))
        .collect()
}

fn role_of(roles: &BTreeMap<u32, String>, entry: &Entry) -> String {
    roles.get(&entry.pid).cloned().unwrap_or_else(|| format!("pid-{}", entry.pid))
}

/// The file name (relative to the scratch folder) of a journaled absolute path.
fn file_name(entry: &Entry) -> String {
    entry.file().and_then(|path| path.file_name()).map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

fn quote<'a>(lines: impl IntoIterator<Item = &'a Entry>) -> String {
    let lines: Vec<&Entry> = lines.into_iter().collect();
    let mut out: Vec<String> = lines.iter().take(8).map(|entry| format!("    | {}", entry.raw)).collect();
    if lines.len() > 8 {
        out.push(format!("    | ... {} more", lines.len() - 8));
    }
    if out.is_empty() { "    (no journal lines)".into() } else { out.join("\n") }
}

/// Zero counts removed, so that "0 saves" and "not mentioned" compare equal.
fn nonzero(saves: &Saves) -> BTreeMap<(String, String), u64> {
    saves
        .iter()
        .flat_map(|(process, files)| files.iter().map(move |(file, n)| ((process.clone(), file.clone()), *n)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn describe_saves(saves: &BTreeMap<(String, String), u64>) -> String {
    if saves.is_empty() {
        return "none".into();
    }
    saves.iter().map(|((process, file), n)| format!("{process} saved {file} {n}x")).collect::<Vec<_>>().join(", ")
}

/// Judges `obs`, a run of `case`, against the model's `steps` (after each op) and `expect` (at
/// the end). With `black_box`, the harness's inotify counts must also agree with the journal.
pub fn judge(case: &Case, steps: &[Step], expect: &Expectations, obs: &Observation, black_box: bool) -> Verdict {
    let mut verdict = Verdict::default();
    let roles = roles(obs);
    let entries = &obs.journal.entries;

    // After each op: the registry, hit or miss, and the saves so far.
    let mut seen_saves: Saves = BTreeMap::new();
    let mut save_lines: Vec<&Entry> = Vec::new();
    let mut ops_seen = 0;
    let mut step_failed = false;
    for entry in entries {
        match entry.kind.as_str() {
            "save" => {
                *seen_saves.entry(role_of(&roles, entry)).or_default().entry(file_name(entry)).or_default() += 1;
                save_lines.push(entry);
            }
            "fuzz_op" => {
                let n = entry.u64_field("n").unwrap_or(0) as usize;
                let Some(step) = n.checked_sub(1).and_then(|i| steps.get(i)) else { continue };
                ops_seen = ops_seen.max(n);
                if step_failed {
                    continue;
                }
                let op = &case.ops[n - 1];
                let registry = entry.u64_field("registry");
                let mut problems = Vec::new();
                if registry != Some(step.registry) {
                    problems
                        .push(format!("exit registry holds {registry:?}, expected {} live handle(s)", step.registry));
                }
                if let Some(origin) = step.origin
                    && entry.str_field("origin") != Some(origin.name())
                {
                    problems.push(format!(
                        "the compile was a {:?}, expected a {}",
                        entry.str_field("origin"),
                        origin.name()
                    ));
                }
                if nonzero(&seen_saves) != nonzero(&step.saves) {
                    problems.push(format!(
                        "saves so far: {}; expected {}",
                        describe_saves(&nonzero(&seen_saves)),
                        describe_saves(&nonzero(&step.saves))
                    ));
                }
                if !problems.is_empty() {
                    step_failed = true;
                    verdict.failures.push(Failure {
                        what: format!("after op {n} `{op}`"),
                        evidence: format!(
                            "{}\n{}\n{}",
                            problems.join("; "),
                            quote([entry]),
                            quote(save_lines.iter().copied())
                        ),
                    });
                }
                verdict.checks += 1;
            }
            _ => {}
        }
    }
    verdict.check(
        "ops completed",
        if ops_seen == case.ops.len() {
            Ok(())
        } else {
            let stderr: Vec<&str> = obs.stderr_lines().take(5).collect();
            Err(format!(
                "the child journaled {ops_seen} of {} ops, then {}; stderr:\n    | {}",
                case.ops.len(),
                obs.outcome,
                stderr.join("\n    | ")
            ))
        },
    );

    // At the end: saves per process per file.
    let (seen, want) = (nonzero(&seen_saves), nonzero(&expect.saves));
    verdict.check(
        "saves per process per file",
        if seen == want {
            Ok(())
        } else {
            Err(format!(
                "saw {}; expected {}\n{}",
                describe_saves(&seen),
                describe_saves(&want),
                quote(save_lines.iter().copied())
            ))
        },
    );

    // The exit registry when the ending began.
    let ending =
        obs.journal.of_kind("fuzz_ending").find(|entry| roles.get(&entry.pid).map(String::as_str) == Some(MAIN));
    if ops_seen == case.ops.len() {
        verdict.check(
            "registry at the ending",
            match ending.and_then(|entry| entry.u64_field("registry")) {
                Some(len) if len == expect.registry => Ok(()),
                other => Err(format!("exit registry holds {other:?}, expected {}\n{}", expect.registry, quote(ending))),
            },
        );
    }

    // What each file holds afterwards, decoded.
    for (path, kernels) in &expect.entries {
        let want: BTreeMap<String, &String> = kernels.iter().map(|kernel| (kernel_key_hex(kernel), kernel)).collect();
        let result = match obs.file(path) {
            None => Err(format!("{path} was not observed")),
            Some(file) if !file.after.exists => {
                if kernels.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{path} does not exist; expected {kernels:?}"))
                }
            }
            Some(file) => match file.after.keys() {
                Some(keys) => {
                    let have: BTreeSet<&String> = keys.iter().collect();
                    let missing: Vec<&str> =
                        want.iter().filter(|(key, _)| !have.contains(key)).map(|(_, k)| k.as_str()).collect();
                    let extra = keys.iter().filter(|key| !want.contains_key(*key)).count();
                    if missing.is_empty() && extra == 0 {
                        Ok(())
                    } else {
                        Err(format!(
                            "{path} holds {} entries ({}); expected {kernels:?}: missing {missing:?}, {extra} unexpected\n{}",
                            keys.len(),
                            file.after.describe(),
                            quote(obs.journal.of_kind("committed").filter(|e| file_name(e) == *path))
                        ))
                    }
                }
                None => Err(format!("{path} is not a valid cache file: {}", file.after.describe())),
            },
        };
        verdict.check(format!("entries of {path}"), result);
        if black_box {
            let journal = save_lines.iter().filter(|entry| file_name(entry) == *path).count() as u64;
            let seen = obs.file(path).and_then(|file| file.black_box).map(|counts| counts.saves());
            verdict.check(
                format!("black box agrees on {path}"),
                match seen {
                    None => Err(format!("no black box watched {path}")),
                    Some(_) if obs.black_box_overflowed => Err("the black box's inotify queue overflowed".into()),
                    Some(seen) if seen == journal => Ok(()),
                    Some(seen) => {
                        Err(format!("the journal shows {journal} save(s) of {path}, the black box (inotify) {seen}"))
                    }
                },
            );
        }
    }

    // How the forked and spawned processes ended.
    let child_exits: BTreeMap<String, (ExitOutcome, &Entry)> = obs
        .journal
        .of_kind("fuzz_child_exit")
        .filter_map(|entry| {
            let role = entry.str_field("role")?.to_owned();
            let outcome = match (entry.u64_field("code"), entry.u64_field("signal")) {
                (Some(code), _) => ExitOutcome::Code(code as i32),
                (_, Some(signal)) => ExitOutcome::Signal(signal as i32),
                _ => return None,
            };
            Some((role, (outcome, entry)))
        })
        .collect();
    for (name, want) in &expect.children {
        verdict.check(
            format!("{name} ending"),
            match child_exits.get(name) {
                Some((outcome, _)) if outcome == want => Ok(()),
                Some((outcome, entry)) => {
                    Err(format!("{name} ended with {outcome}, expected {want}\n{}", quote([*entry])))
                }
                None => Err(format!("no `fuzz_child_exit` line for {name}")),
            },
        );
    }

    // Failed saves are never expected here.
    let failed: Vec<&Entry> = obs.journal.of_kind("save_failed").collect();
    verdict.check("no failed save", if failed.is_empty() { Ok(()) } else { Err(quote(failed)) });

    // The exit status, stderr, and processes left behind.
    verdict.check(
        "exit status",
        if obs.outcome == expect.exit && !obs.timed_out {
            Ok(())
        } else {
            let tail: Vec<&str> = obs.stderr_lines().take(5).collect();
            Err(format!(
                "expected {}, got {}{}; stderr:\n    | {}",
                expect.exit,
                obs.outcome,
                if obs.timed_out { " after the timeout" } else { "" },
                tail.join("\n    | ")
            ))
        },
    );
    let stderr = if expect.panic_message {
        QuietStderr::empty().allow_panic(super::ops::PLANNED_PANIC)
    } else {
        QuietStderr::empty()
    };
    verdict.check("stderr", stderr.judge(obs).evidence().map_or(Ok(()), |evidence| Err(evidence.to_owned())));
    verdict.check(
        "no leaked processes",
        if obs.leaked.is_empty() {
            Ok(())
        } else {
            Err(obs
                .leaked
                .iter()
                .map(|p| format!("pid {} ({})", p.pid.map_or("unknown".into(), |pid| pid.to_string()), p.cmdline))
                .collect::<Vec<_>>()
                .join(", "))
        },
    );
    verdict
}
