//! `exit-harness-test-child`: a purpose-built child program for the harness's own tests.
//!
//! It exists only so the harness can be shown to catch bad children and pass good ones. Usage:
//! `exit-harness-test-child ACTION...`, actions run in order:
//!
//! - `save:PATH` writes a temp file next to PATH, renames it onto PATH, journals `save` and
//!   `committed` (key = the pid)
//! - `merge-save:PATH` like `save`, but keeps the keys already in PATH (read, merge, rename)
//! - `save-unjournaled:PATH` the same rename, but no journal line (a lying journal)
//! - `journal-save:PATH` a `save` journal line without touching the file (another lie)
//! - `write-in-place:PATH` rewrites PATH in place, journals `save`
//! - `garbage:PATH` writes invalid bytes onto PATH (a torn file), no journal line
//! - `stderr:TEXT` prints TEXT to stderr
//! - `registry:LEN:LIVE` journals a registry sample
//! - `marker:NAME` journals a marker
//! - `sleep:MS` sleeps
//! - `hang` sleeps forever
//! - `leak` spawns a grandchild (`sh -c '…; exec sleep 30'`) and does not wait for it
//! - `escape` spawns a grandchild that leaves the process group (`setsid`) and keeps writing
//!   files into the scratch folder, and does not wait for it
//! - `fifo:PATH` replaces PATH with a FIFO
//! - `sparse:PATH:BYTES` makes PATH a sparse file of BYTES bytes
//! - `journal-fifo` replaces the journal with a FIFO; `journal-zero` with a symlink to `/dev/zero`
//! - `journal-garbage` appends a line that is not JSON to the journal
//! - `journal-flood:BYTES` appends about BYTES bytes of valid journal lines
//! - `torn` writes half a journal line and kills itself with SIGKILL
//! - `panic:TEXT` panics with TEXT
//! - `exit:N` exits with status N
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use exit_harness::journal::{self, Event};

fn rename_onto(path: &Path, content: &str) {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, content).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

fn main() {
    let pid = std::process::id().to_string();
    for action in std::env::args().skip(1) {
        let (verb, arg) = action.split_once(':').unwrap_or((&action, ""));
        match verb {
            "save" => {
                let path = Path::new(arg);
                rename_onto(path, &format!("valid\n{pid}\n"));
                let _ = journal::record(&Event::save(path).with("entries", 1));
                let _ = journal::record(&Event::committed(path, [&pid]));
            }
            "merge-save" => {
                let path = Path::new(arg);
                let old = std::fs::read_to_string(path).unwrap_or_else(|_| "valid\n".into());
                rename_onto(path, &format!("{old}{pid}\n"));
                let _ = journal::record(&Event::save(path));
                let _ = journal::record(&Event::committed(path, [&pid]));
            }
            "save-unjournaled" => rename_onto(Path::new(arg), &format!("valid\n{pid}\n")),
            "journal-save" => {
                let _ = journal::record(&Event::save(arg));
            }
            "write-in-place" => {
                std::fs::write(arg, format!("valid\n{pid}\n")).expect("write");
                let _ = journal::record(&Event::save(arg));
            }
            "garbage" => std::fs::write(arg, "vali").expect("write"),
            "stderr" => eprintln!("{arg}"),
            "registry" => {
                let (len, live) = arg.split_once(':').expect("registry:LEN:LIVE");
                let event = Event::registry(len.parse().expect("len"), live.parse().expect("live"));
                let _ = journal::record(&event);
            }
            "marker" => {
                let _ = journal::record(&Event::marker(arg));
            }
            "sleep" => std::thread::sleep(Duration::from_millis(arg.parse().expect("ms"))),
            "hang" => loop {
                std::thread::sleep(Duration::from_secs(3600));
            },
            "leak" => {
                // Wait until the grandchild runs its script, so its command line is known.
                let mut child = std::process::Command::new("sh")
                    .args(["-c", "echo started; exec sleep 30"])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn");
                let mut started = [0u8; 1];
                let _ = std::io::Read::read(&mut child.stdout.take().expect("piped"), &mut started);
                // `echo` ran, but `exec sleep` may not have yet: wait (bounded) until the command
                // line is sleep's, or the harness may read it mid-exec (empty, or the shell's).
                let cmdline = format!("/proc/{}/cmdline", child.id());
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while !std::fs::read(&cmdline).is_ok_and(|line| line.starts_with(b"sleep\0"))
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::mem::forget(child);
            }
            "escape" => {
                let script = r#"echo started; i=0; while :; do i=$((i+1)); : > "$EXIT_HARNESS_SCRATCH/escaped-$i"; sleep 0.005; done"#;
                let mut child = std::process::Command::new("setsid")
                    .args(["sh", "-c", script])
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("spawn setsid");
                let mut started = [0u8; 1];
                let _ = std::io::Read::read(&mut child.stdout.take().expect("piped"), &mut started);
                // `echo` ran, but `exec sleep` may not have yet: wait (bounded) until the command
                // line is sleep's, or the harness may read it mid-exec (empty, or the shell's).
                let cmdline = format!("/proc/{}/cmdline", child.id());
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while !std::fs::read(&cmdline).is_ok_and(|line| line.starts_with(b"sleep\0"))
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::mem::forget(child);
            }
            "fifo" => {
                let _ = std::fs::remove_file(arg);
                assert!(std::process::Command::new("mkfifo").arg(arg).status().expect("mkfifo").success());
            }
            "sparse" => {
                let (path, bytes) = arg.rsplit_once(':').expect("sparse:PATH:BYTES");
                let file = std::fs::File::create(path).expect("create");
                file.set_len(bytes.parse().expect("bytes")).expect("set_len");
            }
            "journal-fifo" | "journal-zero" => {
                let path = std::env::var_os(journal::JOURNAL_ENV).expect("journal env");
                std::fs::remove_file(&path).expect("remove the journal");
                if verb == "journal-fifo" {
                    assert!(std::process::Command::new("mkfifo").arg(&path).status().expect("mkfifo").success());
                } else {
                    std::os::unix::fs::symlink("/dev/zero", &path).expect("symlink");
                }
            }
            "journal-garbage" => {
                let path = std::env::var_os(journal::JOURNAL_ENV).expect("journal env");
                let mut file = std::fs::OpenOptions::new().append(true).open(path).expect("open");
                file.write_all(b"this is not json\n").expect("write");
            }
            "journal-flood" => {
                let bytes: usize = arg.parse().expect("bytes");
                let mut written = 0;
                while written < bytes {
                    let event = Event::new("noise").with("pad", "x".repeat(900));
                    let _ = journal::record(&event);
                    written += 1000;
                }
            }
            "torn" => {
                let path = std::env::var_os(journal::JOURNAL_ENV).expect("journal env");
                let mut file = std::fs::OpenOptions::new().append(true).create(true).open(path).expect("open");
                file.write_all(br#"{"pid":1,"seq":9,"kind":"sa"#).expect("write");
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
                std::thread::sleep(Duration::from_secs(5));
            }
            "panic" => panic!("{arg}"),
            "exit" => std::process::exit(arg.parse().expect("code")),
            other => {
                eprintln!("exit-harness-test-child: unknown action {other:?}");
                std::process::exit(2);
            }
        }
    }
}
