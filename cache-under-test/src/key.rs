//! What a kernel is ([`KernelSpec`]) and the stable name it is cached under ([`KernelKey`]).

use std::fmt;

/// Everything that decides what a compiled kernel looks like: the CUDA C++ source, the program
/// name NVRTC reports errors under, the entry points to keep, the compile options and the target.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// CUDA C++ source of the translation unit.
    pub source: String,
    /// Program name, as it appears in compiler diagnostics (e.g. `"saxpy.cu"`).
    pub program_name: String,
    /// `extern "C"` entry points the artifact must export.
    pub entry_points: Vec<String>,
    /// Compiler options, in order (e.g. `"--use_fast_math"`). Order is part of the key.
    pub options: Vec<String>,
    /// Virtual architecture to compile for (e.g. `"compute_80"`); `None` is the compiler default.
    pub arch: Option<String>,
}

impl KernelSpec {
    /// A spec with the given source and a single entry point; no options, default architecture.
    pub fn new(program_name: impl Into<String>, source: impl Into<String>, entry_point: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            program_name: program_name.into(),
            entry_points: vec![entry_point.into()],
            options: Vec::new(),
            arch: None,
        }
    }

    /// Adds a compile option.
    pub fn with_option(mut self, option: impl Into<String>) -> Self {
        self.options.push(option.into());
        self
    }

    /// Sets the target architecture.
    pub fn with_arch(mut self, arch: impl Into<String>) -> Self {
        self.arch = Some(arch.into());
        self
    }
}

/// Which compiler produced an artifact: two compilers (or two versions of one) never share keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompilerIdentity {
    /// Short backend name, e.g. `"nvrtc"` or `"synthetic"`.
    pub name: String,
    /// Version string, e.g. `"12.9"`; for the synthetic compiler, its configuration.
    pub version: String,
}

impl fmt::Display for CompilerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// The 32-byte name of one cached kernel: a BLAKE3 hash over the spec and the compiler identity.
///
/// Stable across processes, platforms and releases of this crate (the encoding below is part of
/// the file format; changing it needs a new format version).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelKey(pub [u8; 32]);

impl KernelKey {
    /// Derives the key of `spec` compiled by `compiler`.
    pub fn derive(spec: &KernelSpec, compiler: &CompilerIdentity) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("runtime-cache kernel key v1");
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(compiler.name.as_bytes());
        field(compiler.version.as_bytes());
        field(spec.program_name.as_bytes());
        field(spec.source.as_bytes());
        field(&(spec.entry_points.len() as u64).to_le_bytes());
        for entry in &spec.entry_points {
            field(entry.as_bytes());
        }
        field(&(spec.options.len() as u64).to_le_bytes());
        for option in &spec.options {
            field(option.as_bytes());
        }
        field(spec.arch.as_deref().unwrap_or("").as_bytes());
        KernelKey(*hasher.finalize().as_bytes())
    }

    /// Lower-case hex, as used in logs and journals.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KernelKey({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for KernelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiler() -> CompilerIdentity {
        CompilerIdentity { name: "synthetic".into(), version: "1".into() }
    }

    #[test]
    fn key_is_stable_and_sensitive_to_every_field() {
        let spec = KernelSpec::new("a.cu", "__global__ void k(){}", "k");
        let key = KernelKey::derive(&spec, &compiler());
        assert_eq!(key, KernelKey::derive(&spec.clone(), &compiler()));
        let variants = [
            KernelSpec { source: "x".into(), ..spec.clone() },
            KernelSpec { program_name: "b.cu".into(), ..spec.clone() },
            KernelSpec { entry_points: vec!["j".into()], ..spec.clone() },
            spec.clone().with_option("-O3"),
            spec.clone().with_arch("compute_80"),
        ];
        for variant in variants {
            assert_ne!(key, KernelKey::derive(&variant, &compiler()), "{variant:?}");
        }
        let other = CompilerIdentity { version: "2".into(), ..compiler() };
        assert_ne!(key, KernelKey::derive(&spec, &other));
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let a = KernelSpec { options: vec!["ab".into()], ..KernelSpec::new("p", "s", "e") };
        let b = KernelSpec { options: vec!["a".into(), "b".into()], ..KernelSpec::new("p", "s", "e") };
        assert_ne!(KernelKey::derive(&a, &compiler()), KernelKey::derive(&b, &compiler()));
    }
}
