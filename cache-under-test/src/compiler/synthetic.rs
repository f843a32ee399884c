//! The synthetic compiler: a test double, and documented as exactly that.

use std::time::Duration;

use bytes::Bytes;

use super::{CompileError, KernelCompiler};
use crate::key::{CompilerIdentity, KernelKey, KernelSpec};

/// **Test double** (feature `synthetic`). Produces deterministic artifact text derived from the
/// kernel's key (lower-case hex, so it reads as text like PTX), of a configured size, after
/// sleeping for a configured cost. It compiles nothing: use it for lifecycle tests and fast
/// fuzzing, never to produce kernels to run. [`crate::Backend::Auto`] never chooses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticCompiler {
    identity: CompilerIdentity,
    artifact_bytes: usize,
    cost: Duration,
}

impl Default for SyntheticCompiler {
    /// 4 KiB artifacts, no cost.
    fn default() -> Self {
        Self::new(4096, Duration::ZERO)
    }
}

impl SyntheticCompiler {
    /// A synthetic compiler whose artifacts are `artifact_bytes` long and which takes `cost` per
    /// compile. The configuration is part of its identity, so two configurations never share keys.
    pub fn new(artifact_bytes: usize, cost: Duration) -> Self {
        let identity = CompilerIdentity { name: "synthetic".into(), version: format!("2/{artifact_bytes}B") };
        Self { identity, artifact_bytes, cost }
    }

    /// The artifact this compiler produces for `key`: a BLAKE3 extendable output of the key, in
    /// lower-case hex, `artifact_bytes` long. Scenario checks use it to tell a genuine entry from
    /// a torn or foreign one.
    pub fn artifact_for(&self, key: &KernelKey) -> Bytes {
        let mut raw = vec![0u8; self.artifact_bytes.div_ceil(2)];
        blake3::Hasher::new_derive_key("runtime-cache synthetic artifact v2")
            .update(&key.0)
            .finalize_xof()
            .fill(&mut raw);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text: Vec<u8> =
            raw.iter().flat_map(|byte| [HEX[usize::from(byte >> 4)], HEX[usize::from(byte & 15)]]).collect();
        text.truncate(self.artifact_bytes);
        Bytes::from(text)
    }
}

impl KernelCompiler for SyntheticCompiler {
    fn identity(&self) -> &CompilerIdentity {
        &self.identity
    }

    fn compile(&self, spec: &KernelSpec) -> Result<Bytes, CompileError> {
        if !self.cost.is_zero() {
            std::thread::sleep(self.cost);
        }
        Ok(self.artifact_for(&KernelKey::derive(spec, &self.identity)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_deterministic_sized_and_distinct() {
        let compiler = SyntheticCompiler::new(100, Duration::ZERO);
        let a = compiler.compile(&KernelSpec::new("a", "a", "a")).unwrap();
        let b = compiler.compile(&KernelSpec::new("b", "b", "b")).unwrap();
        assert_eq!(a.len(), 100);
        assert!(std::str::from_utf8(&a).is_ok(), "synthetic artifacts read as text");
        assert_eq!(compiler.compile(&KernelSpec::new("b", "b", "b")).unwrap().len(), 100);
        assert_eq!(SyntheticCompiler::new(7, Duration::ZERO).artifact_for(&KernelKey([0; 32])).len(), 7);
        assert_eq!(a, compiler.compile(&KernelSpec::new("a", "a", "a")).unwrap());
        assert_ne!(a, b);
    }
}
