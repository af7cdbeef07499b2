//! The reference `warg` CLI (warg-cli 0.10) as a user runs it: each user
//! with a home of its own, without a terminal except where the CLI
//! insists on one (`login`, yank confirmations), which `script` provides.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::tools::{self, output_text, Tool};

/// A valid Wasm module (a custom section), distinct per `tag`.
pub fn wasm(tag: &str) -> Vec<u8> {
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.push(0);
    bytes.push((1 + 4 + tag.len()) as u8);
    bytes.push(4);
    bytes.extend_from_slice(b"test");
    bytes.extend_from_slice(tag.as_bytes());
    bytes
}

/// A `warg` user with its own home, config, cache and data directories.
pub struct Warg {
    /// The binary.
    pub binary: PathBuf,
    /// The user's home (also the working directory).
    pub home: PathBuf,
}

impl Warg {
    /// `warg <args>` in the user's home, stdin closed.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        tools::isolate(&mut command, &self.home)
            .args(args)
            .stdin(Stdio::null());
        command
    }

    /// Runs `warg <args>`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run warg")
    }

    /// Runs and requires success; returns stdout and stderr together.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = output_text(&output);
        assert!(
            output.status.success(),
            "warg {} failed ({}):\n{text}",
            args.join(" "),
            output.status
        );
        text
    }

    /// Runs `warg <args>` on a pseudo-terminal (`script`), typing `answer`
    /// until it exits: the CLI reads confirmations and tokens only from a
    /// terminal.
    pub fn on_terminal(&self, args: &str, answer: &[u8]) -> Output {
        let script = Tool::SCRIPT
            .find()
            .expect("`script` (util-linux) answers the warg CLI's prompts: require Tool::SCRIPT");
        let mut command = Command::new(script);
        tools::isolate(&mut command, &self.home)
            .args([
                "-qec",
                &format!("{} {args}", self.binary.display()),
                "/dev/null",
            ])
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn script");
        let mut stdin = child.stdin.take().expect("stdin");
        // A reply typed before the prompt switched the terminal mode may be
        // discarded, so keep answering until it exits.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "warg {args} did not finish");
            let _ = stdin.write_all(answer);
            let _ = stdin.flush();
            std::thread::sleep(Duration::from_millis(300));
        }
        drop(stdin);
        child.wait_with_output().expect("script")
    }

    /// Configures the registry (flat-file keyring) and, given a token,
    /// logs in on a pseudo-terminal.
    pub fn setup(&self, registry: &str, token: Option<&str>) {
        self.ok(&[
            "config",
            "--registry",
            registry,
            "--keyring-backend",
            "flat-file",
            "--overwrite",
        ]);
        if let Some(token) = token {
            let login = self.on_terminal("login", format!("{token}\r").as_bytes());
            assert!(login.status.success(), "login: {}", output_text(&login));
        }
    }
}
