//! `cargo xtask dist`: every release package, for every host the product supports, in one
//! command. See docs/packaging.md for what each file is and how to check it.
//!
//! Reproducible: every archive and package is stamped with `SOURCE_DATE_EPOCH` (default:
//! the time of the checked-out commit), its entries sorted and owned by root, so two runs
//! on the same commit give byte-identical files.

mod archive;
mod build;
mod linux;
mod macos;
mod sums;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::host;
use build::Target;

/// `cargo xtask dist --help`.
pub const USAGE: &str = "\
cargo xtask dist [--target NAME]... [--out DIR] [--macos-binary PATH] [--sign SECRET_KEY]
                 [--channel NAME] [--serial N] [--expires-days N] [--min-from-version V]

Builds the release packages into dist/ (or --out):
  linux-x86_64, linux-aarch64  static (musl) agent: .tar.gz, .deb, .rpm
  windows-x86_64               agent.exe in a .zip (mingw-w64)
  macos                        SekoiaEndpointAgent.app zipped, from a prebuilt Mach-O binary
                               (--macos-binary or ENDPOINT_AGENT_MACOS_BINARY; it cannot be
                               linked on Linux, so without one macOS is skipped with a note)
plus update/manifest.json (the updater's manifest) with the raw binaries it names, and
SHA256SUMS over everything. With --sign (or ENDPOINT_AGENT_MINISIGN_KEY; password of an
encrypted key in ENDPOINT_AGENT_MINISIGN_PASSWORD) SHA256SUMS and the manifest are signed
with minisign. --target may be repeated (default: all four).

Reproducible: SOURCE_DATE_EPOCH (default: the commit time) stamps every entry; the
manifest's serial defaults to it and its expiry to 90 days after it.";

const MACOS: &str = "macos";

#[derive(Debug)]
struct Options {
    targets: Vec<Target>,
    macos: bool,
    out: PathBuf,
    macos_binary: Option<PathBuf>,
    sign: Option<sums::SigningKey>,
    channel: String,
    serial: Option<u64>,
    expires_days: u64,
    min_from_version: String,
}

fn parse(root: &Path, args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        targets: Vec::new(),
        macos: false,
        out: root.join("dist"),
        macos_binary: std::env::var_os("ENDPOINT_AGENT_MACOS_BINARY")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from),
        sign: std::env::var_os("ENDPOINT_AGENT_MINISIGN_KEY")
            .filter(|v| !v.is_empty())
            .map(|k| sums::SigningKey {
                secret_key: PathBuf::from(k),
                password: None,
            }),
        channel: "stable".into(),
        serial: None,
        expires_days: 90,
        min_from_version: "0.0.0".into(),
    };
    let mut explicit = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{arg} needs a value\n\n{USAGE}"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Err(USAGE.to_owned()),
            "--target" => {
                explicit = true;
                let name = value()?;
                if name == MACOS {
                    o.macos = true;
                } else {
                    let t = build::TARGETS
                        .iter()
                        .find(|t| t.name == name)
                        .ok_or_else(|| format!("unknown target `{name}`\n\n{USAGE}"))?;
                    if !o.targets.contains(t) {
                        o.targets.push(*t);
                    }
                }
            }
            "--out" => o.out = PathBuf::from(value()?),
            "--macos-binary" => o.macos_binary = Some(PathBuf::from(value()?)),
            "--sign" => {
                o.sign = Some(sums::SigningKey {
                    secret_key: PathBuf::from(value()?),
                    password: None,
                })
            }
            "--channel" => o.channel = value()?,
            "--serial" => o.serial = Some(value()?.parse().map_err(|e| format!("--serial: {e}"))?),
            "--expires-days" => {
                o.expires_days = value()?
                    .parse()
                    .map_err(|e| format!("--expires-days: {e}"))?
            }
            "--min-from-version" => o.min_from_version = value()?,
            other => return Err(format!("unknown argument `{other}`\n\n{USAGE}")),
        }
    }
    if !explicit {
        o.targets = build::TARGETS.to_vec();
        o.macos = true;
    }
    if let Some(key) = &mut o.sign {
        key.password = std::env::var("ENDPOINT_AGENT_MINISIGN_PASSWORD").ok();
    }
    Ok(o)
}

