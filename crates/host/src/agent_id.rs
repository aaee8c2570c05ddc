//! The agent id: 64 hex characters, generated once per install and persisted in the state dir.

use std::fs;
use std::path::Path;

use rand::rngs::SysRng;
use rand::TryRng;

use crate::error::HostError;

/// Name of the file, inside the state directory, that holds the agent id.
pub const AGENT_ID_FILE: &str = "agent_id";

/// Name of the backup copy of [`AGENT_ID_FILE`], in the same directory: a damaged id
/// file is restored from it, since a new id makes the host look new to the customer.
pub const AGENT_ID_BACKUP_FILE: &str = "agent_id.bak";

/// The identity of this install (`agent.id`): 32 bytes from the OS CSPRNG, hex encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentId(String);

/// Something the user must hear about from [`AgentId::load_or_recover`]: the id file
/// was damaged or missing while a previous id existed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdRecovery {
    /// `agent_id` was damaged or missing; the same id was restored from the backup copy.
    Restored {
        /// What was wrong with `agent_id`.
        problem: String,
    },
    /// Neither `agent_id` nor its backup held a valid id, although at least one of them
    /// existed: a new id was generated and **this host will appear as a new host**.
    Replaced {
        /// What was wrong with the two files.
        problem: String,
        /// The new id.
        new: AgentId,
    },
}

impl IdRecovery {
    /// Whether the id changed (the host now has a new identity at the intake).
    pub fn id_changed(&self) -> bool {
        matches!(self, IdRecovery::Replaced { .. })
    }
}

impl std::fmt::Display for IdRecovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdRecovery::Restored { problem } => write!(
                f,
                "the agent id file {AGENT_ID_FILE} {problem}; the id was restored from {AGENT_ID_BACKUP_FILE} (unchanged)"
            ),
            IdRecovery::Replaced { problem, new } => write!(
                f,
                "the agent id CHANGED: {problem}; a new id {new} was generated and this host will appear as a NEW host at the intake"
            ),
        }
    }
}

/// What one id file holds.
enum Read {
    Valid(AgentId),
    Missing,
    Damaged(String),
}

fn read_id(path: &Path) -> Result<Read, HostError> {
    match fs::read(path) {
        Ok(bytes) => Ok(
            match std::str::from_utf8(&bytes).ok().and_then(AgentId::parse) {
                Some(id) => Read::Valid(id),
                None if bytes.is_empty() => Read::Damaged("is empty".into()),
                None => Read::Damaged(format!(
                    "does not hold a valid id ({} bytes, expected 64 lowercase hex characters)",
                    bytes.len()
                )),
            },
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Read::Missing),
        Err(e) => Err(HostError::io(path, e)),
    }
}

impl AgentId {
    /// Loads the id from `state_dir/agent_id`, or generates and persists a new one when
    /// there is none; see [`AgentId::load_or_recover`], which also tells what was repaired.
    pub fn load_or_create(state_dir: &Path) -> Result<AgentId, HostError> {
        Self::load_or_recover(state_dir).map(|(id, _)| id)
    }

    /// Loads the id from `state_dir/agent_id`, keeping a backup copy in
    /// `state_dir/agent_id.bak` (written first, each file replaced atomically and durably
    /// with [`agent_os::replace_file`], so a crash leaves at least one complete copy).
    ///
    /// - A valid `agent_id` wins; a missing or different backup is rewritten.
    /// - A damaged or missing `agent_id` with a valid backup is restored from it:
    ///   [`IdRecovery::Restored`].
    /// - Neither valid, but one of them present: a new id, [`IdRecovery::Replaced`]; the
    ///   caller must warn loudly, the host gets a new identity at the intake.
    /// - Neither present (first start): a new id, nothing to report.
    ///
    /// `state_dir` is created if needed. An id file that cannot be read (other than
    /// missing) is an error: replacing an id that may be fine is worse than not starting.
    pub fn load_or_recover(state_dir: &Path) -> Result<(AgentId, Option<IdRecovery>), HostError> {
        let path = state_dir.join(AGENT_ID_FILE);
        let backup = state_dir.join(AGENT_ID_BACKUP_FILE);
        let main = read_id(&path)?;
        let copy = read_id(&backup)?;
        match (main, copy) {
            (Read::Valid(id), copy) => {
                if !matches!(&copy, Read::Valid(b) if *b == id) {
                    write_id(&backup, &id)?;
                }
                Ok((id, None))
            }
            (main, Read::Valid(id)) => {
                let problem = match main {
                    Read::Damaged(why) => why,
                    _ => "is missing".into(),
                };
                write_id(&path, &id)?;
                Ok((id, Some(IdRecovery::Restored { problem })))
            }
            (Read::Missing, Read::Missing) => {
                let id = Self::generate()?;
                fs::create_dir_all(state_dir).map_err(|e| HostError::io(state_dir, e))?;
                write_id(&backup, &id)?;
                write_id(&path, &id)?;
                Ok((id, None))
            }
            (main, copy) => {
                let describe = |name: &str, read: Read| match read {
                    Read::Damaged(why) => format!("{name} {why}"),
                    _ => format!("{name} is missing"),
                };
                let problem = format!(
                    "{} and {}",
                    describe(AGENT_ID_FILE, main),
                    describe(AGENT_ID_BACKUP_FILE, copy)
                );
                let id = Self::generate()?;
                write_id(&backup, &id)?;
                write_id(&path, &id)?;
                Ok((id.clone(), Some(IdRecovery::Replaced { problem, new: id })))
            }
        }
    }

