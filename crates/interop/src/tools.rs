//! The external tools the interop tests and benchmarks drive (warg,
//! warg-server, wkg, skopeo, oras-py, docker-registry, `script`, Chromium
//! and chromedriver): where they are, what a test does when one is missing
//! ([`require`]), and how to run them with a home of their own.
//!
//! With `CAIRN_REQUIRE_TOOLS` set (`.ci/run` sets it once the tools are
//! installed) a missing tool fails the test or benchmark. Otherwise (local
//! runs) the test skips: it writes a SKIPPED banner straight to the
//! process's stderr, which libtest does not capture (it captures only the
//! `print!`/`eprint!` macros), so `cargo test` shows it beside `ok`.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The variable that makes a missing tool a failure instead of a skip.
pub const REQUIRE_TOOLS: &str = "CAIRN_REQUIRE_TOOLS";

/// An external tool: what it is, where [`find`] looks for it, and how
/// `.ci/run` installs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The tool as people know it, with its version.
    pub name: &'static str,
    /// The variable that points at it.
    pub env: &'static str,
    /// Its path under `~/.cache/cairn-ci` (where `.ci/run` installs it),
    /// or empty.
    pub cached: &'static str,
    /// An absolute path, or a program name looked up on `PATH`, or empty.
    pub system: &'static str,
    /// How `.ci/run` installs it.
    pub install: &'static str,
}

impl Tool {
    /// The reference `warg` CLI.
    pub const WARG_CLI: Tool = Tool {
        name: "warg-cli 0.10.0 (`warg`)",
        env: "CAIRN_WARG_CLI",
        cached: "warg-cli-0.10.0/bin/warg",
        system: "",
        install: "cargo install warg-cli@0.10.0 --locked --root ~/.cache/cairn-ci/warg-cli-0.10.0",
    };
    /// The reference `warg-server`.
    pub const WARG_SERVER: Tool = Tool {
        name: "warg-server 0.10.0",
        env: "CAIRN_WARG_SERVER",
        cached: "warg-server-0.10.0/bin/warg-server",
        system: "",
        install: "cargo install warg-server@0.10.0 --locked --root \
                  ~/.cache/cairn-ci/warg-server-0.10.0",
    };
    /// `wkg`, the WebAssembly package tool (OCI).
    pub const WKG: Tool = Tool {
        name: "wkg 0.16.1",
        env: "CAIRN_WKG",
        cached: "wkg-0.16.1/bin/wkg",
        system: "",
        install: "cargo install wkg@0.16.1 --locked --root ~/.cache/cairn-ci/wkg-0.16.1",
    };
    /// Debian's `skopeo`.
    pub const SKOPEO: Tool = Tool {
        name: "skopeo",
        env: "CAIRN_SKOPEO",
        cached: "",
        system: "/usr/bin/skopeo",
        install: "apt-get install skopeo",
    };
    /// oras-py: the Python of a venv where the `oras` package is installed.
    pub const ORAS_PY: Tool = Tool {
        name: "oras-py 0.2.43",
        env: "CAIRN_ORAS_PYTHON",
        cached: "oras-0.2.43/bin/python",
        system: "",
        install: "python3 -m venv ~/.cache/cairn-ci/oras-0.2.43, then pip install oras==0.2.43 \
                  into it",
    };
    /// Debian's `docker-registry` (CNCF distribution), the OCI baseline.
    pub const DOCKER_REGISTRY: Tool = Tool {
        name: "docker-registry",
        env: "CAIRN_DOCKER_REGISTRY",
        cached: "",
        system: "/usr/bin/docker-registry",
        install: "apt-get install docker-registry",
    };
    /// util-linux's `script`, a pseudo-terminal for CLIs that want one.
    pub const SCRIPT: Tool = Tool {
        name: "`script` (util-linux)",
        env: "CAIRN_SCRIPT",
        cached: "",
        system: "script",
        install: "apt-get install bsdutils",
    };

    /// Debian's headless Chromium (the web UI's browser test).
    pub const CHROMIUM: Tool = Tool {
        name: "chromium",
        env: "CAIRN_CHROMIUM",
        cached: "",
        system: "/usr/bin/chromium",
        install: "apt-get install chromium",
    };
    /// Debian's `chromedriver`, the WebDriver server that drives Chromium.
    pub const CHROMEDRIVER: Tool = Tool {
        name: "chromedriver",
        env: "CAIRN_CHROMEDRIVER",
        cached: "",
        system: "/usr/bin/chromedriver",
        install: "apt-get install chromium-driver",
    };

    /// Where the tool is, if anywhere (see [`find`]).
    pub fn find(&self) -> Option<PathBuf> {
        find(self.env, self.cached, self.system)
    }

    /// Where [`find`] looks, for messages.
    fn places(&self) -> String {
        let mut places = vec![format!("${}", self.env)];
        if !self.cached.is_empty() {
            places.push(format!("~/.cache/cairn-ci/{}", self.cached));
        }
        if Path::new(self.system).is_absolute() {
            places.push(self.system.to_owned());
        } else if !self.system.is_empty() {
            places.push(format!("`{}` on PATH", self.system));
        }
        places.join(", ")
    }
}

