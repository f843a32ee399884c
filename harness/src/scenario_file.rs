//! Scenario files: any program, in any language, and what must hold when it ends, in TOML.
//!
//! `exit-harness run FILE...` loads each file into a [`Cell`] and judges it like any catalog
//! cell. The format (every key but `name`, `command` and `[expect]` is optional):
//!
//! ```toml
//! name = "python cache saves once at exit"
//! command = ["python3", "prog.py", "{scratch}/cache.bin"]  # {scratch}: the run's private folder
//! cwd = "."                     # default: the scenario file's folder (relative paths are from it)
//! env = { KEY = "value" }       # {scratch} and {env:NAME} (the harness's own variable) expand
//! journal = false               # default false: the program writes no journal (see the clients)
//! timeout_ms = 10000            # default 30000: then SIGTERM to its group, SIGKILL 2 s later
//!
//! [[file]]                      # a file under test; files named under [expect] are added too
//! name = "cache.bin"            # relative to {scratch}
//! seed = "old contents"         # written (0600) before the run
//!
//! [[folder]]                    # a folder under test (not recursive); default "." with leftovers
//! path = "."
//!
//! [signal]                      # how the run is ended, if not by itself
//! send = "SIGTERM"
//! when_output = "ready"         # a regex on a line of stdout or stderr; or after_ms = 200;
//!                               # or when_marker = "ready" (a journal marker)
//!
//! [expect]
//! exit = "code 0"               # default "code 0" | "code N" | "signal SIGTERM" | "any"
//! stderr = "empty"              # default "empty" | "any" | { allow = ["regex", ...] }
//! stdout = { matches = "regex" }           # or { equals = "text" }
//! saves = { "cache.bin" = 1 }              # renames onto / writes into the file; with one
//!                                          # [[file]], also `saves = 1`
//! contains_lines = { "app.log" = ["a", "b"] }
//! equals = { "out.txt" = "text" }
//! matches = { "out.txt" = "regex" }
//! intact = ["cache.bin"]                   # the file is unchanged, byte for byte
//! leftovers = { allow = ["*.lock"] }       # nothing new in the folders but files under test and these
//! ```
//!
//! Every run also fails when a descendant of the program outlives it (one that leaves its process
//! group *and* clears its environment, `setsid env -i`, escapes: see the README's blind spots). Errors name the file and
//! line: an unknown key, a bad value, an expectation that needs the journal of a program declared
//! not to write one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::cell::Cell;
use crate::oracle::{
    ExitStatus, FileContent, FileIntact, NoLeakedProcesses, NoLeftoverFiles, OutputText, QuietStderr, SaveCount,
};
use crate::spec::{ChildSpec, FileUnderTest, FolderUnderTest, When};

