//! The scenario catalog for `runtime-cache`.
#![forbid(unsafe_code)]
