//! What a kernel is ([`KernelSpec`]) and the stable name it is cached under ([`KernelKey`]).

use std::fmt;
use std::path::Path;

use crate::includes;

/// What the compiler produces for a [`KernelSpec`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Output {
    /// PTX text (for a virtual architecture, `compute_XX`, or the compiler's default): portable,
    /// JIT-compiled by the driver when loaded.
    #[default]
    Ptx,
    /// A CUBIN for one real architecture (`sm_XX`, in [`KernelSpec::arch`]): loads without JIT.
    Cubin,
}

/// Everything that decides what a compiled kernel looks like: the CUDA C++ source, the program
/// name NVRTC reports errors under, the in-memory headers, the entry points to keep, the compile
/// options, the target architecture and the output kind.
///
/// Its [`KernelKey`] also covers the bytes of every header file the source includes (see
/// [`KernelKey::derive`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KernelSpec {
    /// CUDA C++ source of the translation unit.
    pub source: String,
    /// Program name, as it appears in compiler diagnostics (e.g. `"saxpy.cu"`). Its folder part is
    /// where NVRTC looks first for the source's `#include "..."` files (none: the current folder).
    pub program_name: String,
    /// NVRTC's in-memory headers, `(name, contents)`: an `#include` of exactly `name` reads
    /// `contents` instead of any file.
    pub headers: Vec<(String, String)>,
    /// `extern "C"` entry points the artifact must export.
    pub entry_points: Vec<String>,
    /// Compiler options, exactly as given and in order (e.g. `"--use_fast_math"`,
    /// `"--include-path=include"`). Order is part of the key.
    pub options: Vec<String>,
    /// Architecture to compile for: virtual (`"compute_80"`) for PTX, real (`"sm_80"`) for a
    /// CUBIN; `None` is the compiler's default. Passed as `--gpu-architecture=<arch>` after the
    /// options.
    pub arch: Option<String>,
    /// PTX or CUBIN.
    pub output: Output,
}

impl KernelSpec {
    /// A spec with the given source and a single entry point; no options, default architecture,
    /// PTX output.
    pub fn new(program_name: impl Into<String>, source: impl Into<String>, entry_point: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            program_name: program_name.into(),
            headers: Vec::new(),
            entry_points: vec![entry_point.into()],
            options: Vec::new(),
            arch: None,
            output: Output::Ptx,
        }
    }

    /// Adds a compile option (appended: order is kept, and is part of the key).
    pub fn with_option(mut self, option: impl Into<String>) -> Self {
        self.options.push(option.into());
        self
    }

    /// Adds an include folder (`--include-path=<dir>`): the files the source includes from it
    /// are keyed by their contents.
    pub fn with_include_path(self, dir: impl AsRef<Path>) -> Self {
        let option = format!("--include-path={}", dir.as_ref().display());
        self.with_option(option)
    }

    /// Defines a preprocessor macro (`-D<name>=<value>`).
    pub fn with_define(self, name: &str, value: &str) -> Self {
        self.with_option(format!("-D{name}={value}"))
    }

    /// Adds an in-memory header: `#include "<name>"` (or `<name>`) reads `contents`.
    pub fn with_header(mut self, name: impl Into<String>, contents: impl Into<String>) -> Self {
        self.headers.push((name.into(), contents.into()));
        self
    }

    /// Adds another entry point the artifact must export.
    pub fn with_entry_point(mut self, entry_point: impl Into<String>) -> Self {
        self.entry_points.push(entry_point.into());
        self
    }

    /// Sets the target architecture (`"compute_80"` for PTX).
    pub fn with_arch(mut self, arch: impl Into<String>) -> Self {
        self.arch = Some(arch.into());
        self
    }

    /// Asks for a CUBIN for the real architecture `sm` (e.g. `"sm_80"`) instead of PTX.
    pub fn with_cubin(mut self, sm: impl Into<String>) -> Self {
        self.arch = Some(sm.into());
        self.output = Output::Cubin;
        self
    }

    /// Appends cudarc's compile options, translated exactly as `cudarc::nvrtc::compile_ptx_with_opts`
    /// passes them to NVRTC (same strings, same order; including cudarc 0.19's quirk of passing
    /// `use_fast_math: Some(true)` as `--fmad=true`), so a kernel compiled through the cache is
    /// the kernel cudarc would have compiled. `opts.name`, if set, becomes the program name.
    #[cfg(feature = "cudarc")]
    pub fn with_cudarc_options(mut self, opts: cudarc::nvrtc::CompileOptions) -> Self {
        let mut options = Vec::new();
        if let Some(v) = opts.ftz {
            options.push(format!("--ftz={v}"));
        }
        if let Some(v) = opts.prec_sqrt {
            options.push(format!("--prec-sqrt={v}"));
        }
        if let Some(v) = opts.prec_div {
            options.push(format!("--prec-div={v}"));
        }
        if let Some(v) = opts.fmad {
            options.push(format!("--fmad={v}"));
        }
        if opts.use_fast_math == Some(true) {
            options.push("--fmad=true".into());
        }
        if let Some(count) = opts.maxrregcount {
            options.push(format!("--maxrregcount={count}"));
        }
        for path in opts.include_paths {
            options.push(format!("--include-path={path}"));
        }
        if let Some(arch) = opts.arch {
            options.push(format!("--gpu-architecture={arch}"));
        }
        options.extend(opts.options);
        self.options.extend(options);
        if let Some(name) = opts.name {
            self.program_name = name;
        }
        self
    }

    /// The options as passed to the compiler: [`options`](Self::options), then
    /// `--gpu-architecture=<arch>` if [`arch`](Self::arch) is set.
    pub fn compiler_options(&self) -> Vec<String> {
        let mut options = self.options.clone();
        if let Some(arch) = &self.arch {
            options.push(format!("--gpu-architecture={arch}"));
        }
        options
    }
}

