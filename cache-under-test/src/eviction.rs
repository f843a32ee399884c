//! What a save keeps: entries of other builds of a compiler this process uses are pruned, entries
//! unused for longer than [`EvictionPolicy::max_age`] are dropped, and then the least recently
//! used entries go until the file fits [`FormatLimits`] (issue #16, item 5).
//!
//! Known limits of this policy:
//! - "Last used" reaches the file only with a save: a handle whose kernels were all hits is clean
//!   and writes nothing (the autosave contract), so its hits refresh nothing on disk. Entries are
//!   stamped when inserted, and with the time of their last hit by any handle that later saves.
//! - Two processes using *different* builds of one compiler on one file prune each other's
//!   entries at every save (each recompiles what it needs). Set
//!   [`EvictionPolicy::prune_other_builds`] to `false` where that is the normal case.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::format::{self, EntryMeta, FormatLimits};
use crate::key::KernelKey;

/// When a save drops entries besides those that do not fit the [`FormatLimits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// Drop entries not used for this long (by any handle that saved since it used them). `None`
    /// keeps entries of any age (the size and count limits still apply).
    pub max_age: Option<Duration>,
    /// Drop entries made by another build of a compiler this handle's engine uses (e.g. after an
    /// NVRTC upgrade, the old NVRTC's kernels can never be hit again). Entries of compilers this
    /// process does not use, and of unknown origin, are never pruned by this rule.
    pub prune_other_builds: bool,
}

impl Default for EvictionPolicy {
    /// No age limit; prune other builds.
    fn default() -> Self {
        Self { max_age: None, prune_other_builds: true }
    }
}

/// Why a save dropped an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EvictReason {
    /// Made by another build of a compiler in use ([`EvictionPolicy::prune_other_builds`]).
    OtherBuild,
    /// Unused for longer than [`EvictionPolicy::max_age`].
    Age,
    /// Its artifact alone is over [`FormatLimits::max_artifact_bytes`].
    ArtifactTooLarge,
    /// Least recently used, and the file would exceed [`FormatLimits::max_entries`] or
    /// [`FormatLimits::max_file_bytes`] with it.
    Capacity,
}

impl fmt::Display for EvictReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EvictReason::OtherBuild => "another build of the compiler",
            EvictReason::Age => "unused for longer than max_age",
            EvictReason::ArtifactTooLarge => "artifact over max_artifact_bytes",
            EvictReason::Capacity => "least recently used, over the size or count limit",
        })
    }
}

/// One entry a save considers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) key: KernelKey,
    pub(crate) meta: EntryMeta,
    pub(crate) artifact: Bytes,
}

/// The current time in Unix seconds (never 0, which means "unknown" in the file).
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |elapsed| elapsed.as_secs().max(1))
}

/// Why the policy alone (not the size or count limits) drops an entry of this metadata and size.
fn policy_reason(
    meta: &EntryMeta,
    len: u64,
    limits: &FormatLimits,
    policy: &EvictionPolicy,
    builds: &HashMap<u64, u64>,
    now: u64,
) -> Option<EvictReason> {
    if policy.prune_other_builds
        && meta.compiler != 0
        && builds.get(&meta.compiler).is_some_and(|build| *build != meta.build)
    {
        Some(EvictReason::OtherBuild)
    } else if policy
        .max_age
        .is_some_and(|age| meta.last_used != 0 && now.saturating_sub(meta.last_used) > age.as_secs())
    {
        Some(EvictReason::Age)
    } else if len > u64::from(limits.max_artifact_bytes) {
        Some(EvictReason::ArtifactTooLarge)
    } else {
        None
    }
}

/// Whether the policy (other builds, age, artifact size) would drop any of these entries
/// (metadata, artifact length): an append must then become a full rewrite, which evicts them.
/// The size and count limits are the caller's to check.
pub(crate) fn evicts_any(
    entries: impl IntoIterator<Item = (EntryMeta, u64)>,
    limits: &FormatLimits,
    policy: &EvictionPolicy,
    builds: &HashMap<u64, u64>,
    now: u64,
) -> bool {
    entries.into_iter().any(|(meta, len)| policy_reason(&meta, len, limits, policy, builds, now).is_some())
}

