//! Issue #16, item 6: a default cache under `$XDG_CACHE_HOME` (format version in the name), and
//! environment variables to move or disable it. Seen failing before the fix:
//! `RuntimeSettings::default()` kept kernels in memory only. Each case runs in a child process
//! with its own environment (the variables are read when the settings are built).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use runtime_cache::{
    Backend, CacheOptions, DIR_ENV, DISABLE_ENV, DefaultCachePath, Engine, KernelSpec, PATH_ENV, RuntimeCache,
    RuntimeSettings, SyntheticCompiler, default_cache_path,
};

const TEST: &str = "the_default_cache_follows_the_environment";

/// In the child: builds an engine from `RuntimeSettings::default()`, compiles one kernel and
/// drops it (which saves).
fn child() {
    let expected = std::env::var("TEST_EXPECT").unwrap();
    let settings = RuntimeSettings {
        backend: Backend::Synthetic(SyntheticCompiler::new(64, Duration::ZERO)),
        ..RuntimeSettings::default()
    };
    if expected == "memory" {
        assert_eq!(settings.runtime_cache, None);
        assert!(matches!(default_cache_path(), DefaultCachePath::Disabled { .. }));
    } else {
        assert_eq!(settings.runtime_cache.as_deref(), Some(Path::new(&expected)));
    }
    let engine = Engine::new(settings).unwrap();
    engine.kernel(&KernelSpec::new("k.cu", "// k", "k")).unwrap();
}

#[test]
fn the_default_cache_follows_the_environment() {
    if support::is_child_of(TEST) {
        return child();
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let run = |vars: &[(&str, &Path)], disable: bool, expected: &str| {
        support::rerun_as_child(TEST, |command| {
            for name in ["XDG_CACHE_HOME", PATH_ENV, DIR_ENV, DISABLE_ENV] {
                command.env_remove(name);
            }
            command.env("HOME", root.join("home"));
            for (name, value) in vars {
                command.env(name, value);
            }
            if disable {
                command.env(DISABLE_ENV, "1");
            }
            command.env("TEST_EXPECT", expected);
        });
    };
    let saved =
        |path: &PathBuf| RuntimeCache::open(path, CacheOptions::default()).map(|cache| cache.len()).unwrap_or(0);

    let home_default = root.join("home/.cache/runtime-cache/kernels-v3.rtc");
    run(&[], false, home_default.to_str().unwrap());
    assert_eq!(saved(&home_default), 1, "nothing persisted under ~/.cache");

    let xdg = root.join("xdg");
    let xdg_default = xdg.join("runtime-cache/kernels-v3.rtc");
    run(&[("XDG_CACHE_HOME", &xdg)], false, xdg_default.to_str().unwrap());
    assert_eq!(saved(&xdg_default), 1, "nothing persisted under $XDG_CACHE_HOME");

    let folder = root.join("folder");
    let in_folder = folder.join("kernels-v3.rtc");
    run(&[("XDG_CACHE_HOME", &xdg), (DIR_ENV, &folder)], false, in_folder.to_str().unwrap());
    assert_eq!(saved(&in_folder), 1);

    let file = root.join("exact.rtc");
    run(&[(DIR_ENV, &folder), (PATH_ENV, &file)], false, file.to_str().unwrap());
    assert_eq!(saved(&file), 1);

    let before = support::snapshot(root);
    run(&[(PATH_ENV, &file)], true, "memory");
    assert_eq!(support::snapshot(root), before, "a disabled default cache wrote something");
}
