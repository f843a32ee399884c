//! Issue #16, item 2: keys that cannot go stale or collide.
//!
//! - A property test: any single change to a spec (source, program name, an in-memory header's
//!   name or contents, the bytes of an included header file, an entry point, an option or the
//!   order of two options, the architecture, the output kind) or to the compiler's build changes
//!   its key.
//! - Per field, a change recompiles (through an engine, counting compiles).
//! - With NVRTC: the reproduction (`#include "scale.cuh"`, `SCALE` 4.0f -> 5.0f was served
//!   stale), nested and in-memory headers, and the include search order the key scanner assumes,
//!   checked against the library itself.

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use proptest::prelude::*;
use runtime_cache::{
    Backend, CompilerIdentity, Engine, KernelKey, KernelOrigin, KernelSpec, Output, RuntimeSettings, SyntheticCompiler,
};

fn compiler() -> CompilerIdentity {
    CompilerIdentity { name: "nvrtc".into(), version: "12.9 build 1".into() }
}

/// One single change to a spec.
#[derive(Clone, Debug)]
enum Change {
    Source(String),
    ProgramName(String),
    HeaderName(String),
    HeaderContents(String),
    AddHeader,
    IncludedFileBytes(String),
    EntryPoint(String),
    AddEntryPoint(String),
    Option(String),
    AddOption(String),
    SwapOptions,
    Arch(Option<String>),
    Output,
    CompilerBuild(String),
}

fn text() -> impl Strategy<Value = String> {
    "[a-z0-9_. -]{0,12}"
}

fn spec_strategy() -> impl Strategy<Value = (String, String, String, Vec<String>, Option<String>)> {
    (text(), text(), text(), proptest::collection::vec(text(), 0..4), proptest::option::of(text()))
}

