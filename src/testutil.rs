//! Test helpers: the certificates of `c_tests/harness/certs.sh`, generated once per
//! test run into target/certs.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub fn certdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/certs");
        let st = std::process::Command::new("bash")
            .arg(root.join("c_tests/harness/certs.sh"))
            .arg(&dir)
            .status()
            .expect("run c_tests/harness/certs.sh");
        assert!(st.success(), "c_tests/harness/certs.sh failed");
        dir
    })
}

pub fn cert(name: &str) -> PathBuf {
    certdir().join(name)
}
