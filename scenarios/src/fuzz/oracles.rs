//! The oracles a fuzz case's [`Prediction`] implies, beyond the
//! harness's generic ones: what the model says after each operation, the saves of each process,
//! the exit registry when the ending began, what each cache file holds, how each forked or
//! spawned process ended. They read the case's journal lines (`fuzz_process`, `fuzz_op`,
//! `fuzz_ending`, `fuzz_child_exit`) and every cache event; each quotes its evidence.

use std::collections::{BTreeMap, BTreeSet};

use exit_harness::journal::Entry;
use exit_harness::oracle::{
    JournalEvents, NoLeakedProcesses, Oracle, OracleVerdict, SaveCount, names_file, qualified, quote_lines,
};
use exit_harness::{ExitOutcome, Observation, Scenario};

use super::model::{Expectations, Prediction, Saves, Step};
use super::ops::{Case, MAIN, kernel_key_hex};
use crate::wiring;

impl Prediction {
    /// The oracles this prediction implies for a run of `case`, judged against `expect` (the
    /// prediction's own, or a reproducer's, which must agree with it): the model's steps, the
    /// saves of each process, the exit registry at the ending, what each file holds, how each
    /// child process ended, the failed saves (none, or each `fail-save` of a dirty handle), the exit status, stderr and no leaked process. With
    /// `black_box` (a spawned run), each file's saves are also counted by the harness's
    /// `SaveCount`, so the journal and inotify must agree.
    pub fn oracles(&self, case: &Case, expect: &Expectations, black_box: bool) -> Vec<Box<dyn Oracle>> {
        let mut oracles: Vec<Box<dyn Oracle>> = vec![
            Box::new(ModelSteps { case: case.clone(), steps: self.steps.clone() }),
            Box::new(SavesPerProcess(expect.saves.clone())),
            Box::new(RegistryAtEnding(expect.registry)),
        ];
        for (file, kernels) in &expect.entries {
            oracles.push(Box::new(FileEntries { file: file.clone(), kernels: kernels.clone() }));
            if black_box {
                let total = expect.saves.values().filter_map(|files| files.get(file)).sum();
                oracles.push(Box::new(SaveCount::exactly(total).of(file)));
            }
        }
        oracles.push(Box::new(ChildEndings(expect.children.clone())));
        oracles.push(Box::new(match expect.failed_saves {
            0 => JournalEvents::of_kind("save_failed").none(),
            n => JournalEvents::of_kind("save_failed").exactly(n as usize),
        }));
        oracles.push(Box::new(crate::contract::exit_status(expect.exit)));
        oracles.push(Box::new(crate::contract::quiet_stderr(expect.panic_message)));
        oracles.push(Box::new(NoLeakedProcesses));
        oracles
    }