/// A scenario file that cannot be used, with where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioFileError {
    /// The file.
    pub path: PathBuf,
    /// The 1-based line, when the problem has one.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ScenarioFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioFileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Format {
    name: String,
    command: Spanned<Vec<String>>,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    cwd: Option<String>,
    #[serde(default)]
    journal: bool,
    timeout_ms: Option<u64>,
    #[serde(default, rename = "file")]
    files: Vec<FileFormat>,
    #[serde(default, rename = "folder")]
    folders: Vec<FolderFormat>,
    signal: Option<Spanned<SignalFormat>>,
    expect: ExpectFormat,
    /// Crash exploration's tables (`exit_harness::crash::file`); `run` ignores them.
    #[serde(default, rename = "crash")]
    _crash: Option<toml::Value>,
    #[serde(default, rename = "recovery")]
    _recovery: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    name: Spanned<String>,
    seed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderFormat {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignalFormat {
    send: Spanned<String>,
    when_output: Option<Spanned<String>>,
    when_marker: Option<String>,
    after_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StderrFormat {
    Word(String),
    Allow { allow: Vec<String> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StdoutFormat {
    equals: Option<String>,
    matches: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeftoversFormat {
    #[serde(default)]
    allow: Vec<String>,
}

/// `saves = 1` (the one file under test) or `saves = { "a.bin" = 1, "b.bin" = 0 }`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "a count (`saves = 1`, with one [[file]]) or a count per file (`saves = { \"cache.bin\" = 1 }`)"
)]
enum SavesFormat {
    OfTheOneFile(u64),
    PerFile(BTreeMap<String, u64>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectFormat {
    exit: Option<Spanned<String>>,
    stderr: Option<Spanned<StderrFormat>>,
    stdout: Option<Spanned<StdoutFormat>>,
    saves: Option<Spanned<SavesFormat>>,
    #[serde(default)]
    contains_lines: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    equals: BTreeMap<String, String>,
    #[serde(default)]
    matches: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    intact: Vec<String>,
    leftovers: Option<LeftoversFormat>,
}

/// Loads the scenario file at `path` into a cell named by its `name` (family: the file's path).
pub fn load(path: &Path) -> Result<Cell, ScenarioFileError> {
    load_with_vars(path, &[])
}

/// Like [`load`], with `{env:NAME}` taken from `vars` first, then from the environment (for
/// tests that cannot set the process's environment: a Cargo target folder, a tool's path).
pub fn load_with_vars(path: &Path, vars: &[(&str, &str)]) -> Result<Cell, ScenarioFileError> {
    let text = read_bounded(path)?;
    parse_with_vars(path, &text, vars)
}

/// The most bytes of a scenario file read.
const MAX_FILE: u64 = 1 << 20;

/// Reads a scenario file: a regular file of at most [`MAX_FILE`] bytes (a FIFO is refused, never
/// opened blocking), for `run` and `crash` alike.
pub(crate) fn read_bounded(path: &Path) -> Result<String, ScenarioFileError> {
    use std::io::Read as _;
    let error = |message: String| ScenarioFileError { path: path.to_owned(), line: None, message };
    use std::os::unix::fs::OpenOptionsExt as _;
    // Non-blocking, so that a FIFO named as a scenario is refused instead of waited on.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .map_err(|e| error(format!("cannot open: {e}")))?;
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return Err(error("not a regular file".into()));
    }
    let mut text = String::new();
    file.take(MAX_FILE + 1).read_to_string(&mut text).map_err(|e| error(format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_FILE {
        return Err(error(format!("larger than {MAX_FILE} bytes")));
    }
    Ok(text)
}

/// Parses scenario-file text; `path` names the file in errors and anchors relative paths.
pub fn parse(path: &Path, text: &str) -> Result<Cell, ScenarioFileError> {
    parse_with_vars(path, text, &[])
}

/// Like [`parse`], with `{env:NAME}` taken from `vars` first.
pub fn parse_with_vars(path: &Path, text: &str, vars: &[(&str, &str)]) -> Result<Cell, ScenarioFileError> {
    let at = |span: Option<std::ops::Range<usize>>, message: String| ScenarioFileError {
        path: path.to_owned(),
        line: span.map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
        message,
    };
    let format: Format = toml::from_str(text).map_err(|e| at(e.span(), e.message().to_owned()))?;
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let folder = std::path::absolute(folder).unwrap_or_else(|_| folder.to_owned());

    let expand = |value: &str, span: std::ops::Range<usize>| expand_env(value, vars).map_err(|m| at(Some(span), m));
    let command_span = format.command.span();
    let command = format.command.into_inner();
    let Some((program, args)) = command.split_first() else {
        return Err(at(Some(command_span), "`command` is empty: name the program to run".into()));
    };
    let cwd = match &format.cwd {
        Some(cwd) => folder.join(expand(cwd, command_span.clone())?),
        None => folder.clone(),
    };
    let mut program = PathBuf::from(expand(program, command_span.clone())?);
    if program.is_relative() && program.components().count() > 1 {
        program = cwd.join(program);
    }
    let mut spec = ChildSpec::new(program).current_dir(cwd);
    for arg in args {
        spec = spec.arg(expand(arg, command_span.clone())?);
    }
    for (key, value) in &format.env {
        spec = spec.env(key, expand(value.get_ref(), value.span())?);
    }
    if !format.journal {
        spec = spec.without_journal();
    }
    if let Some(ms) = format.timeout_ms {
        spec = spec.timeout(Duration::from_millis(ms));
    }
    if let Some(signal) = &format.signal {
        let span = signal.span();
        let signal = signal.get_ref();
        let number = signal_number(signal.send.get_ref()).ok_or_else(|| {
            at(Some(signal.send.span()), format!("unknown signal {:?} (e.g. \"SIGTERM\")", signal.send.get_ref()))
        })?;
        let when = match (&signal.when_output, &signal.when_marker, signal.after_ms) {
            (Some(re), None, None) => {
                When::Output(regex::Regex::new(re.get_ref()).map_err(|e| at(Some(re.span()), e.to_string()))?)
            }
            (None, Some(marker), None) if format.journal => When::Marker(marker.clone()),
            (None, Some(_), None) => {
                return Err(at(Some(span), "`when_marker` needs the journal: set `journal = true`".into()));
            }
            (None, None, Some(ms)) => When::After(Duration::from_millis(ms)),
            _ => {
                return Err(at(Some(span), "[signal] needs exactly one of when_output, when_marker, after_ms".into()));
            }
        };
        spec = spec.signal_when(when, number);
    }

    let expect = &format.expect;
    let saves: BTreeMap<String, u64> = match expect.saves.as_ref().map(|s| (s.get_ref(), s.span())) {
        None => BTreeMap::new(),
        Some((SavesFormat::PerFile(per_file), _)) => per_file.clone(),
        Some((SavesFormat::OfTheOneFile(count), span)) => match format.files.as_slice() {
            [file] => BTreeMap::from([(file.name.get_ref().clone(), *count)]),
            files => {
                return Err(at(
                    Some(span),
                    format!(
                        "`saves = {count}` is for a scenario with exactly one [[file]] (this one has {}); \
                         name the file: saves = {{ \"cache.bin\" = {count} }}",
                        files.len()
                    ),
                ));
            }
        },
    };
    let mut cell = Cell::new(&format.name, path.display().to_string(), spec);
    for file in &format.files {
        inside_scratch(file.name.get_ref(), "[[file]] name").map_err(|m| at(Some(file.name.span()), m))?;
    }
    for folder in &format.folders {
        if folder.path.get_ref() != "." {
            inside_scratch(folder.path.get_ref(), "[[folder]] path").map_err(|m| at(Some(folder.path.span()), m))?;
        }
    }
    let mut named: Vec<&str> = format.files.iter().map(|f| f.name.get_ref().as_str()).collect();
    for file in &format.files {
        let mut under_test = FileUnderTest::new(file.name.get_ref());
        if let Some(seed) = &file.seed {
            under_test = under_test.seeded(seed.as_bytes());
        }
        cell = cell.file(under_test);
    }
    let mentioned = saves
        .keys()
        .chain(expect.contains_lines.keys())
        .chain(expect.equals.keys())
        .chain(expect.matches.keys())
        .chain(&expect.intact);
    for name in mentioned {
        let name: &str = name;
        inside_scratch(name, "a file named under [expect]").map_err(|m| at(None, m))?;
        if !named.contains(&name) {
            named.push(name);
            cell = cell.file(FileUnderTest::new(name));
        }
    }
    let mut folders: Vec<&str> = format.folders.iter().map(|f| f.path.get_ref().as_str()).collect();
    if folders.is_empty() && expect.leftovers.is_some() {
        folders.push(".");
    }
    for folder in folders {
        cell = cell.folder(FolderUnderTest::new(folder));
    }

    let exit = expect.exit.as_ref().map_or("code 0", |e| e.get_ref().as_str());
    let exit_span = expect.exit.as_ref().map(Spanned::span);
    match parse_exit(exit) {
        Some(Some(status)) => cell = cell.oracle(status),
        Some(None) => {}
        None => {
            return Err(at(
                exit_span,
                format!("`exit = {exit:?}`: expected \"code N\", \"signal SIGTERM\" or \"any\""),
            ));
        }
    }
    match expect.stderr.as_ref().map(|s| (s.get_ref(), s.span())) {
        None => cell = cell.oracle(QuietStderr::empty()),
        Some((StderrFormat::Word(word), _)) if word == "empty" => cell = cell.oracle(QuietStderr::empty()),
        Some((StderrFormat::Word(word), _)) if word == "any" => {}
        Some((StderrFormat::Word(word), span)) => {
            return Err(at(
                Some(span),
                format!("`stderr = {word:?}`: expected \"empty\", \"any\" or {{ allow = [...] }}"),
            ));
        }
        Some((StderrFormat::Allow { allow }, span)) => {
            let mut quiet = QuietStderr::empty();
            for pattern in allow {
                quiet = quiet.allow_regex(pattern).map_err(|e| at(Some(span.clone()), e.to_string()))?;
            }
            cell = cell.oracle(quiet);
        }
    }
    if let Some(stdout) = &expect.stdout {
        let span = stdout.span();
        match (&stdout.get_ref().equals, &stdout.get_ref().matches) {
            (Some(text), None) => cell = cell.oracle(OutputText::stdout_equals(text)),
            (None, Some(re)) => {
                cell = cell
                    .oracle(OutputText::stdout_matches(re.get_ref()).map_err(|e| at(Some(re.span()), e.to_string()))?)
            }
            _ => return Err(at(Some(span), "`stdout` needs exactly one of `equals`, `matches`".into())),
        }
    }
    for (name, count) in &saves {
        cell = cell.oracle(SaveCount::exactly(*count).of(name));
    }
    for (name, lines) in &expect.contains_lines {
        cell = cell.oracle(FileContent::contains_lines(lines).of(name));
    }
    for (name, text) in &expect.equals {
        cell = cell.oracle(FileContent::equals(text).of(name));
    }
    for (name, pattern) in &expect.matches {
        let oracle = FileContent::matches(pattern.get_ref()).map_err(|e| at(Some(pattern.span()), e.to_string()))?;
        cell = cell.oracle(oracle.of(name));
    }
    for name in &expect.intact {
        cell = cell.oracle(FileIntact::unchanged().of(name));
    }
    if let Some(leftovers) = &expect.leftovers {
        let mut oracle = NoLeftoverFiles::new();
        for glob in &leftovers.allow {
            oracle = oracle.allow(glob);
        }
        cell = cell.oracle(oracle);
    }
    cell = cell.oracle(NoLeakedProcesses);
    if let Some(problem) = cell.journal_problem() {
        return Err(at(None, problem));
    }
    Ok(cell)
}

/// `Some(Some(oracle))`, `Some(None)` for "any", `None` when unreadable.
fn parse_exit(text: &str) -> Option<Option<ExitStatus>> {
    let text = text.trim();
    if text == "any" {
        return Some(None);
    }
    if let Some(code) = text.strip_prefix("code ") {
        return code.trim().parse().ok().map(|code| Some(ExitStatus::code(code)));
    }
    let name = text.strip_prefix("signal ")?;
    signal_number(name.trim()).map(|sig| Some(ExitStatus::signal(sig)))
}

/// Refuses a name that leaves the run's scratch folder: an absolute path or a `..` component.
/// A scenario file may come from anyone (a reproducer attached to an issue), and a seeded file is
/// written before the run: a name outside `{scratch}` would overwrite the user's own files.
fn inside_scratch(name: &str, what: &str) -> Result<(), String> {
    let path = Path::new(name);
    if name.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if path.is_absolute() || path.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(format!(
            "{what} {name:?} leaves the run's scratch folder: name files and folders relative to {{scratch}}, without `..`"
        ));
    }
    Ok(())
}

/// A signal's number from its name (`SIGTERM`, `TERM`) or number (`15`).
pub fn signal_number(name: &str) -> Option<i32> {
    if let Ok(number) = name.parse::<i32>() {
        return crate::descendants::signal(number).map(|_| number);
    }
    let name = name.strip_prefix("SIG").unwrap_or(name);
    (1..32).find(|&n| crate::observation::signal_name(n).strip_prefix("SIG") == Some(name))
}

/// Replaces `{env:NAME}` with `vars`' `NAME`, or else the harness's environment variable.
fn expand_env(value: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("{env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 5..];
        let end = after.find('}').ok_or_else(|| format!("unclosed `{{env:` in {value:?}"))?;
        let name = &after[..end];
        match vars.iter().find(|(key, _)| *key == name) {
            Some((_, var)) => out.push_str(var),
            None => {
                out.push_str(&std::env::var(name).map_err(|_| {
                    format!("{{env:{name}}} in {value:?}: the variable {name} is not set (or not UTF-8)")
                })?)
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        match parse(Path::new("dir/s.toml"), text) {
            Ok(cell) => panic!("accepted: {cell:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let e = error("name = \"x\"\ncommand = [\"true\"]\n[expect]\nexit = \"code zero\"\n");
        assert!(e.starts_with("dir/s.toml:4: "), "{e}");
        let e = error("name = \"x\"\ncommand = [\"true\"]\nbogus = 1\n[expect]\n");
        assert!(e.starts_with("dir/s.toml:3: ") && e.contains("bogus"), "{e}");
        let e = error("name = \"x\"\ncommand = []\n[expect]\n");
        assert!(e.contains(":2: `command` is empty"), "{e}");
        let e = error("name = \"x\"\ncommand = [\"true\"]\n[signal]\nsend = \"SIGNOPE\"\nafter_ms = 1\n[expect]\n");
        assert!(e.contains(":4: unknown signal"), "{e}");
        let e = error("name = \"x\"\ncommand = [\"{env:EXIT_HARNESS_SURELY_UNSET}\"]\n[expect]\n");
        assert!(e.contains("EXIT_HARNESS_SURELY_UNSET is not set"), "{e}");
    }

    #[test]
    fn names_that_leave_the_scratch_folder_are_refused_with_their_line() {
        let head = "name = \"n\"\ncommand = [\"true\"]\n";
        let e = error(&format!("{head}[[file]]\nname = \"/home/me/.bashrc\"\nseed = \"x\"\n[expect]\n"));
        assert!(e.contains(":4: [[file]] name \"/home/me/.bashrc\" leaves the run's scratch folder"), "{e}");
        let e = error(&format!("{head}[[file]]\nname = \"sub/../../x\"\n[expect]\n"));
        assert!(e.contains(":4: ") && e.contains("leaves the run's scratch folder"), "{e}");
        let e = error(&format!("{head}[[folder]]\npath = \"../..\"\n[expect]\n"));
        assert!(e.contains(":4: [[folder]] path"), "{e}");
        let e = error(&format!("{head}[expect]\nintact = [\"../../etc/hostname\"]\n"));
        assert!(e.contains("a file named under [expect] \"../../etc/hostname\" leaves"), "{e}");
        parse(
            Path::new("s.toml"),
            &format!("{head}[[file]]\nname = \"sub/cache.bin\"\n[[folder]]\npath = \".\"\n[expect]\n"),
        )
        .expect("names inside the scratch folder are fine");
    }

    #[test]
    fn a_bare_save_count_is_for_the_one_file_under_test() {
        let one_file = "name = \"n\"\ncommand = [\"true\"]\n[[file]]\nname = \"state.json\"\n[expect]\nsaves = 1\n";
        let cell = parse(Path::new("s.toml"), one_file).unwrap();
        let ids: Vec<String> = cell.scenario.oracles.iter().map(|o| o.id()).collect();
        assert!(ids.contains(&"save_count[state.json]".to_owned()), "{ids:?}");
        let two_files = "name = \"n\"\ncommand = [\"true\"]\n[[file]]\nname = \"a\"\n[[file]]\nname = \"b\"\n\
                         [expect]\nsaves = 1\n";
        let e = error(two_files);
        assert!(e.contains(":8: `saves = 1` is for a scenario with exactly one [[file]] (this one has 2)"), "{e}");
        let e = error("name = \"n\"\ncommand = [\"true\"]\n[expect]\nsaves = \"once\"\n");
        assert!(e.contains(":4: ") && e.contains("a count (`saves = 1`"), "{e}");
    }

    #[test]
    fn files_named_in_expectations_are_watched_and_defaults_apply() {
        let cell = parse(
            Path::new("s.toml"),
            "name = \"n\"\ncommand = [\"true\"]\n[expect]\nsaves = { \"c.bin\" = 1 }\nleftovers = { allow = [\"*.lock\"] }\n",
        )
        .unwrap();
        assert_eq!(cell.scenario.files.iter().map(FileUnderTest::name).collect::<Vec<_>>(), ["c.bin"]);
        assert_eq!(cell.scenario.folders, [FolderUnderTest::new(".")]);
        let ids: Vec<String> = cell.scenario.oracles.iter().map(|o| o.id()).collect();
        assert_eq!(
            ids,
            ["exit_status", "quiet_stderr", "save_count[c.bin]", "no_leftover_files", "no_leaked_processes"]
        );
        assert!(!cell.spec.writes_journal());
    }

    #[test]
    fn a_fifo_or_a_folder_named_as_a_scenario_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("s.toml");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(load(&fifo).unwrap_err().to_string().ends_with("not a regular file"));
        assert!(load(dir.path()).unwrap_err().to_string().ends_with("not a regular file"));
    }

    #[test]
    fn intact_means_byte_for_byte_unchanged() {
        let text = "name = \"n\"\ncommand = [\"sh\", \"-c\", \"printf new > {scratch}/c.bin\"]\n\
                    [[file]]\nname = \"c.bin\"\nseed = \"old\"\n[expect]\nintact = [\"c.bin\"]\n";
        let failures = parse(Path::new("s.toml"), text).unwrap().run().failures();
        assert!(
            failures.iter().any(|f| f.starts_with("file_intact[c.bin]: c.bin: changed; before: 3 B")),
            "a rewritten file is not intact, valid or not: {failures:?}"
        );
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(signal_number("SIGTERM"), Some(15));
        assert_eq!(signal_number("INT"), Some(2));
        assert_eq!(signal_number("9"), Some(9));
        assert_eq!(signal_number("SIGFOO"), None);
    }
}
