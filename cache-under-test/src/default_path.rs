//! Where an engine keeps its kernels when the application does not say (issue #16, item 6), and
//! the environment variables that move or disable it, like `CUDA_CACHE_PATH` /
//! `CUDA_CACHE_DISABLE`, `TRITON_CACHE_DIR` and `CUPY_CACHE_DIR` do for those caches.
//!
//! In order, the first that applies:
//!
//! | variable | effect |
//! | --- | --- |
//! | `RUNTIME_CACHE_DISABLE` set, not `0`/`false`/`no`/`off`/empty | no persisted cache: kernels in memory only |
//! | `RUNTIME_CACHE_PATH=<file>` | the cache file itself |
//! | `RUNTIME_CACHE_DIR=<folder>` | `<folder>/kernels-v3.rtc` |
//! | `XDG_CACHE_HOME=<absolute folder>` | `$XDG_CACHE_HOME/runtime-cache/kernels-v3.rtc` |
//! | `HOME=<folder>` | `$HOME/.cache/runtime-cache/kernels-v3.rtc` |
//! | none of these | no persisted cache ([`DefaultCachePath::Unavailable`]) |
//!
//! The file name carries the format version (`-v2`), so builds that write different format
//! versions never share a default file. The variables apply to the default only
//! ([`crate::RuntimeSettings::default`]): a path the application sets in its settings is used as
//! it is. A folder the cache creates is 0700; an existing one must pass the cache's trust checks
//! (owned by this user, not group/world-writable unless sticky).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::format;

/// Disables the default cache (kernels in memory only) when set to anything but `0`, `false`,
/// `no`, `off` or nothing.
pub const DISABLE_ENV: &str = "RUNTIME_CACHE_DISABLE";
/// The default cache file.
pub const PATH_ENV: &str = "RUNTIME_CACHE_PATH";
/// The folder of the default cache file.
pub const DIR_ENV: &str = "RUNTIME_CACHE_DIR";

/// The default cache file's name: `kernels-v<format version>.rtc`.
pub fn default_file_name() -> String {
    format!("kernels-v{}.rtc", format::VERSION)
}

/// Which variable placed the default cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathSource {
    /// [`PATH_ENV`].
    PathVariable,
    /// [`DIR_ENV`].
    DirVariable,
    /// `XDG_CACHE_HOME`.
    XdgCacheHome,
    /// `HOME` (`~/.cache`).
    Home,
}

impl fmt::Display for PathSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathSource::PathVariable => PATH_ENV,
            PathSource::DirVariable => DIR_ENV,
            PathSource::XdgCacheHome => "XDG_CACHE_HOME",
            PathSource::Home => "HOME",
        })
    }
}

/// The default cache location, as the environment decides it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DefaultCachePath {
    /// Kernels persist in this file.
    Path {
        /// The cache file.
        path: PathBuf,
        /// Which variable placed it.
        source: PathSource,
    },
    /// [`DISABLE_ENV`] is set: kernels stay in memory.
    Disabled {
        /// Its value.
        value: String,
    },
    /// No variable places it (no `HOME`): kernels stay in memory.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl DefaultCachePath {
    /// The file, if kernels persist.
    pub fn path(&self) -> Option<&Path> {
        match self {
            DefaultCachePath::Path { path, .. } => Some(path),
            _ => None,
        }
    }
}

/// The default cache location, read from this process's environment (see the table above).
pub fn default_cache_path() -> DefaultCachePath {
    resolve(|name| std::env::var_os(name))
}

/// The default cache location for an environment given as a lookup function.
pub(crate) fn resolve(env: impl Fn(&str) -> Option<OsString>) -> DefaultCachePath {
    let set = |name: &str| env(name).filter(|value| !value.is_empty());
    if let Some(value) = set(DISABLE_ENV) {
        let text = value.to_string_lossy().trim().to_ascii_lowercase();
        if !matches!(text.as_str(), "" | "0" | "false" | "no" | "off") {
            return DefaultCachePath::Disabled { value: value.to_string_lossy().into_owned() };
        }
    }
    if let Some(path) = set(PATH_ENV) {
        return DefaultCachePath::Path { path: path.into(), source: PathSource::PathVariable };
    }
    if let Some(dir) = set(DIR_ENV) {
        return DefaultCachePath::Path {
            path: PathBuf::from(dir).join(default_file_name()),
            source: PathSource::DirVariable,
        };
    }
    // The XDG base directory spec: a relative XDG_CACHE_HOME is invalid and ignored.
    if let Some(xdg) = set("XDG_CACHE_HOME").map(PathBuf::from).filter(|dir| dir.is_absolute()) {
        return DefaultCachePath::Path {
            path: xdg.join("runtime-cache").join(default_file_name()),
            source: PathSource::XdgCacheHome,
        };
    }
    if let Some(home) = set("HOME") {
        return DefaultCachePath::Path {
            path: PathBuf::from(home).join(".cache").join("runtime-cache").join(default_file_name()),
            source: PathSource::Home,
        };
    }
    DefaultCachePath::Unavailable {
        reason: format!("none of {PATH_ENV}, {DIR_ENV}, an absolute XDG_CACHE_HOME or HOME is set"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)]) -> DefaultCachePath {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| ((*k).to_owned(), OsString::from(v))).collect();
        resolve(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn each_variable_in_its_order() {
        let file = default_file_name();
        assert_eq!(file, "kernels-v3.rtc");
        assert_eq!(
            with(&[("HOME", "/home/u")]),
            DefaultCachePath::Path {
                path: format!("/home/u/.cache/runtime-cache/{file}").into(),
                source: PathSource::Home
            }
        );
        let xdg = with(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x")]);
        assert_eq!(xdg.path(), Some(Path::new(&format!("/x/runtime-cache/{file}"))));
        let relative_xdg = with(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "x")]);
        assert_eq!(relative_xdg.path(), Some(Path::new(&format!("/home/u/.cache/runtime-cache/{file}"))));
        let dir = with(&[("HOME", "/home/u"), ("XDG_CACHE_HOME", "/x"), (DIR_ENV, "/d")]);
        assert_eq!(dir.path(), Some(Path::new(&format!("/d/{file}"))));
        let path = with(&[("HOME", "/home/u"), (DIR_ENV, "/d"), (PATH_ENV, "/p/k.rtc")]);
        assert_eq!(path, DefaultCachePath::Path { path: "/p/k.rtc".into(), source: PathSource::PathVariable });
        assert!(matches!(with(&[(PATH_ENV, "/p/k.rtc"), (DISABLE_ENV, "1")]), DefaultCachePath::Disabled { .. }));
        assert!(matches!(with(&[(DISABLE_ENV, "yes")]), DefaultCachePath::Disabled { .. }));
        for off in ["0", "false", "NO", "off", ""] {
            assert_eq!(with(&[(PATH_ENV, "/p"), (DISABLE_ENV, off)]).path(), Some(Path::new("/p")), "{off}");
        }
        assert!(matches!(with(&[]), DefaultCachePath::Unavailable { .. }));
    }
}