    /// A scenario named `name` judging a run of `case` with [`oracles`](Self::oracles), watching
    /// every cache file the case names.
    pub fn scenario(&self, name: &str, case: &Case, expect: &Expectations, black_box: bool) -> Scenario {
        let mut scenario = Scenario::new(name).family("fuzz");
        scenario.files = super::spawn::files_under_test(case);
        scenario.oracles = self.oracles(case, expect, black_box);
        scenario
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

/// The name of the file under test a journal event is about (as the harness matches them), or
/// the journaled path's last component for a file the case does not name.
fn file_name(obs: &Observation, entry: &Entry) -> String {
    match obs.files.iter().find(|file| names_file(entry, file)) {
        Some(file) => file.name.clone(),
        None => entry.file().and_then(|p| p.file_name()).map_or_else(String::new, |n| n.to_string_lossy().into()),
    }
}

fn quote<'a>(lines: impl IntoIterator<Item = &'a Entry>) -> String {
    quote_lines(lines.into_iter().map(|entry| entry.raw.as_str()), 8)
}

/// Zero counts removed, so that "0 saves" and "not mentioned" compare equal.
pub fn nonzero(saves: &Saves) -> BTreeMap<(String, String), u64> {
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

/// The journaled saves, per process per file, and their lines.
fn saves_seen<'a>(obs: &'a Observation, roles: &BTreeMap<u32, String>) -> (Saves, Vec<&'a Entry>) {
    let mut saves: Saves = BTreeMap::new();
    let lines: Vec<&Entry> = obs.journal.of_kind("save").collect();
    for entry in &lines {
        *saves.entry(role_of(roles, entry)).or_default().entry(file_name(obs, entry)).or_default() += 1;
    }
    (saves, lines)
}

/// After every operation, in the case's own process: the exit registry's size, hit or miss, and
/// the saves so far match the model's step; and every operation was carried out.
#[derive(Debug, Clone)]
pub struct ModelSteps {
    /// The case.
    pub case: Case,
    /// The model's state after each operation.
    pub steps: Vec<Step>,
}

impl Oracle for ModelSteps {
    fn name(&self) -> &str {
        "model_steps"
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let roles = roles(obs);
        let mut seen: Saves = BTreeMap::new();
        let mut save_lines: Vec<&Entry> = Vec::new();
        let mut ops_seen = 0;
        for entry in &obs.journal.entries {
            match entry.kind.as_str() {
                "save" => {
                    *seen.entry(role_of(&roles, entry)).or_default().entry(file_name(obs, entry)).or_default() += 1;
                    save_lines.push(entry);
                }
                "fuzz_op" => {
                    let n = entry.u64_field("n").unwrap_or(0) as usize;
                    let Some(step) = n.checked_sub(1).and_then(|i| self.steps.get(i)) else { continue };
                    ops_seen = ops_seen.max(n);
                    let mut problems = Vec::new();
                    let registry = entry.u64_field("registry");
                    if registry != Some(step.registry) {
                        problems.push(format!(
                            "exit registry holds {registry:?}, expected {} live handle(s)",
                            step.registry
                        ));
                    }
                    if let Some(origin) = step.origin
                        && entry.str_field("origin") != Some(origin.name())
                    {
                        let was = entry.str_field("origin").unwrap_or("(none journaled)");
                        problems.push(format!("the compile was a {was}, expected a {}", origin.name()));
                    }
                    if let Some(held) = step.held
                        && entry.u64_field("held") != Some(u64::from(held))
                    {
                        let said =
                            entry.u64_field("held").map_or("nothing", |was| if was == 1 { "true" } else { "false" });
                        problems.push(format!("remove returned {said}, expected {held} (whether the handle held it)"));
                    }
                    if nonzero(&seen) != nonzero(&step.saves) {
                        problems.push(format!(
                            "saves so far: {}; expected {}",
                            describe_saves(&nonzero(&seen)),
                            describe_saves(&nonzero(&step.saves))
                        ));
                    }
                    if !problems.is_empty() {
                        return OracleVerdict::fail(format!(
                            "after op {n} `{}`: {}\n{}\n  saves so far:\n{}",
                            self.case.ops[n - 1],
                            problems.join("; "),
                            quote([entry]),
                            quote(save_lines.iter().copied())
                        ));
                    }
                }
                _ => {}
            }
        }
        if ops_seen == self.case.ops.len() {
            return OracleVerdict::Pass;
        }
        OracleVerdict::fail(format!(
            "the child journaled {ops_seen} of {} ops, then {}; stderr:\n{}",
            self.case.ops.len(),
            obs.outcome,
            quote_lines(obs.stderr_lines().take(5), 5)
        ))
    }
}

/// Saves per process per file over the whole run, as the model predicts.
#[derive(Debug, Clone)]
pub struct SavesPerProcess(pub Saves);

impl Oracle for SavesPerProcess {
    fn name(&self) -> &str {
        "saves_per_process"
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let (seen, lines) = saves_seen(obs, &roles(obs));
        let (seen, want) = (nonzero(&seen), nonzero(&self.0));
        if seen == want {
            return OracleVerdict::Pass;
        }
        OracleVerdict::fail(format!(
            "saw {}; expected {}\n{}",
            describe_saves(&seen),
            describe_saves(&want),
            quote(lines)
        ))
    }
}

/// The exit registry's size when the ending began (the `fuzz_ending` line of the case's own
/// process): its live autosave handles.
#[derive(Debug, Clone, Copy)]
pub struct RegistryAtEnding(pub u64);

impl Oracle for RegistryAtEnding {
    fn name(&self) -> &str {
        "registry_at_ending"
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let roles = roles(obs);
        let ending =
            obs.journal.of_kind("fuzz_ending").find(|entry| roles.get(&entry.pid).map(String::as_str) == Some(MAIN));
        match ending.and_then(|entry| entry.u64_field("registry")) {
            Some(len) if len == self.0 => OracleVerdict::Pass,
            other => OracleVerdict::fail(format!(
                "exit registry holds {other:?} when the ending begins, expected {}\n{}",
                self.0,
                quote(ending)
            )),
        }
    }
}

/// What a cache file holds afterwards, decoded: exactly these kernels (none: the file does not
/// exist, or holds nothing).
#[derive(Debug, Clone)]
pub struct FileEntries {
    /// The file under test.
    pub file: String,
    /// The kernels it must hold.
    pub kernels: BTreeSet<String>,
}

impl Oracle for FileEntries {
    fn name(&self) -> &str {
        "entries"
    }

