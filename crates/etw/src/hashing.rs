//! Which events get file hashes, and where they go: the image of a created process
//! (`process.hash.*`) and created, overwritten or renamed executables and scripts
//! (`file.hash.*`). The binding hashes off the hot path with `agent_host::HashWorker`, which
//! honours `HashesExcludedPaths` and the size limit.

use std::path::PathBuf;

use agent_event::{codes, Event};
use agent_host::FileHashes;
use serde_json::json;

use crate::paths::is_absolute;

/// Extensions of files worth hashing when written: programs, libraries, drivers, installers
/// and scripts Windows runs.
const EXECUTABLE_EXTENSIONS: &[&str] = &[
    "exe", "dll", "sys", "scr", "com", "cpl", "ocx", "msi", "ps1", "psm1", "bat", "cmd", "vbs",
    "vbe", "js", "jse", "wsf", "hta", "lnk", "jar",
];

/// Where a file's digests go in the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashSlot {
    /// `file.hash.*`.
    File,
    /// `process.hash.*` (the process image).
    Process,
}

/// The file to hash for `event`, if any.
pub fn hash_target(event: &Event) -> Option<(HashSlot, PathBuf)> {
    if event.event.code == Some(codes::PROCESS_CREATED) {
        let exe = &event.process.executable;
        return is_absolute(exe).then(|| (HashSlot::Process, PathBuf::from(exe)));
    }
    let file_write = event.event.category.contains("file")
        && matches!(event.event.action.as_str(), "opened-file" | "renamed");
    let path = &event.file.path;
    if !file_write || !is_absolute(path) || !is_executable(path) {
        return None;
    }
    Some((HashSlot::File, PathBuf::from(path)))
}

/// Whether the path's extension is one of [`EXECUTABLE_EXTENSIONS`] (any case).
pub fn is_executable(path: &str) -> bool {
    let name = crate::paths::base_name(path);
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        EXECUTABLE_EXTENSIONS
            .iter()
            .any(|e| e.eq_ignore_ascii_case(ext))
    })
}

/// Writes `hashes` into `slot` of `event`.
pub fn apply(event: &mut Event, slot: HashSlot, hashes: &FileHashes) {
    match slot {
        HashSlot::File => {
            event.file.hash.md5 = hashes.md5.clone();
            event.file.hash.sha1 = hashes.sha1.clone();
            event.file.hash.sha256 = hashes.sha256.clone();
        }
        HashSlot::Process => {
            event.process.other.insert(
                "hash".to_owned(),
                json!({ "md5": hashes.md5, "sha1": hashes.sha1, "sha256": hashes.sha256 }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_event::{File, Process, Timestamp};

    fn ts() -> Timestamp {
        Timestamp::from_unix(1_700_000_000, 0)
    }

    fn digests() -> FileHashes {
        FileHashes {
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            sha1: "da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
            sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        }
    }

    #[test]
    fn process_images_and_written_executables_are_hashed() {
        let mut p = Event::process_created(
            ts(),
            Process {
                executable: r"C:\Windows\System32\cmd.exe".into(),
                ..Process::default()
            },
        );
        let (slot, path) = hash_target(&p).unwrap();
        assert_eq!(
            (slot, path),
            (
                HashSlot::Process,
                PathBuf::from(r"C:\Windows\System32\cmd.exe")
            )
        );
        apply(&mut p, slot, &digests());
        let v = p.to_value().unwrap();
        assert_eq!(v["process"]["hash"]["sha256"], digests().sha256);

        let mut f = Event::file_created(ts(), File::from_path(r"C:\Users\a\Downloads\Setup.EXE"));
        let (slot, _) = hash_target(&f).unwrap();
        apply(&mut f, slot, &digests());
        assert_eq!(f.file.hash.md5, digests().md5);
        assert!(hash_target(&Event::file_changed(
            ts(),
            File::from_path(r"\\srv\s\run.ps1")
        ))
        .is_some());
        assert!(hash_target(&Event::file_renamed(
            ts(),
            r"C:\a.txt",
            File::from_path(r"C:\a.dll")
        ))
        .is_some());
    }

    #[test]
    fn other_events_are_not_hashed() {
        assert!(
            hash_target(&Event::file_created(ts(), File::from_path(r"C:\notes.txt"))).is_none()
        );
        assert!(hash_target(&Event::file_deleted(ts(), File::from_path(r"C:\x.exe"))).is_none());
        assert!(hash_target(&Event::directory_created(
            ts(),
            File::from_path(r"C:\dir.exe")
        ))
        .is_none());
        // A relative image (the table knew no better) cannot be opened reliably.
        let p = Event::process_created(
            ts(),
            Process {
                executable: "cmd.exe".into(),
                ..Process::default()
            },
        );
        assert!(hash_target(&p).is_none());
        assert!(!is_executable("C:\\noext") && is_executable("a.Ps1"));
    }
}
