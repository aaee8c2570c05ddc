//! What the agent trusts: one to three minisign (Ed25519) public keys compiled into the
//! binary, and nothing else. A manifest is used only when one of them signed it and the
//! signed trusted comment repeats the manifest's channel, serial and version.

use minisign_verify::{Error as MinisignError, PublicKey, Signature};

use crate::manifest::{Manifest, ManifestError, TrustedComment, MAX_SIGNATURE_BYTES};

/// Most keys trusted at once: the current release key, the next one during a rotation,
/// and one spare.
pub const MAX_KEYS: usize = 3;

/// The release keys compiled into the agent: `keys/release.pub` of this crate, one
/// minisign public key (base64) per line, `#` comments allowed.
const RELEASE_KEYS: &str = include_str!("../keys/release.pub");

/// Debug builds only: one extra base64 public key trusted beside the release keys, so that
/// end-to-end tests of the `agent` binary can sign their own releases. Release builds
/// (what ships) never read it.
pub const TEST_KEY_ENV: &str = "ENDPOINT_AGENT_UPDATE_TEST_KEY";

/// The public keys a manifest signature must come from.
#[derive(Debug, Clone)]
pub struct TrustedKeys {
    keys: Vec<(String, PublicKey)>,
}

/// Why a key list or a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The key list is empty, too long, or has a line that is not a minisign public key.
    #[error("trusted key list: {0}")]
    Keys(String),
    /// The signature file is not a minisign signature.
    #[error("the manifest signature is malformed ({0})")]
    MalformedSignature(String),
    /// Signed with a key the agent does not trust.
    #[error("the manifest is signed with a key this agent does not trust")]
    UnknownKey,
    /// A trusted key's signature that does not verify: the manifest or the comment was
    /// altered.
    #[error("the manifest signature does not verify (altered manifest or signature)")]
    BadSignature,
    /// An old-style (non-prehashed) minisign signature; releases are signed with `minisign -S`
    /// defaults, which prehash.
    #[error("legacy minisign signature refused: sign with minisign 0.8 or later")]
    Legacy,
    /// The signed trusted comment does not name this manifest's channel, serial and version.
    #[error("the signed trusted comment `{0}` does not match the manifest")]
    CommentMismatch(String),
    /// The signature is good but the signed bytes are not a valid manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

impl TrustedKeys {
    /// Reads one to [`MAX_KEYS`] base64 minisign public keys, one per line (the second line
    /// of a `minisign.pub` file); blank lines and `#` comments are skipped.
    pub fn from_lines(text: &str) -> Result<TrustedKeys, TrustError> {
        let mut keys = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') || line.starts_with("untrusted comment:") {
                continue;
            }
            let key = PublicKey::from_base64(line).map_err(|e| {
                TrustError::Keys(format!("`{line}` is not a minisign public key: {e}"))
            })?;
            keys.push((line.to_owned(), key));
        }
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(TrustError::Keys(format!(
                "expected 1 to {MAX_KEYS} keys, got {}",
                keys.len()
            )));
        }
        Ok(TrustedKeys { keys })
    }

    /// The release keys compiled into this agent, plus in debug builds the key in
    /// [`TEST_KEY_ENV`], if set.
    pub fn release() -> Result<TrustedKeys, TrustError> {
        let mut text = RELEASE_KEYS.to_owned();
        if cfg!(debug_assertions) {
            if let Ok(extra) = std::env::var(TEST_KEY_ENV) {
                text.push('\n');
                text.push_str(&extra);
            }
        }
        TrustedKeys::from_lines(&text)
    }

    /// The base64 form of each trusted key, for `agent update` to print.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(text, _)| text.as_str())
    }

    /// Checks `signature` (the text of a `.minisig` file) over `manifest` with the trusted
    /// keys, then parses the manifest and checks the signed trusted comment against it.
    pub fn verify(&self, manifest: &[u8], signature: &[u8]) -> Result<Manifest, TrustError> {
        if signature.len() > MAX_SIGNATURE_BYTES {
            return Err(TrustError::MalformedSignature(format!(
                "{} bytes, more than {MAX_SIGNATURE_BYTES}",
                signature.len()
            )));
        }
        let text = std::str::from_utf8(signature)
            .map_err(|_| TrustError::MalformedSignature("not UTF-8".to_owned()))?;
        let sig =
            Signature::decode(text).map_err(|e| TrustError::MalformedSignature(e.to_string()))?;
        let mut verdict = TrustError::UnknownKey;
        for (_, key) in &self.keys {
            match key.verify(manifest, &sig, false) {
                Ok(()) => {
                    let parsed = Manifest::parse(manifest)?;
                    let comment = sig.trusted_comment();
                    return match TrustedComment::parse(comment) {
                        Some(c) if c.matches(&parsed) => Ok(parsed),
                        _ => Err(TrustError::CommentMismatch(
                            comment.chars().take(120).collect(),
                        )),
                    };
                }
                // Another key's signature: try the next key.
                Err(MinisignError::UnexpectedKeyId) => {}
                Err(MinisignError::UnsupportedLegacyMode) => verdict = TrustError::Legacy,
                Err(_) => verdict = TrustError::BadSignature,
            }
        }
        Err(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_key_list_is_usable() {
        let keys = TrustedKeys::from_lines(RELEASE_KEYS).unwrap();
        assert!((1..=MAX_KEYS).contains(&keys.ids().count()));
    }

    #[test]
    fn key_lists_are_bounded_and_strict() {
        assert!(TrustedKeys::from_lines("# nothing\n").is_err());
        assert!(TrustedKeys::from_lines("not-a-key").is_err());
    }
}