fn change_strategy() -> impl Strategy<Value = Change> {
    prop_oneof![
        text().prop_map(Change::Source),
        text().prop_map(Change::ProgramName),
        text().prop_map(Change::HeaderName),
        text().prop_map(Change::HeaderContents),
        Just(Change::AddHeader),
        text().prop_map(Change::IncludedFileBytes),
        text().prop_map(Change::EntryPoint),
        text().prop_map(Change::AddEntryPoint),
        text().prop_map(Change::Option),
        text().prop_map(Change::AddOption),
        Just(Change::SwapOptions),
        proptest::option::of(text()).prop_map(Change::Arch),
        Just(Change::Output),
        text().prop_map(Change::CompilerBuild),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_single_change_to_a_spec_changes_its_key(
        (source, header_name, header, options, arch) in spec_strategy(),
        file_bytes in text(),
        change in change_strategy(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let include = dir.path().join("include");
        fs::create_dir(&include).unwrap();
        fs::write(include.join("scale.cuh"), &file_bytes).unwrap();
        let mut spec = KernelSpec::new("k.cu", format!("#include \"scale.cuh\"\n{source}"), "k")
            .with_header(format!("mem/{header_name}"), header)
            .with_include_path(&include);
        spec.options.extend(options);
        spec.arch = arch;
        let mut identity = compiler();
        let before = KernelKey::derive(&spec, &identity);

        let mut changed = spec.clone();
        let real_change = match change {
            Change::Source(s) => { changed.source = format!("{}{s}", changed.source); !s.is_empty() }
            Change::ProgramName(s) => { changed.program_name = format!("x{s}"); true }
            Change::HeaderName(s) => { changed.headers[0].0 = format!("{}{s}", changed.headers[0].0); !s.is_empty() }
            Change::HeaderContents(s) => { changed.headers[0].1.push_str(&s); !s.is_empty() }
            Change::AddHeader => { changed.headers.push(("extra.cuh".into(), String::new())); true }
            Change::IncludedFileBytes(s) => {
                fs::write(include.join("scale.cuh"), format!("{file_bytes}{s}")).unwrap();
                !s.is_empty()
            }
            Change::EntryPoint(s) => { changed.entry_points[0] = format!("k{s}"); !s.is_empty() }
            Change::AddEntryPoint(s) => { changed.entry_points.push(s); true }
            Change::Option(s) => { changed.options[0].push_str(&s); !s.is_empty() }
            Change::AddOption(s) => { changed.options.push(s); true }
            Change::SwapOptions => {
                let last = changed.options.len() - 1;
                changed.options.swap(0, last);
                changed.options != spec.options
            }
            Change::Arch(arch) => { let real = arch != changed.arch; changed.arch = arch; real }
            Change::Output => { changed.output = Output::Cubin; true }
            Change::CompilerBuild(s) => { identity.version.push_str(&s); !s.is_empty() }
        };
        prop_assume!(real_change);
        prop_assert_ne!(before, KernelKey::derive(&changed, &identity), "a change left the key as it was");
    }
}

fn engine(dir: &Path) -> Engine {
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        ..RuntimeSettings::with_cache(dir.join("kernels.rtc"))
    };
    Engine::new(settings).unwrap()
}

/// Gets `spec` and says whether that compiled (and checks that a second get is a hit).
fn compiles(engine: &Engine, spec: &KernelSpec) -> bool {
    let before = engine.stats().compiles;
    let origin = engine.kernel(spec).unwrap().origin;
    assert_eq!(engine.kernel(spec).unwrap().origin, KernelOrigin::CacheHit, "{spec:?} is not cached");
    assert_eq!(engine.stats().compiles - before, u64::from(origin == KernelOrigin::Compiled));
    origin == KernelOrigin::Compiled
}

#[test]
fn a_change_of_each_field_recompiles() {
    let dir = tempfile::tempdir().unwrap();
    let include = dir.path().join("include");
    fs::create_dir(&include).unwrap();
    fs::write(include.join("scale.cuh"), "#define SCALE 4.0f\n").unwrap();
    let engine = engine(dir.path());
    let base = KernelSpec::new("k.cu", "#include \"scale.cuh\"\n// k", "k")
        .with_header("mem.cuh", "#define M 1\n")
        .with_include_path(&include)
        .with_option("--use_fast_math")
        .with_option("-DX=1");
    assert!(compiles(&engine, &base));
    assert!(!compiles(&engine, &base.clone()), "the same spec recompiled");

    let mut swapped = base.clone();
    swapped.options.swap(1, 2);
    let variants: Vec<(&str, KernelSpec)> = vec![
        ("source", KernelSpec { source: format!("{}\n// changed", base.source), ..base.clone() }),
        ("program name", KernelSpec { program_name: "other.cu".into(), ..base.clone() }),
        (
            "in-memory header contents",
            KernelSpec { headers: vec![("mem.cuh".into(), "#define M 2\n".into())], ..base.clone() },
        ),
        (
            "in-memory header name",
            KernelSpec { headers: vec![("mem2.cuh".into(), "#define M 1\n".into())], ..base.clone() },
        ),
        ("entry point", KernelSpec { entry_points: vec!["j".into()], ..base.clone() }),
        ("an added option", base.clone().with_option("-lineinfo")),
        ("option order", swapped),
        ("architecture", base.clone().with_arch("compute_90")),
        ("output", base.clone().with_cubin("sm_90")),
    ];
    for (field, variant) in variants {
        assert!(compiles(&engine, &variant), "a change of the {field} was served from the cache");
    }
    // The included header's bytes: the stale-kernel case.
    fs::write(include.join("scale.cuh"), "#define SCALE 5.0f\n").unwrap();
    assert!(compiles(&engine, &base), "a change of an included header was served from the cache");
    // A compiler build change: another engine on the same file, with another synthetic build.
    drop(engine);
    let other_build = Engine::new(RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(65, Duration::ZERO)),
        ..RuntimeSettings::with_cache(dir.path().join("kernels.rtc"))
    })
    .unwrap();
    assert!(compiles(&other_build, &base), "another compiler build was served the old build's kernel");
}

const SCALED: &str =
    "#include \"scale.cuh\"\nextern \"C\" __global__ void scaled(float* x) { x[threadIdx.x] *= SCALE; }\n";

/// PTX's hex spelling of a float constant, e.g. `0f40800000` for 4.0.
fn ptx_float(value: f32) -> String {
    format!("0f{:08X}", value.to_bits())
}

fn nvrtc_engine(path: &Path) -> Engine {
    Engine::new(RuntimeSettings { backend: Backend::Nvrtc, ..RuntimeSettings::with_cache(path) }).unwrap()
}