/// Splits `candidates` into what a save keeps and what it drops (with why). `builds` maps each
/// compiler tag in use by this process to its current build tag. Deterministic: ties in last use
/// are broken by key.
pub(crate) fn evict(
    candidates: Vec<Candidate>,
    limits: &FormatLimits,
    policy: &EvictionPolicy,
    builds: &HashMap<u64, u64>,
    now: u64,
) -> (Vec<Candidate>, Vec<(KernelKey, EvictReason)>) {
    let mut evicted = Vec::new();
    let mut alive = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let reason = policy_reason(&candidate.meta, candidate.artifact.len() as u64, limits, policy, builds, now);
        match reason {
            Some(reason) => evicted.push((candidate.key, reason)),
            None => alive.push(candidate),
        }
    }
    // Most recently used first; keep while the file fits.
    alive.sort_by(|a, b| b.meta.last_used.cmp(&a.meta.last_used).then(a.key.cmp(&b.key)));
    let mut kept = Vec::with_capacity(alive.len());
    let mut size = format::FILE_OVERHEAD;
    for candidate in alive {
        let with = size + format::ENTRY_OVERHEAD + candidate.artifact.len() as u64;
        if kept.len() < limits.max_entries as usize && with <= limits.max_file_bytes {
            size = with;
            kept.push(candidate);
        } else {
            evicted.push((candidate.key, EvictReason::Capacity));
        }
    }
    (kept, evicted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(n: u8, last_used: u64, len: usize) -> Candidate {
        Candidate {
            key: KernelKey([n; 32]),
            meta: EntryMeta { compiler: 7, build: 1, last_used },
            artifact: Bytes::from(vec![n; len]),
        }
    }

    fn keys(kept: &[Candidate]) -> Vec<u8> {
        let mut keys: Vec<u8> = kept.iter().map(|c| c.key.0[0]).collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn least_recently_used_go_first_until_the_count_fits() {
        let limits = FormatLimits { max_entries: 2, ..FormatLimits::default() };
        let all = vec![candidate(1, 100, 4), candidate(2, 300, 4), candidate(3, 200, 4)];
        let (kept, evicted) = evict(all, &limits, &EvictionPolicy::default(), &HashMap::new(), 400);
        assert_eq!(keys(&kept), [2, 3]);
        assert_eq!(evicted, [(KernelKey([1; 32]), EvictReason::Capacity)]);
    }

    #[test]
    fn the_size_limit_counts_the_whole_encoded_file() {
        let exact = format::encoded_len([10, 10]);
        let limits = FormatLimits { max_file_bytes: exact, ..FormatLimits::default() };
        let all = vec![candidate(1, 1, 10), candidate(2, 2, 10), candidate(3, 3, 10)];
        let (kept, _) = evict(all, &limits, &EvictionPolicy::default(), &HashMap::new(), 4);
        assert_eq!(keys(&kept), [2, 3]);
    }

    #[test]
    fn other_builds_of_a_compiler_in_use_and_old_entries_are_dropped() {
        let mut other_build = candidate(1, 100, 1);
        other_build.meta.build = 2;
        let mut other_compiler = candidate(2, 100, 1);
        other_compiler.meta = EntryMeta { compiler: 8, build: 9, last_used: 100 };
        let mut unknown = candidate(3, 0, 1);
        unknown.meta = EntryMeta::default();
        let old = candidate(4, 10, 1);
        let current = candidate(5, 100, 1);
        let builds = HashMap::from([(7, 1)]);
        let policy = EvictionPolicy { max_age: Some(Duration::from_secs(50)), prune_other_builds: true };
        let all = vec![other_build, other_compiler, unknown, old, current];
        let (kept, mut evicted) = evict(all, &FormatLimits::default(), &policy, &builds, 100);
        assert_eq!(keys(&kept), [2, 3, 5]);
        evicted.sort_by_key(|(key, _)| *key);
        assert_eq!(evicted, [(KernelKey([1; 32]), EvictReason::OtherBuild), (KernelKey([4; 32]), EvictReason::Age)]);
    }
}
