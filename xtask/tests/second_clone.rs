//! Two clones share one build cache (`~/.cache/baton/target`): an xtask binary built in the first
//! must work on the second clone's files when it runs there, never on the first's.

use std::path::Path;
use std::process::Command;

/// A checkout with a workspace manifest and an xtask package (enough for the xtask to find it).
fn checkout(dir: &Path) {
    std::fs::create_dir_all(dir.join("xtask")).unwrap();
    std::fs::write(dir.join("Cargo.toml"), "[workspace]\nmembers = [\"xtask\"]\nresolver = \"2\"\n").unwrap();
    std::fs::write(
        dir.join("xtask/Cargo.toml"),
        "[package]\nname = \"xtask\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("xtask/src")).unwrap();
    std::fs::write(dir.join("xtask/src/main.rs"), "fn main() {}\n").unwrap();
}

fn root_seen(dir: &Path, manifest_dir: Option<&Path>) -> String {
    let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
    command.arg("where").current_dir(dir).env("CARGO_TARGET_DIR", "/shared/target");
    match manifest_dir {
        Some(manifest_dir) => command.env("CARGO_MANIFEST_DIR", manifest_dir),
        None => command.env_remove("CARGO_MANIFEST_DIR"),
    };
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let text = String::from_utf8(output.stdout).unwrap();
    text.lines().find_map(|l| l.strip_prefix("root=")).unwrap().to_owned()
}

#[test]
fn run_from_a_second_clone_the_xtask_works_on_that_clone() {
    let second = tempfile::tempdir().unwrap();
    checkout(second.path());
    let second_root = second.path().canonicalize().unwrap();
    // As `cargo xtask` runs it there: cargo names the second clone's xtask package.
    let seen = root_seen(second.path(), Some(&second_root.join("xtask")));
    assert_eq!(Path::new(&seen), second_root);
    // Run directly from inside the second clone: cargo locates its workspace.
    let seen = root_seen(&second_root.join("xtask/src"), None);
    assert_eq!(Path::new(&seen), second_root);
    // Never the checkout the binary was built in.
    assert_ne!(Path::new(&seen), Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
}
