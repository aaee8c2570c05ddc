//! The agent id: 64 hex characters, generated once per install and persisted in the state dir.

use std::fs;
use std::path::Path;

use rand::rngs::SysRng;
use rand::TryRng;

use crate::error::HostError;

/// Name of the file, inside the state directory, that holds the agent id.
pub const AGENT_ID_FILE: &str = "agent_id";

/// The identity of this install (`agent.id`): 32 bytes from the OS CSPRNG, hex encoded.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentId(String);

impl AgentId {
    /// Loads the id from `state_dir/agent_id`, or generates and persists a new one when the
    /// file is missing or does not hold exactly 64 lowercase hex characters (a corrupt or
    /// truncated file must not leave the agent without an id).
    ///
    /// The write is atomic and durable ([`agent_os::replace_file`]), so a crash leaves either
    /// no id or a complete one. `state_dir` is created if needed.
    pub fn load_or_create(state_dir: &Path) -> Result<AgentId, HostError> {
        let path = state_dir.join(AGENT_ID_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                if let Some(id) = Self::parse(&text) {
                    return Ok(id);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Unreadable but present (e.g. invalid UTF-8 is InvalidData): regenerate.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
            Err(e) => return Err(HostError::io(path, e)),
        }
        let id = Self::generate()?;
        fs::create_dir_all(state_dir).map_err(|e| HostError::io(state_dir, e))?;
        // Not a secret: it names this install in every event.
        agent_os::replace_file(&path, format!("{}\n", id.0).as_bytes(), 0o644)?;
        Ok(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_generated_persisted_and_stable_across_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let a = AgentId::load_or_create(&state).unwrap();
        assert_eq!(a.as_str().len(), 64);
        assert!(a
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let on_disk = fs::read_to_string(state.join(AGENT_ID_FILE)).unwrap();
        assert_eq!(on_disk, format!("{a}\n"));
        for _ in 0..3 {
            assert_eq!(AgentId::load_or_create(&state).unwrap(), a);
        }
        assert_eq!(fs::read_dir(&state).unwrap().count(), 1, "only the id file");
    }

    #[test]
    fn two_installs_get_different_ids() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = AgentId::load_or_create(d1.path()).unwrap();
        let b = AgentId::load_or_create(d2.path()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn corrupt_or_truncated_file_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(AGENT_ID_FILE);
        let good = AgentId::load_or_create(dir.path()).unwrap();
        let upper = good.as_str().to_uppercase();
        let corrupt: [&[u8]; 4] = [
            &good.as_str().as_bytes()[..40], // truncated
            b"",                             // empty
            &[0xff, 0xfe, 0x00, 0x41],       // not UTF-8
            upper.as_bytes(),                // not our canonical form
        ];
        for bad in corrupt {
            fs::write(&path, bad).unwrap();
            let new = AgentId::load_or_create(dir.path()).unwrap();
            assert_ne!(new, good);
            assert_eq!(new.as_str().len(), 64);
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("{new}\n"));
            assert_eq!(AgentId::load_or_create(dir.path()).unwrap(), new);
        }
    }

    #[test]
    fn id_file_without_trailing_newline_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let id = "0123456789abcdef".repeat(4);
        fs::write(dir.path().join(AGENT_ID_FILE), &id).unwrap();
        assert_eq!(AgentId::load_or_create(dir.path()).unwrap().as_str(), id);
    }
}
