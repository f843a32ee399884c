//! runtime-cache (skeleton; filled below)
#![deny(unsafe_code)]
pub mod compiler;
pub mod key;
#[allow(unsafe_code)]
mod sys;
