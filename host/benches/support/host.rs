//! Starts the real `darkfactory` binary for a benchmark (each bench that
//! needs one includes this file with `#[path]`).

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `darkfactory serve` on an ephemeral loopback port with `skills` and
/// `data`, logging warnings only: the child and its base URL
/// (`http://127.0.0.1:PORT`), as soon as it listens.
pub fn spawn(skills: &Path, data: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_darkfactory"))
        .args(["serve", "--listen", "127.0.0.1:0", "--skills"])
        .arg(skills)
        .arg("--data")
        .arg(data)
        .env("DARKFACTORY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start darkfactory");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped stdout"))
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("darkfactory listening on ")
        .unwrap_or_else(|| panic!("the host did not start: {line:?}"))
        .to_string();
    (child, url)
}
