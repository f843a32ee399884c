//! `registry_bound`: the exit-hook registry never holds more than the live handles.

use super::{Oracle, OracleVerdict, quote_lines};
use crate::observation::Observation;

/// Over the journal's `registry` samples: every `len` is at most its `live`, and (optionally)
/// the last `len` exceeds the first by at most a bound. A journal without samples fails: the
/// oracle never passes on nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryBound {
    max_growth: Option<u64>,
}

impl RegistryBound {
    /// Every sample's `len` <= `live`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also: the registry grows by at most `n` from the first sample to the last (over a churn).
    #[must_use]
    pub fn max_growth(mut self, n: u64) -> Self {
        self.max_growth = Some(n);
        self
    }
}

impl Oracle for RegistryBound {
    fn name(&self) -> &str {
        "registry_bound"
    }

    fn needs_journal(&self) -> bool {
        true
    }

    fn judge(&self, obs: &Observation) -> OracleVerdict {
        let journal = match obs.judgeable_journal() {
            Ok(journal) => journal,
            Err(verdict) => return verdict,
        };
        let samples: Vec<_> = journal.of_kind("registry").collect();
        if samples.is_empty() {
            return OracleVerdict::fail("the journal holds no `registry` samples to judge");
        }
        let malformed: Vec<&str> = samples
            .iter()
            .filter(|e| e.u64_field("len").is_none() || e.u64_field("live").is_none())
            .map(|e| e.raw.as_str())
            .collect();
        if !malformed.is_empty() {
            return OracleVerdict::fail(format!(
                "`registry` samples without integer `len` and `live`:\n{}",
                quote_lines(malformed, 5)
            ));
        }
        let over: Vec<&str> =
            samples.iter().filter(|e| e.u64_field("len") > e.u64_field("live")).map(|e| e.raw.as_str()).collect();
        let mut failures = Vec::new();
        if !over.is_empty() {
            failures.push(format!(
                "{} of {} sample(s) have more registry entries than live handles:\n{}",
                over.len(),
                samples.len(),
                quote_lines(over, 5)
            ));
        }
        if let (Some(bound), Some(first), Some(last)) = (self.max_growth, samples.first(), samples.last()) {
            let growth = last.u64_field("len").unwrap_or(0).saturating_sub(first.u64_field("len").unwrap_or(0));
            if growth > bound {
                failures.push(format!(
                    "the registry grew by {growth} (bound {bound}) from\n    {}\nto\n    {}",
                    first.raw, last.raw
                ));
            }
        }
        if failures.is_empty() { OracleVerdict::Pass } else { OracleVerdict::fail(failures.join("\n")) }
    }
}
