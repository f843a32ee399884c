//! `exit-harness`: runs a resource's scenario in a real child process and judges how it ended.
#![forbid(unsafe_code)]
