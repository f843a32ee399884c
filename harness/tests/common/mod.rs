//! Shared helpers of the harness's own tests.
#![allow(dead_code)]

use exit_harness::observation::ValidContent;
use exit_harness::{ChildSpec, FileUnderTest, Observation};

/// The purpose-built test child.
pub const CHILD: &str = env!("CARGO_BIN_EXE_exit-harness-test-child");

/// The test child with these actions; `{scratch}` in them is the run's scratch folder.
pub fn child<const N: usize>(actions: [&str; N]) -> ChildSpec {
    ChildSpec::new(CHILD).args(actions)
}

/// The test child's file format: `valid\n` then one key per line.
pub fn validate(bytes: &[u8]) -> Result<ValidContent, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    let body = text.strip_prefix("valid\n").ok_or_else(|| format!("bad header in {text:?}"))?;
    Ok(ValidContent::with_keys(body.lines()))
}

/// The watched file `cache` (in the scratch folder), validated.
pub fn cache() -> FileUnderTest {
    FileUnderTest::new("cache").validated_by(validate)
}

/// Runs `spec` watching `cache`.
pub fn observe(spec: ChildSpec) -> Observation {
    spec.run(&[cache()]).expect("the run produces an observation")
}
