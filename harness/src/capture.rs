//! Bounded capture of a child's stdout and stderr.
//!
//! Each stream is read to its end on its own thread, so the child never blocks on a full pipe;
//! only the first `cap` bytes are kept and the rest are counted and noted.

use std::io::Read;
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

/// A stream being read on a thread of its own.
pub(crate) struct Capture {
    rx: mpsc::Receiver<String>,
}

impl Capture {
    /// Starts reading `stream`, keeping its first `cap` bytes.
    pub(crate) fn start(stream: Option<impl Read + Send + 'static>, cap: usize) -> Self {
        let (tx, rx) = mpsc::channel();
        match stream {
            Some(mut stream) => {
                let spawned = thread::Builder::new().name("exit-harness-capture".into()).spawn(move || {
                    let _ = tx.send(read_bounded(&mut stream, cap));
                });
                if spawned.is_err() {
                    // No thread: the stream's end is dropped; the child gets EPIPE, not a hang.
                    let (tx, rx2) = mpsc::channel();
                    let _ = tx.send("[exit-harness: could not start a capture thread]".into());
                    return Self { rx: rx2 };
                }
            }
            None => {
                let _ = tx.send(String::new());
            }
        }
        Self { rx }
    }

    /// The captured text, waiting for the stream's end until `deadline`. A stream still open
    /// then (held by a process that escaped the process group) is reported as such.
    pub(crate) fn finish(self, deadline: Instant) -> String {
        let wait = deadline.saturating_duration_since(Instant::now());
        self.rx
            .recv_timeout(wait)
            .unwrap_or_else(|_| "[exit-harness: stream still open after the process group ended; not captured]".into())
    }
}

/// Reads `stream` to its end, keeping the first `cap` bytes (lossy UTF-8).
fn read_bounded(stream: &mut impl Read, cap: usize) -> String {
    let mut kept = Vec::new();
    let mut dropped: u64 = 0;
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += (n - room) as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("[truncated {dropped} bytes]\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_and_notes_the_rest() {
        let data = [b'x'; 100];
        let text = read_bounded(&mut &data[..], 10);
        assert_eq!(text, "xxxxxxxxxx\n[truncated 90 bytes]\n");
    }
}
