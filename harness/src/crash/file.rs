//! Crash exploration of a scenario file: the file as `exit-harness run` reads it, plus two
//! optional tables (which `run` accepts and ignores):
//!
//! ```toml
//! [crash]
//! files = ["cache.bin"]        # the files judged old-or-new (default: every file under test)
//! allow = ["*.lock"]           # names allowed in the folder after the recovery, besides what
//!                              # the uncrashed run leaves
//! durable = true               # a power loss after the program ended must keep the new content
//!
//! [recovery]                   # the run on each crash state (default: the scenario, run again)
//! command = ["python3", "check.py", "{scratch}/cache.bin"]
//! env = { KEY = "value" }      # also: cwd, journal, timeout_ms
//! [recovery.expect]            # as [expect]; default: exit code 0, empty stderr
//! exit = "code 0"
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use super::CrashScenario;
use crate::cell::Cell;
use crate::scenario_file::{self, ScenarioFileError};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CrashFormat {
    files: Option<Vec<String>>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    durable: bool,
}

/// The keys a `[recovery]` table may set.
const RECOVERY_KEYS: [&str; 6] = ["command", "env", "cwd", "journal", "timeout_ms", "expect"];

/// Loads the scenario file at `path` as a crash scenario.
pub fn load(path: &Path) -> Result<CrashScenario, ScenarioFileError> {
    load_with_vars(path, &[])
}

/// Like [`load`], with `{env:NAME}` taken from `vars` first.
pub fn load_with_vars(path: &Path, vars: &[(&str, &str)]) -> Result<CrashScenario, ScenarioFileError> {
    let error = |message: String| ScenarioFileError { path: path.to_owned(), line: None, message };
    let text = scenario_file::read_bounded(path)?;
    let cell = scenario_file::parse_with_vars(path, &text, vars)?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
    let crash: CrashFormat = match table.get("crash") {
        Some(value) => value.clone().try_into().map_err(|e: toml::de::Error| error(format!("[crash]: {e}")))?,
        None => CrashFormat::default(),
    };
    let owned_vars: Vec<(String, String)> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let factory = |text: String| -> Arc<dyn Fn() -> Cell + Send + Sync> {
        let path = path.to_owned();
        let vars = owned_vars.clone();
        Arc::new(move || {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            // Parsed once already, so this cannot fail; a failure still yields a cell that fails.
            scenario_file::parse_with_vars(&path, &text, &vars).unwrap_or_else(|e| {
                Cell::new(e.to_string(), "malformed", crate::spec::ChildSpec::new("/nonexistent/malformed-scenario"))
            })
        })
    };
    let recovery_text = match table.get("recovery") {
        None => None,
        Some(toml::Value::Table(recovery)) => {
            let mut merged = table.clone();
            merged.remove("crash");
            merged.remove("recovery");
            merged.insert("expect".into(), toml::Value::Table(toml::Table::new()));
            for (key, value) in recovery {
                if !RECOVERY_KEYS.contains(&key.as_str()) {
                    return Err(error(format!("[recovery]: unknown key `{key}` (expected one of {RECOVERY_KEYS:?})")));
                }
                merged.insert(key.clone(), value.clone());
            }
            let text = toml::to_string(&merged).map_err(|e| error(format!("[recovery]: {e}")))?;
            scenario_file::parse_with_vars(path, &text, vars)
                .map_err(|e| error(format!("[recovery]: {}", e.message)))?;
            Some(text)
        }
        Some(_) => return Err(error("`recovery` must be a table".into())),
    };
    let save = factory(text);
    let mut scenario = CrashScenario {
        name: cell.scenario.name.clone(),
        save,
        recovery: None,
        judged: crash.files,
        allowed: crash.allow,
        durable: crash.durable,
    };
    if let Some(text) = recovery_text {
        scenario.recovery = Some(factory(text));
    }
    Ok(scenario)
}
