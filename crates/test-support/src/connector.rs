//! The connector's command line as tests and benchmarks run it: a data folder
//! with its config file `c.toml`, a fixed sealing key, `connect` to the
//! emulator as its admin, and `serve` on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::emulator::connect_args;
use crate::process::{spawn_listening, succeed};

/// A fixed test key (base64 of 0..32), so every process opens the same store.
pub const KEY_B64: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The connector binary of the crate being tested, over the data folder
/// `$data`: `test_support::cli!(&data)` in a test or benchmark of `thena-sf`.
#[macro_export]
macro_rules! cli {
    ($data:expr) => {
        $crate::connector::Cli::new(env!("CARGO_BIN_EXE_thena-sf"), $data)
    };
}

/// `thena-sf --config <data>/c.toml`, with [`KEY_B64`].
pub struct Cli {
    bin: PathBuf,
    data: PathBuf,
}

impl Cli {
    pub fn new(bin: impl Into<PathBuf>, data: &Path) -> Cli {
        Cli {
            bin: bin.into(),
            data: data.to_path_buf(),
        }
    }

    /// A command to add arguments to; `THENA_SF_CONFIG` from the test's
    /// environment is removed.
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--config")
            .arg(self.data.join("c.toml"))
            .env("THENA_SF_SECRET_KEY", KEY_B64)
            .env_remove("THENA_SF_CONFIG");
        c
    }

    /// Writes the config file `c.toml`: `data_dir` is the data folder, then `extra` lines.
    pub fn write_config(&self, extra: &str) {
        std::fs::create_dir_all(&self.data).expect("the data folder");
        let config = format!("data_dir = \"{}\"\n{extra}", self.data.display());
        std::fs::write(self.data.join("c.toml"), config).expect("the config file");
    }

    /// The command of `connect <name>` to the emulator at `base` as its
    /// admin, with the webhook token `token`.
    pub fn connect_command(&self, name: &str, base: &str, token: &str) -> Command {
        let mut c = self.command();
        c.args(connect_args(name, base))
            .args(["--webhook-token", token]);
        c
    }

    /// Runs [`Cli::connect_command`] with `extra`; panics unless it succeeds.
    pub fn connect(&self, name: &str, base: &str, token: &str, extra: &[&str]) -> Output {
        succeed(self.connect_command(name, base, token).args(extra))
    }

    /// The command of `serve` on a free port of 127.0.0.1.
    pub fn serve_command(&self) -> Command {
        let mut c = self.command();
        c.args(["serve", "--listen", "127.0.0.1:0"]);
        c
    }

    /// Starts `serve` on a free port: the process and its URL. Its log
    /// (stderr) is discarded, unless `THENA_SF_TEST_LOGS` is set: then it goes
    /// to the test's own stderr (with `RUST_LOG` to choose what).
    pub fn serve(&self) -> (Child, String) {
        let log = if std::env::var_os("THENA_SF_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        spawn_listening(self.serve_command().stderr(log))
    }
}

/// Sends SIGTERM to `child` and waits for it; whether it exited cleanly.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success(), "SIGTERM was sent");
    child.wait().expect("the process ends")
}

/// The bytes of [`KEY_B64`], to open a store the processes wrote.
pub fn key() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}