/// Issue #16's reproduction, seen failing before the fix: with `#include "scale.cuh"`, changing
/// `SCALE` from 4.0f to 5.0f returned a cache hit with the old constant.
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn a_changed_included_header_recompiles_with_nvrtc() {
    const TEST: &str = "a_changed_included_header_recompiles_with_nvrtc";
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let include = dir.path().join("include");
    fs::create_dir(&include).unwrap();
    fs::write(include.join("scale.cuh"), "#include \"value.cuh\"\n").unwrap();
    fs::write(include.join("value.cuh"), "#define SCALE 4.0f\n").unwrap();
    let spec = KernelSpec::new("scaled.cu", SCALED, "scaled").with_include_path(&include);
    let path = dir.path().join("kernels.rtc");

    let engine = nvrtc_engine(&path);
    let first = engine.kernel(&spec).unwrap();
    assert!(first.ptx().unwrap().contains(&ptx_float(4.0)));
    drop(engine);

    // A nested header changes between runs: the next process must not get the old kernel.
    fs::write(include.join("value.cuh"), "#define SCALE 5.0f\n").unwrap();
    let engine = nvrtc_engine(&path);
    let second = engine.kernel(&spec).unwrap();
    assert_eq!(second.origin, KernelOrigin::Compiled, "a changed header was served from the cache");
    assert!(second.ptx().unwrap().contains(&ptx_float(5.0)), "stale constant:\n{}", second.ptx().unwrap());
    // Both versions stay cached, each under its own key.
    fs::write(include.join("value.cuh"), "#define SCALE 4.0f\n").unwrap();
    let back = engine.kernel(&spec).unwrap();
    assert_eq!(back.origin, KernelOrigin::CacheHit);
    assert_eq!(back.bytes(), first.bytes());
}

/// The search order `includes.rs` assumes, checked against NVRTC itself: for each layout, the
/// constant NVRTC compiled in is the one from the file (or in-memory header) the scanner keyed.
#[test]
#[cfg_attr(
    not(nvrtc_present),
    ignore = "libnvrtc.so.12 not found: run .ci/run, or pip install nvidia-cuda-nvrtc-cu12 and add nvidia/cuda_nvrtc/lib to LD_LIBRARY_PATH"
)]
fn the_key_follows_the_headers_nvrtc_reads() {
    const TEST: &str = "the_key_follows_the_headers_nvrtc_reads";
    if !support::nvrtc_here_or_rerun(TEST) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (folder, value) in [("main", 11.5f32), ("inc", 2.5), ("sub", 3.5), ("inc2", 6.5)] {
        fs::create_dir_all(root.join(folder)).unwrap();
        fs::write(root.join(folder).join("scale.cuh"), format!("#define SCALE {value}f\n")).unwrap();
    }
    fs::write(root.join("sub/wrap.cuh"), "#include \"scale.cuh\"\n").unwrap();
    let main = root.join("main");
    let program = |name: &str| format!("{}/{name}", main.display());
    let inc = root.join("inc");
    let inc2 = root.join("inc2");
    let angle = SCALED.replace("\"scale.cuh\"", "<scale.cuh>");
    let wrapped = SCALED.replace("\"scale.cuh\"", "\"../sub/wrap.cuh\"");
    let cases: Vec<(&str, KernelSpec, f32)> = vec![
        (
            "quoted: the program's folder before -I",
            KernelSpec::new(program("k.cu"), SCALED, "scaled").with_include_path(&inc),
            11.5,
        ),
        ("angle: -I only", KernelSpec::new(program("k.cu"), angle.clone(), "scaled").with_include_path(&inc), 2.5),
        (
            "angle: -I in order",
            KernelSpec::new(program("k.cu"), angle.clone(), "scaled").with_include_path(&inc2).with_include_path(&inc),
            6.5,
        ),
        (
            "-I as two options",
            KernelSpec::new(program("k.cu"), angle.clone(), "scaled")
                .with_option("-I")
                .with_option(inc.display().to_string()),
            2.5,
        ),
        (
            "nested: the includer's folder",
            KernelSpec::new(program("k.cu"), wrapped, "scaled").with_include_path(&inc),
            3.5,
        ),
        (
            "in-memory headers first",
            KernelSpec::new(program("k.cu"), SCALED, "scaled").with_header("scale.cuh", "#define SCALE 7.5f\n"),
            7.5,
        ),
        (
            "pre-include",
            KernelSpec::new(program("k.cu"), SCALED.replace("#include \"scale.cuh\"\n", ""), "scaled")
                .with_option(format!("--pre-include={}/scale.cuh", inc2.display())),
            6.5,
        ),
    ];
    let path = root.join("kernels.rtc");
    for (case, spec, value) in cases {
        let engine = nvrtc_engine(&path);
        let kernel = engine.kernel(&spec).unwrap_or_else(|error| panic!("{case}: {error}"));
        assert!(kernel.ptx().unwrap().contains(&ptx_float(value)), "{case}: NVRTC did not read the {value} header");
        // The header NVRTC read is keyed: change it, and the key changes.
        let before = kernel.key;
        let file = match value {
            11.5 => main.join("scale.cuh"),
            2.5 => inc.join("scale.cuh"),
            3.5 => root.join("sub/scale.cuh"),
            6.5 => inc2.join("scale.cuh"),
            _ => {
                let changed =
                    KernelSpec { headers: vec![("scale.cuh".into(), "#define SCALE 8.5f\n".into())], ..spec.clone() };
                assert_ne!(engine.kernel(&changed).unwrap().key, before, "{case}");
                continue;
            }
        };
        let original = fs::read(&file).unwrap();
        fs::write(&file, "#define SCALE 9.5f\n").unwrap();
        let changed = engine.kernel(&spec).unwrap();
        assert_eq!(changed.origin, KernelOrigin::Compiled, "{case}: served stale");
        assert!(changed.ptx().unwrap().contains(&ptx_float(9.5)), "{case}");
        fs::write(&file, original).unwrap();
    }
}

