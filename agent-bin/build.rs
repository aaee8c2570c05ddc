//! Embeds the git commit into the version string (`v<semver>+<sha>`), as the product we
//! replace does. Builds outside a git checkout still work: the suffix is then omitted.
use std::process::Command;

fn main() {
    let sha = std::env::var("AGENT_GIT_SHA").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    println!("cargo:rerun-if-env-changed=AGENT_GIT_SHA");
    if let Some(dir) = git_dir() {
        println!("cargo:rerun-if-changed={dir}/HEAD");
        println!("cargo:rerun-if-changed={dir}/refs");
    }
    println!("cargo:rustc-env=AGENT_GIT_SHA={}", sha.unwrap_or_default());
}

fn git_dir() -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--absolute-git-dir"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