    /// Parses the content of an id file; `None` if it is not a valid id.
    fn parse(text: &str) -> Option<AgentId> {
        let t = text.trim_end_matches(['\n', '\r']);
        let ok = t.len() == 64 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| AgentId(t.to_owned()))
    }

    fn generate() -> Result<AgentId, HostError> {
        let mut bytes = [0u8; 32];
        SysRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| HostError::Random(e.to_string()))?;
        Ok(AgentId(crate::hash::hex(&bytes)))
    }

    /// The id as 64 lowercase hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces one id file atomically and durably. Not a secret: the id names this install
/// in every event.
fn write_id(path: &Path, id: &AgentId) -> Result<(), HostError> {
    agent_os::replace_file(path, format!("{}\n", id.0).as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_generated_persisted_and_stable_across_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let (a, notice) = AgentId::load_or_recover(&state).unwrap();
        assert_eq!(notice, None, "a first start is not a recovery");
        assert_eq!(a.as_str().len(), 64);
        assert!(a
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        for name in [AGENT_ID_FILE, AGENT_ID_BACKUP_FILE] {
            let on_disk = fs::read_to_string(state.join(name)).unwrap();
            assert_eq!(on_disk, format!("{a}\n"), "{name}");
        }
        for _ in 0..3 {
            assert_eq!(AgentId::load_or_recover(&state).unwrap(), (a.clone(), None));
        }
        assert_eq!(
            fs::read_dir(&state).unwrap().count(),
            2,
            "the id file and its backup, no temporary file"
        );
    }

    #[test]
    fn two_installs_get_different_ids() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = AgentId::load_or_create(d1.path()).unwrap();
        let b = AgentId::load_or_create(d2.path()).unwrap();
        assert_ne!(a, b);
    }

    fn damaged(good: &AgentId) -> Vec<Vec<u8>> {
        vec![
            good.as_str().as_bytes()[..40].to_vec(),   // truncated
            Vec::new(),                                // empty
            vec![0xff, 0xfe, 0x00, 0x41],              // not UTF-8
            good.as_str().to_uppercase().into_bytes(), // not our canonical form
            vec![0; 65],                               // zeroed block after a crash
        ]
    }

    #[test]
    fn a_damaged_or_missing_id_file_is_restored_from_the_backup_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AGENT_ID_FILE);
        let good = AgentId::load_or_create(dir.path()).unwrap();
        for bad in damaged(&good) {
            fs::write(&path, &bad).unwrap();
            let (id, notice) = AgentId::load_or_recover(dir.path()).unwrap();
            assert_eq!(id, good, "the id must not change");
            let notice = notice.expect("a restore is reported");
            assert!(!notice.id_changed());
            assert!(notice.to_string().contains("restored"), "{notice}");
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("{good}\n"));
            assert_eq!(
                AgentId::load_or_recover(dir.path()).unwrap(),
                (good.clone(), None)
            );
        }
        fs::remove_file(&path).unwrap();
        let (id, notice) = AgentId::load_or_recover(dir.path()).unwrap();
        assert_eq!(id, good);
        assert!(
            matches!(notice, Some(IdRecovery::Restored { ref problem }) if problem == "is missing")
        );
    }

    #[test]
    fn a_damaged_backup_is_rewritten_from_the_id_file() {
        let dir = tempfile::tempdir().unwrap();
        let good = AgentId::load_or_create(dir.path()).unwrap();
        let backup = dir.path().join(AGENT_ID_BACKUP_FILE);
        fs::write(&backup, b"garbage").unwrap();
        assert_eq!(
            AgentId::load_or_recover(dir.path()).unwrap(),
            (good.clone(), None)
        );
        assert_eq!(fs::read_to_string(&backup).unwrap(), format!("{good}\n"));
        // An install from before backups existed gets one at its next start.
        fs::remove_file(&backup).unwrap();
        assert_eq!(
            AgentId::load_or_recover(dir.path()).unwrap(),
            (good.clone(), None)
        );
        assert_eq!(fs::read_to_string(&backup).unwrap(), format!("{good}\n"));
    }

    #[test]
    fn both_copies_damaged_gives_a_new_id_and_says_so_loudly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AGENT_ID_FILE);
        let backup = dir.path().join(AGENT_ID_BACKUP_FILE);
        let good = AgentId::load_or_create(dir.path()).unwrap();
        for bad in damaged(&good) {
            fs::write(&path, &bad).unwrap();
            fs::write(&backup, b"x").unwrap();
            let (new, notice) = AgentId::load_or_recover(dir.path()).unwrap();
            assert_ne!(new, good);
            assert_eq!(new.as_str().len(), 64);
            let notice = notice.expect("a new id is reported");
            assert!(notice.id_changed());
            let text = notice.to_string();
            assert!(
                text.contains("CHANGED") && text.contains("NEW host"),
                "{text}"
            );
            assert!(text.contains(new.as_str()), "{text}");
            for name in [AGENT_ID_FILE, AGENT_ID_BACKUP_FILE] {
                assert_eq!(
                    fs::read_to_string(dir.path().join(name)).unwrap(),
                    format!("{new}\n")
                );
            }
            assert_eq!(AgentId::load_or_recover(dir.path()).unwrap(), (new, None));
        }
        // Damaged id file, backup missing: also a change, also reported.
        fs::write(&path, b"zz").unwrap();
        fs::remove_file(&backup).unwrap();
        let (_, notice) = AgentId::load_or_recover(dir.path()).unwrap();
        assert!(notice.is_some_and(|n| n.id_changed()));
    }

    #[test]
    fn id_file_without_trailing_newline_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef".repeat(4);
        fs::write(dir.path().join(AGENT_ID_FILE), &id).unwrap();
        assert_eq!(AgentId::load_or_create(dir.path()).unwrap().as_str(), id);
    }
}