/// Runs `cargo xtask dist` with `args`.
pub fn main(root: &Path, args: &[String]) -> Result<(), String> {
    let o = parse(root, args)?;
    let version = env!("CARGO_PKG_VERSION");
    let epoch = source_date_epoch(root)?;
    let git_sha = git_sha(root);
    prerequisites(&o)?;
    let macos_binary = match (&o.macos_binary, o.macos) {
        (Some(p), true) => {
            Some(fs::read(p).map_err(|e| format!("--macos-binary {}: {e}", p.display()))?)
        }
        _ => None,
    };
    let mut notes = Vec::new();
    if o.macos && macos_binary.is_none() {
        let note = "macOS: skipped: no prebuilt Mach-O binary was given (the macOS agent \
                    cannot be linked on Linux; build it on a Mac and pass --macos-binary PATH \
                    or ENDPOINT_AGENT_MACOS_BINARY)";
        if o.targets.is_empty() {
            return Err(note.to_owned());
        }
        notes.push(note.to_owned());
    }

    prepare_out_dir(root, &o.out)?;
    let mut updates = Vec::new();
    for target in &o.targets {
        let bin = build::build(root, target, &git_sha)?;
        let data = fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        notes.push(check_binary(target, &bin, &data, version)?);
        let written = package(target, &data, version, epoch, &o.out)?;
        eprintln!("xtask dist: {}: {}", target.name, written.join(", "));
        updates.push(sums::UpdateFile {
            target: target.name.to_owned(),
            url: sums::update_url(version, target.name, target.exe),
            data,
        });
    }
    if let Some(data) = macos_binary {
        let name = macos::target_name(&data)?;
        let zip = macos::app_zip(&o.out.join(".macos-staging"), version, &data, epoch)?;
        let file = format!("{}-{version}-macos.zip", linux::PACKAGE);
        write(&o.out.join(&file), &zip)?;
        notes.push(format!(
            "macOS: {file} from the prebuilt {name} binary (not run here; sign it with \
             the entitlements in Contents/Resources on a Mac)"
        ));
        updates.push(sums::UpdateFile {
            target: name.to_owned(),
            url: sums::update_url(version, name, ""),
            data,
        });
    }

    let update_dir = o.out.join(sums::UPDATE_DIR);
    for u in &updates {
        let path = update_dir.join(&u.url);
        write(&path, &u.data)?;
        make_executable(&path)?;
    }
    let settings = sums::ManifestSettings {
        channel: o.channel.clone(),
        serial: o.serial.unwrap_or(epoch),
        version: version.to_owned(),
        expires: sums::rfc3339_after(epoch, o.expires_days)?,
        min_from_version: o.min_from_version.clone(),
    };
    let manifest_path = update_dir.join(sums::MANIFEST);
    write(
        &manifest_path,
        sums::manifest(&settings, &updates).as_bytes(),
    )?;
    if let Some(key) = &o.sign {
        sums::minisign(
            key,
            &manifest_path,
            &sums::manifest_trusted_comment(&settings),
        )?;
    }
    let sums_path = o.out.join(sums::SUMS);
    write(&sums_path, sums::sha256sums(&o.out)?.as_bytes())?;
    if let Some(key) = &o.sign {
        sums::minisign(
            key,
            &sums_path,
            &format!("{} {version} {}", linux::PACKAGE, sums::SUMS),
        )?;
    } else {
        notes.push("not signed: pass --sign SECRET_KEY to sign SHA256SUMS and the update manifest with minisign".into());
    }
    println!("{}", fs::read_to_string(&sums_path).unwrap_or_default());
    for note in notes {
        println!("note: {note}");
    }
    println!("dist: {}", o.out.display());
    Ok(())
}

/// Writes the packages of one built target and returns their file names.
fn package(
    target: &Target,
    binary: &[u8],
    version: &str,
    epoch: u64,
    out: &Path,
) -> Result<Vec<String>, String> {
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    fn io(what: &'static str) -> impl Fn(std::io::Error) -> String {
        move |e| format!("{what}: {e}")
    }
    if target.is_linux() {
        let b = linux::Build {
            version,
            arch: target.arch(),
            binary,
            mtime: epoch,
        };
        files.push((
            linux::tarball_name(version, b.arch),
            linux::tarball(&b).map_err(io("tarball"))?,
        ));
        files.push((
            linux::deb_name(version, b.arch),
            linux::deb(&b).map_err(io(".deb"))?,
        ));
        files.push((linux::rpm_name(version, b.arch), linux::rpm(&b)?));
    } else {
        let zip = archive::zip(&[archive::Entry::file(target.exe, 0o755, binary)], epoch)
            .map_err(io("zip"))?;
        files.push((
            format!("{}-{version}-{}.zip", linux::PACKAGE, target.name),
            zip,
        ));
    }
    let mut names = Vec::new();
    for (name, data) in files {
        write(&out.join(&name), &data)?;
        names.push(name);
    }
    Ok(names)
}