/// A tool: `$<env>` when set, else `~/.cache/cairn-ci/<cached>` (where
/// `.ci/run` installs it), else `system` (an absolute path, or a program
/// name looked up on `PATH`); the first that is a file. An empty `cached`
/// or `system` is not looked at.
pub fn find(env: &str, cached: &str, system: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path)).filter(|p| p.is_file());
    }
    let cached = (!cached.is_empty())
        .then(|| std::env::var_os("HOME"))
        .flatten()
        .map(|home| Path::new(&home).join(".cache/cairn-ci").join(cached));
    let system: Vec<PathBuf> = if system.is_empty() {
        Vec::new()
    } else if Path::new(system).is_absolute() {
        vec![PathBuf::from(system)]
    } else {
        std::env::var_os("PATH")
            .map(|paths| {
                std::env::split_paths(&paths)
                    .map(|dir| dir.join(system))
                    .collect()
            })
            .unwrap_or_default()
    };
    cached.into_iter().chain(system).find(|p| p.is_file())
}

/// What a test (or a benchmark's baseline) does about a tool.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// The tool is there: run it.
    Run(PathBuf),
    /// Missing on a local run: skip, writing this banner.
    Skip(String),
    /// Missing where tools are required: fail with this message.
    Fail(String),
}

/// The decision for `test` given `$CAIRN_REQUIRE_TOOLS` (`required`: set,
/// not empty and not `0` means required) and where the tool was `found`.
pub fn decide(
    test: &str,
    tool: &Tool,
    required: Option<&OsStr>,
    found: Option<PathBuf>,
) -> Decision {
    if let Some(path) = found {
        return Decision::Run(path);
    }
    let Tool {
        name, env, install, ..
    } = tool;
    let places = tool.places();
    if required.is_some_and(|v| !v.is_empty() && v != "0") {
        Decision::Fail(format!(
            "{test}: {name} not found (looked at {places}) and {REQUIRE_TOOLS} is set, so a \
             missing tool is a failure: set {env} to it, or let .ci/run install it ({install})"
        ))
    } else {
        Decision::Skip(format!(
            "\n*** SKIPPED {test}: {name} not found (looked at {places}); set {env} to it, or \
             run .ci/run, which installs it ({install}) ***\n"
        ))
    }
}

/// The tool `test` needs: its path; else, with `CAIRN_REQUIRE_TOOLS` set, a
/// panic naming the tool, its variable and how `.ci/run` installs it; else
/// `None` after a SKIPPED banner written straight to stderr, past libtest's
/// capture, so that a passing `cargo test` still shows it.
#[track_caller]
pub fn require(test: &str, tool: Tool) -> Option<PathBuf> {
    match decide(
        test,
        &tool,
        std::env::var_os(REQUIRE_TOOLS).as_deref(),
        tool.find(),
    ) {
        Decision::Run(path) => Some(path),
        Decision::Skip(banner) => {
            // Not `eprintln!`: libtest captures that for passing tests.
            let _ = std::io::stderr().lock().write_all(banner.as_bytes());
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(required: Option<&str>, found: Option<&str>) -> Decision {
        decide(
            "a_test",
            &Tool::WARG_CLI,
            required.map(OsStr::new),
            found.map(PathBuf::from),
        )
    }

    #[test]
    fn a_found_tool_runs_whatever_the_variable() {
        for required in [None, Some(""), Some("0"), Some("1")] {
            assert_eq!(
                decision(required, Some("/x/warg")),
                Decision::Run(PathBuf::from("/x/warg"))
            );
        }
    }

    #[test]
    fn a_missing_tool_fails_when_tools_are_required() {
        for required in ["1", "yes"] {
            let Decision::Fail(message) = decision(Some(required), None) else {
                panic!("{required}: not a failure");
            };
            for part in [
                "a_test",
                "warg-cli 0.10.0",
                "CAIRN_WARG_CLI",
                "CAIRN_REQUIRE_TOOLS",
                ".ci/run",
                "cargo install warg-cli@0.10.0",
                "~/.cache/cairn-ci/warg-cli-0.10.0/bin/warg",
            ] {
                assert!(message.contains(part), "{part} not in {message}");
            }
        }
    }

    #[test]
    fn a_missing_tool_skips_with_a_banner_otherwise() {
        for required in [None, Some(""), Some("0")] {
            let Decision::Skip(banner) = decision(required, None) else {
                panic!("{required:?}: not a skip");
            };
            for part in [
                "*** SKIPPED a_test",
                "warg-cli 0.10.0",
                "CAIRN_WARG_CLI",
                ".ci/run",
            ] {
                assert!(banner.contains(part), "{part} not in {banner}");
            }
        }
    }

    #[test]
    fn messages_say_where_a_system_tool_was_looked_for() {
        assert_eq!(Tool::SKOPEO.places(), "$CAIRN_SKOPEO, /usr/bin/skopeo");
        assert_eq!(Tool::SCRIPT.places(), "$CAIRN_SCRIPT, `script` on PATH");
        assert_eq!(
            Tool::CHROMEDRIVER.places(),
            "$CAIRN_CHROMEDRIVER, /usr/bin/chromedriver"
        );
    }
}
