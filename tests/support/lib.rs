//! Shared helpers for the top-level end-to-end suite in `tests/`.
#![forbid(unsafe_code)]