/// A compiler that rewrites the included header while it "compiles" (as an editor saving during a
/// long compile would): what it compiled may be either version, so it must not be cached under
/// the key of the version read before.
#[derive(Debug)]
struct EditsHeaderWhileCompiling {
    identity: CompilerIdentity,
    header: std::path::PathBuf,
}

impl runtime_cache::KernelCompiler for EditsHeaderWhileCompiling {
    fn identity(&self) -> &CompilerIdentity {
        &self.identity
    }

    fn compile(&self, spec: &KernelSpec) -> Result<bytes::Bytes, runtime_cache::CompileError> {
        let old = fs::read_to_string(&self.header).unwrap();
        fs::write(&self.header, format!("{old}// edited\n")).unwrap();
        Ok(bytes::Bytes::from(spec.source.clone()))
    }
}

#[test]
fn a_header_edited_during_the_compile_is_not_cached_and_a_too_deep_include_chain_is_not_cached() {
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("scale.cuh");
    fs::write(&header, "#define SCALE 4.0f\n").unwrap();
    let compiler = EditsHeaderWhileCompiling {
        identity: CompilerIdentity { name: "edits".into(), version: "1".into() },
        header: header.clone(),
    };
    let settings = RuntimeSettings {
        backend: Backend::Custom(std::sync::Arc::new(compiler)),
        ..RuntimeSettings::with_cache(dir.path().join("kernels.rtc"))
    };
    let engine = Engine::new(settings).unwrap();
    let spec = KernelSpec::new("k.cu", "#include \"scale.cuh\"\n", "k").with_include_path(dir.path());
    assert_eq!(engine.kernel(&spec).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(engine.stats().not_cached, 1);
    assert!(engine.runtime_cache().unwrap().is_empty(), "a kernel compiled while its header changed was cached");
    assert_eq!(engine.kernel(&spec).unwrap().origin, KernelOrigin::Compiled, "served from the cache");

    // An include chain deeper than the scanner follows: keys might miss a header, so no caching.
    let deep = dir.path().join("deep");
    fs::create_dir(&deep).unwrap();
    for level in 0..=70 {
        fs::write(deep.join(format!("h{level}.h")), format!("#include \"h{}.h\"\n", level + 1)).unwrap();
    }
    let synthetic = Engine::new(RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        ..RuntimeSettings::with_cache(dir.path().join("deep.rtc"))
    })
    .unwrap();
    let deep_spec = KernelSpec::new("k.cu", "#include \"h0.h\"\n", "k").with_include_path(&deep);
    assert_eq!(synthetic.kernel(&deep_spec).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(synthetic.kernel(&deep_spec).unwrap().origin, KernelOrigin::Compiled);
    assert_eq!(synthetic.stats().not_cached, 2);
}