/// Checks a fresh binary: Linux ones must be static, and `--version` must name the package
/// version wherever the binary can be run here. Returns a line for the summary.
fn check_binary(
    target: &Target,
    path: &Path,
    data: &[u8],
    version: &str,
) -> Result<String, String> {
    if target.is_linux() {
        build::check_static_elf(data).map_err(|e| format!("{}: {e}", target.name))?;
    }
    let runner = if target.is_linux() && target.arch() == std::env::consts::ARCH {
        Some(None)
    } else if target.is_linux() {
        let emulator = format!("qemu-{}-static", target.arch());
        host::have(&emulator).then_some(Some(emulator))
    } else {
        None
    };
    let Some(runner) = runner else {
        return Ok(format!(
            "{}: `--version` not run here (no way to run {} binaries)",
            target.name, target.triple
        ));
    };
    let out = build::version_output(runner.as_deref(), path)?;
    if !build::version_matches(&out, version) {
        return Err(format!(
            "{}: `agent --version` prints `{out}`, but the packages are named {version}",
            target.name
        ));
    }
    Ok(format!(
        "{}: static, `agent --version` = {out}",
        target.name
    ))
}

fn prerequisites(o: &Options) -> Result<(), String> {
    let mut tools: Vec<(&str, &str)> = o
        .targets
        .iter()
        .flat_map(|t| std::iter::once(t.cc).chain(t.needs.iter().copied()))
        .collect();
    if o.sign.is_some() {
        tools.push(("minisign", "minisign"));
    }
    host::ensure_tools("dist", &tools)?;
    if o.targets.is_empty() || !host::have("rustup") {
        return Ok(());
    }
    // The release targets are not in rust-toolchain.toml (every developer would download
    // them): add the missing ones to the pinned toolchain.
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let missing: Vec<&str> = o
        .targets
        .iter()
        .map(|t| t.triple)
        .filter(|t| !installed.lines().any(|l| l.trim() == *t))
        .collect();
    if !missing.is_empty() {
        host::run(
            Command::new("rustup")
                .args(["target", "add"])
                .args(&missing),
        )
        .map_err(|e| format!("{e}: the Rust targets {} are needed", missing.join(" ")))?;
    }
    Ok(())
}

/// `SOURCE_DATE_EPOCH`, else the commit time of `HEAD`.
fn source_date_epoch(root: &Path) -> Result<u64, String> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        return v
            .trim()
            .parse()
            .map_err(|e| format!("SOURCE_DATE_EPOCH={v}: {e}"));
    }
    let out = Command::new("git")
        .current_dir(root)
        .args(["log", "-1", "--format=%ct"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .ok_or("SOURCE_DATE_EPOCH is not set and the commit time is unknown (not a git checkout): set SOURCE_DATE_EPOCH")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("git commit time: {e}"))
}

/// The commit `agent --version` names: `AGENT_GIT_SHA`, else `HEAD`, else none.
fn git_sha(root: &Path) -> String {
    if let Ok(sha) = std::env::var("AGENT_GIT_SHA") {
        return sha;
    }
    Command::new("git")
        .current_dir(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Empties the output directory. Refuses to empty a directory that does not look like an
/// earlier `dist` output.
fn prepare_out_dir(root: &Path, out: &Path) -> Result<(), String> {
    if out.exists() {
        let is_ours = out == root.join("dist") || out.join(sums::SUMS).exists();
        let empty = fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !is_ours && !empty {
            return Err(format!(
                "{} is not empty and holds no earlier dist output (SHA256SUMS): choose another --out",
                out.display()
            ));
        }
        fs::remove_dir_all(out).map_err(|e| format!("cannot empty {}: {e}", out.display()))?;
    }
    fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))
}

/// Mode 0755, so that a raw binary downloaded from the release runs as it is.
fn make_executable(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| format!("cannot chmod {}: {e}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn write(path: &Path, data: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    fs::write(path, data).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
