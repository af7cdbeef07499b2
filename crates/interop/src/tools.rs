//! The external tools the interop tests and benchmarks drive (warg,
//! warg-server, wkg, skopeo, oras-py): where they are and how to run them
//! with a home of their own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A tool: `$<env>` when set, else `~/.cache/cairn-ci/<cached>` (where
/// `.ci/run` installs it) if that exists, else `system` if that exists.
/// An empty `cached` or `system` is not looked at.
pub fn find(env: &str, cached: &str, system: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let cached = (!cached.is_empty())
        .then(|| std::env::var_os("HOME"))
        .flatten()
        .map(|home| Path::new(&home).join(".cache/cairn-ci").join(cached));
    cached
        .into_iter()
        .chain((!system.is_empty()).then(|| PathBuf::from(system)))
        .find(|p| p.is_file())
}

/// Runs `command` with only `PATH` from this environment, in `home`, with
/// `HOME` and the XDG config, cache and data directories inside it.
pub fn isolate<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("XDG_DATA_HOME", home.join("data"))
        .current_dir(home)
}

/// A finished command's stdout and stderr, as text.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