    fn id(&self) -> String {
        qualified(self.name(), Some(&self.file))
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let (path, kernels) = (&self.file, &self.kernels);
        let want: BTreeMap<String, &String> = kernels.iter().map(|kernel| (kernel_key_hex(kernel), kernel)).collect();
        let Some(file) = obs.file(path) else { return OracleVerdict::fail(format!("{path} was not observed")) };
        if !file.after.exists {
            return match kernels.is_empty() {
                true => OracleVerdict::Pass,
                false => OracleVerdict::fail(format!("{path} does not exist; expected {kernels:?}")),
            };
        }
        let Some(keys) = file.after.keys() else {
            return OracleVerdict::fail(format!("{path} is not a valid cache file: {}", file.after.describe()));
        };
        let missing: Vec<&str> =
            want.iter().filter(|(key, _)| !keys.contains(*key)).map(|(_, kernel)| kernel.as_str()).collect();
        let extra = keys.iter().filter(|key| !want.contains_key(*key)).count();
        if missing.is_empty() && extra == 0 {
            return OracleVerdict::Pass;
        }
        let committed = obs.journal.of_kind("committed").filter(|entry| names_file(entry, file));
        OracleVerdict::fail(format!(
            "{path} holds {} entries ({}); expected {kernels:?}: missing {missing:?}, {extra} unexpected\n{}",
            keys.len(),
            file.after.describe(),
            quote(committed)
        ))
    }
}

/// How each forked or spawned process ended (its `fuzz_child_exit` line).
#[derive(Debug, Clone)]
pub struct ChildEndings(pub BTreeMap<String, ExitOutcome>);

impl Oracle for ChildEndings {
    fn name(&self) -> &str {
        "child_endings"
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let exits: BTreeMap<&str, &Entry> = obs
            .journal
            .of_kind("fuzz_child_exit")
            .filter_map(|entry| Some((entry.str_field("role")?, entry)))
            .collect();
        let mut problems = Vec::new();
        for (name, want) in &self.0 {
            match exits.get(name.as_str()) {
                Some(entry) => match wiring::outcome_in(entry) {
                    Some(outcome) if outcome == *want => {}
                    outcome => problems.push(format!(
                        "{name} ended with {}, expected {want}\n{}",
                        outcome.map_or("(no code or signal)".into(), |o| o.to_string()),
                        quote([*entry])
                    )),
                },
                None => problems.push(format!("no `fuzz_child_exit` line for {name}")),
            }
        }
        match problems.is_empty() {
            true => OracleVerdict::Pass,
            false => OracleVerdict::fail(problems.join("\n")),
        }
    }
}