/// Which compiler produced an artifact: two compilers (or two builds of one) never share keys.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CompilerIdentity {
    /// Short backend name, e.g. `"nvrtc"` or `"synthetic"`.
    pub name: String,
    /// The exact build, e.g. `"12.9 build 31f50d4d..."` for NVRTC (its version and the GNU
    /// build ids of libnvrtc and its builtins library); for the synthetic compiler, its
    /// configuration.
    pub version: String,
}

impl CompilerIdentity {
    /// 8 bytes naming the compiler (not its build), stored with each entry: a save prunes
    /// entries of the same compiler with another [`build_tag`](Self::build_tag).
    pub fn compiler_tag(&self) -> u64 {
        tag("runtime-cache compiler tag v1", &[self.name.as_bytes()])
    }

    /// 8 bytes naming the compiler's exact build, stored with each entry.
    pub fn build_tag(&self) -> u64 {
        tag("runtime-cache build tag v1", &[self.name.as_bytes(), self.version.as_bytes()])
    }
}

/// A nonzero 8-byte tag (0 means "unknown" in the file format).
fn tag(context: &str, parts: &[&[u8]]) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key(context);
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    let bytes = hasher.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes")).max(1)
}

impl fmt::Display for CompilerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.version)
    }
}

/// The 32-byte name of one cached kernel: a BLAKE3 hash over the spec, the header files it
/// includes and the compiler identity.
///
/// Stable across processes, platforms and releases of this crate (changing the encoding changes
/// every key: old entries are then never hit, and a save prunes them as entries of another build
/// only if their compiler tags say so, so the encoding is versioned in its derivation context).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KernelKey(pub [u8; 32]);

impl KernelKey {
    /// Derives the key of `spec` compiled by `compiler`: the compiler's name and exact build, the
    /// program name, the source, every in-memory header (name and contents), the bytes of every
    /// header file the source includes (found as NVRTC finds them: see the `includes` rules in
    /// the crate docs), the entry points, the options exactly as given (order matters), the
    /// architecture and the output kind. Each field is length-prefixed, so no two specs collide
    /// by moving bytes across a field boundary.
    ///
    /// This reads the included header files (a few `stat`s and reads per kernel).
    pub fn derive(spec: &KernelSpec, compiler: &CompilerIdentity) -> Self {
        Self::derive_with(spec, compiler, &includes::scan(spec).digest)
    }

    /// The key with an include digest computed already.
    pub(crate) fn derive_with(spec: &KernelSpec, compiler: &CompilerIdentity, include_digest: &[u8; 32]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("runtime-cache kernel key v2");
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(compiler.name.as_bytes());
        field(compiler.version.as_bytes());
        field(spec.program_name.as_bytes());
        field(spec.source.as_bytes());
        field(&(spec.headers.len() as u64).to_le_bytes());
        for (name, contents) in &spec.headers {
            field(name.as_bytes());
            field(contents.as_bytes());
        }
        field(include_digest);
        field(&(spec.entry_points.len() as u64).to_le_bytes());
        for entry in &spec.entry_points {
            field(entry.as_bytes());
        }
        field(&(spec.options.len() as u64).to_le_bytes());
        for option in &spec.options {
            field(option.as_bytes());
        }
        match &spec.arch {
            None => field(b"\0default"),
            Some(arch) => field(arch.as_bytes()),
        }
        field(match spec.output {
            Output::Ptx => b"ptx",
            Output::Cubin => b"cubin",
        });
        KernelKey(*hasher.finalize().as_bytes())
    }

    /// A key for [`crate::Engine::get_or_compile`]: BLAKE3 over `parts`, each length-prefixed, in
    /// a context of its own (never equal to a [`derive`](Self::derive)d key). Put everything that
    /// decides the artifact in `parts`: compiler build, source, headers, options, target.
    pub fn from_parts(parts: &[&[u8]]) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("runtime-cache custom key v1");
        hasher.update(&(parts.len() as u64).to_le_bytes());
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
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
            spec.clone().with_header("h.cuh", ""),
            KernelSpec { output: Output::Cubin, ..spec.clone() },
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
        let header = KernelSpec::new("p", "s", "e").with_header("ab", "c");
        let moved = KernelSpec::new("p", "s", "e").with_header("a", "bc");
        assert_ne!(KernelKey::derive(&header, &compiler()), KernelKey::derive(&moved, &compiler()));
        assert_ne!(
            KernelKey::derive(&KernelSpec::new("p", "s", "e").with_arch(""), &compiler()),
            KernelKey::derive(&KernelSpec::new("p", "s", "e"), &compiler()),
            "an empty architecture must not collide with the default"
        );
    }

    #[test]
    fn custom_keys_never_equal_spec_keys_and_keep_part_boundaries() {
        assert_ne!(KernelKey::from_parts(&[b"ab"]), KernelKey::from_parts(&[b"a", b"b"]));
        assert_ne!(KernelKey::from_parts(&[]), KernelKey::from_parts(&[b""]));
    }

    #[test]
    fn tags_are_nonzero_and_separate_builds() {
        let a = compiler();
        let b = CompilerIdentity { version: "2".into(), ..compiler() };
        assert_eq!(a.compiler_tag(), b.compiler_tag());
        assert_ne!(a.build_tag(), b.build_tag());
        assert_ne!(a.compiler_tag(), 0);
    }
}
