//! Bounded capture of a child's stdout and stderr, pumped by the supervisor's poll loop.
//!
//! Each pipe is non-blocking and read whenever `poll(2)` says it is readable, so the child never
//! blocks on a full pipe and no thread is needed. Only the first `cap` bytes are kept; the rest
//! are counted and noted as `[truncated N bytes]`.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use rustix::io::Errno;

/// One captured stream.
pub(crate) struct Capture {
    stream: Option<OwnedFd>,
    kept: Vec<u8>,
    dropped: u64,
    cap: usize,
}

impl Capture {
    /// Captures `stream` (made non-blocking), keeping its first `cap` bytes.
    pub(crate) fn new(stream: Option<impl Into<OwnedFd>>, cap: usize) -> Self {
        let stream = stream.map(Into::into).filter(|fd| rustix::io::ioctl_fionbio(fd, true).is_ok());
        Self { stream, kept: Vec::new(), dropped: 0, cap }
    }

    /// The pipe, while it is open.
    pub(crate) fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.stream.as_ref().map(|fd| fd.as_fd())
    }

    /// Whether the pipe is still open (its writers have not all closed it).
    pub(crate) fn is_open(&self) -> bool {
        self.stream.is_some()
    }

    /// Reads everything available now; closes the pipe at its end.
    pub(crate) fn pump(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        while let Some(fd) = &self.stream {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => self.stream = None,
                Ok(n) => self.keep(&buf[..n]),
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return,
                Err(_) => self.stream = None,
            }
        }
    }

    /// The complete lines kept after byte `*cursor`, moving the cursor past them.
    pub(crate) fn new_lines(&self, cursor: &mut usize) -> Vec<String> {
        let fresh = &self.kept[*cursor..];
        let Some(end) = fresh.iter().rposition(|&b| b == b'\n') else { return Vec::new() };
        *cursor += end + 1;
        String::from_utf8_lossy(&fresh[..end]).lines().map(str::to_owned).collect()
    }

    fn keep(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len()).min(bytes.len());
        self.kept.extend_from_slice(&bytes[..room]);
        self.dropped += (bytes.len() - room) as u64;
    }

    /// The captured text (lossy UTF-8), with notes on truncation and on a pipe still open.
    pub(crate) fn finish(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        let mut note = |line: String| {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&line);
        };
        if self.dropped > 0 {
            note(format!("[truncated {} bytes]\n", self.dropped));
        }
        if self.stream.is_some() {
            note("[exit-harness: stream still open after the process group ended]\n".into());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_head_and_notes_the_rest() {
        let mut capture = Capture::new(None::<OwnedFd>, 10);
        capture.keep(&[b'x'; 60]);
        capture.keep(&[b'y'; 40]);
        assert_eq!(capture.finish(), "xxxxxxxxxx\n[truncated 90 bytes]\n");
    }
}
