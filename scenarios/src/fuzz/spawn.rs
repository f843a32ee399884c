//! Runs a case the ordinary way: `scenario-child fuzz-case CASE_JSON`, spawned and supervised by
//! the harness's runner (own process group, timeout, inotify black box, bounded output). Slower
//! than the [fork server](super::fork_server), and the one `repro` uses: its observation carries
//! the black box's counts too.

use std::path::Path;
use std::time::Duration;

use exit_harness::{ChildSpec, FileUnderTest, Observation, RunError};

use super::ops::Case;
use crate::catalog::cache_file;
use crate::defects::{Defect, FAILPOINTS_ENV};

/// The child program's first argument for a spawned case.
pub const FUZZ_CASE_ARG: &str = "fuzz-case";

/// How long a spawned case may run before the harness ends it.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(20);

/// The files a case's observation covers: every cache file the case names, validated by decoding.
pub fn files_under_test(case: &Case) -> Vec<FileUnderTest> {
    case.files().iter().map(|name| cache_file(name)).collect()
}

/// How `child` (the `scenario-child` program) is spawned on `case`, against `defect` of the
/// defect zoo if given.
pub fn spec(child: &Path, case: &Case, defect: Option<Defect>) -> ChildSpec {
    let spec = ChildSpec::new(child).arg(FUZZ_CASE_ARG).arg(case.to_arg()).timeout(CASE_TIMEOUT);
    match defect {
        Some(defect) => spec.env(FAILPOINTS_ENV, defect.failpoints()),
        None => spec.env_remove(FAILPOINTS_ENV),
    }
}

/// Spawns `child` on `case` (see [`spec`]) and returns what the harness observed.
pub fn run_spawned(child: &Path, case: &Case, defect: Option<Defect>) -> Result<Observation, RunError> {
    spec(child, case, defect).run(&files_under_test(case))
}
