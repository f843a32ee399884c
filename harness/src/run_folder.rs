//! The run folder: one private folder per run, holding the child's scratch folder and the
//! journal, gone when the last observation that needs it is dropped.
//!
//! ```text
//! $TMPDIR/exit-harness-<harness pid>-XXXXXX/   0700, made by the harness
//! ├── scratch/                                 0700, the child's working folder ({scratch})
//! └── journal.jsonl                            0600, created by the harness (O_EXCL), appended to by the child
//! ```
//!
//! The journal lives beside the scratch folder, not in it, so that listings of the folders under
//! test never show it; and inside the private run folder, so that no other user can plant a
//! symlink in its place. The harness reads the journal through the descriptor it created it
//! with: whatever the child later puts at the journal's path (a FIFO, a symlink to `/dev/zero`),
//! the harness reads the file it made, bounded by [`Limits::journal_cap`](crate::Limits).
//!
//! Removal is synchronous, when the last [`Scratch`] handle is dropped: after judging (a custom
//! oracle may list the scratch folder), and before `run` returns for callers that drop the
//! observation. Folders of harness processes that died without cleaning up (SIGKILL) are swept
//! by the next harness process on its first run: a folder is swept only when it is owned by the
//! same user and the process id in its name is gone.

use std::fmt;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};

use rustix::fs::{Mode, OFlags};

/// The prefix of every run folder's name in the temporary folder.
const PREFIX: &str = "exit-harness-";

/// A run's folders and its journal, prepared before the child starts.
pub(crate) struct RunFolder {
    pub(crate) scratch: Scratch,
    /// The journal's path, for the child's environment.
    pub(crate) journal_path: PathBuf,
    /// The harness's own descriptor of the journal it created, for reading.
    pub(crate) journal: OwnedFd,
}

impl RunFolder {
    /// Makes the run folder (0700), its scratch folder (0700) and the empty journal (0600,
    /// `O_EXCL`), after sweeping the leftovers of dead harness processes once per process.
    pub(crate) fn create() -> std::io::Result<Self> {
        static SWEEP: Once = Once::new();
        SWEEP.call_once(sweep_dead_runs);
        let root = private_temp_folder("run")?.keep();
        let guard = Scratch(Arc::new(Removal { root: root.clone(), scratch: root.join("scratch") }));
        std::fs::create_dir(guard.path())?;
        std::fs::set_permissions(guard.path(), std::fs::Permissions::from_mode(0o700))?;
        let journal_path = root.join("journal.jsonl");
        let journal = rustix::fs::open(
            &journal_path,
            OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(Self { scratch: guard, journal_path, journal })
    }
}

/// A private (0700) folder named `exit-harness-<pid>-<purpose>-XXXXXX` in the temp folder, removed
/// when dropped, and swept like a run folder if this process dies first.
pub(crate) fn private_temp_folder(purpose: &str) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-{purpose}-", std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
}

/// The scratch folder of one run; the whole run folder is removed when the last clone of this
/// handle is dropped. An [`Observation`](crate::Observation) holds one until it is judged.
#[derive(Clone)]
pub struct Scratch(Arc<Removal>);

impl Scratch {
    /// The scratch folder (the child's `{scratch}`).
    pub fn path(&self) -> &Path {
        &self.0.scratch
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scratch").field(&self.0.scratch).finish()
    }
}

struct Removal {
    root: PathBuf,
    scratch: PathBuf,
}

impl Drop for Removal {
    fn drop(&mut self) {
        remove_tree(&self.root);
    }
}

/// Removes `root` and everything in it, first making every folder in it writable again (a child
/// may leave a read-only folder behind); errors are ignored: there is nothing better to do.
fn remove_tree(root: &Path) {
    if std::fs::remove_dir_all(root).is_ok() {
        return;
    }
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(entry.path());
            }
        }
    }
    let _ = std::fs::remove_dir_all(root);
}

/// Removes run folders of this user whose harness process is gone.
fn sweep_dead_runs() {
    let uid = rustix::process::getuid().as_raw();
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)).and_then(|rest| rest.split_once('-')) else {
            continue;
        };
        let Ok(pid) = pid.0.parse::<i32>() else { continue };
        let owned_folder = entry.metadata().is_ok_and(|m| m.is_dir() && m.uid() == uid);
        if owned_folder && !process_exists(pid) {
            remove_tree(&entry.path());
        }
    }
}

/// Whether a process with this id exists (any user's).
fn process_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_exploration_folder_is_private_and_named_for_the_sweep() {
        let folder = private_temp_folder("crash").unwrap();
        let mode = std::fs::metadata(folder.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the traces name every path the program touched");
        let name = folder.path().file_name().unwrap().to_str().unwrap().to_owned();
        let pid = name.strip_prefix(PREFIX).and_then(|rest| rest.split_once('-')).map(|(pid, _)| pid);
        assert_eq!(pid, Some(std::process::id().to_string().as_str()), "the sweep reads the owner's pid from {name}");
    }

    #[test]
    fn folders_of_dead_harness_processes_are_swept_and_live_ones_kept() {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = gone.id();
        gone.wait().unwrap();
        let dead = std::env::temp_dir().join(format!("{PREFIX}{dead_pid}-sweeptest"));
        let alive = std::env::temp_dir().join(format!("{PREFIX}{}-sweeptest", std::process::id()));
        std::fs::create_dir_all(alive.join("scratch/sub")).unwrap();
        // Made under a name no sweep touches, then renamed into place whole: a sweep that other
        // tests of this binary run meanwhile may remove it from then on, never half-made.
        let staging = std::env::temp_dir().join(format!("sweeptest-staging-{}-{dead_pid}", std::process::id()));
        std::fs::create_dir_all(staging.join("scratch/sub")).unwrap();
        std::fs::set_permissions(staging.join("scratch/sub"), std::fs::Permissions::from_mode(0o500)).unwrap();
        std::fs::rename(&staging, &dead).unwrap();
        sweep_dead_runs();
        assert!(!dead.exists(), "a dead harness's folder is swept");
        assert!(alive.exists(), "a live harness's folder is kept");
        std::fs::remove_dir_all(&alive).unwrap();
    }
}
