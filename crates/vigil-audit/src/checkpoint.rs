//! Signed checkpoints and anchors: an Ed25519 signature over a position in the chain.
//!
//! Because every hash covers all records before it, a valid signature on `(seq, hash)`
//! vouches for the whole prefix up to `seq`. Checkpoints live in the store next to the
//! records; an anchor is a checkpoint copied somewhere else (`export_anchor`) so that cutting
//! off the tail together with its checkpoints is still noticed.

use std::fs;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::chain::ChainHash;
use crate::error::{AuditError, Result};
use crate::keyfile::key_id;

/// What a checkpoint vouches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckpointKind {
    /// The chain up to and including `seq` has hash `hash`.
    Checkpoint,
    /// A store (segment) begins after `seq`/`hash`: its first record is `seq + 1` with
    /// `prev_hash = hash`. Written when a store is created, so removing the head of a
    /// store is noticed.
    SegmentStart,
}

impl CheckpointKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointKind::Checkpoint => "checkpoint",
            CheckpointKind::SegmentStart => "segment-start",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "checkpoint" => Some(CheckpointKind::Checkpoint),
            "segment-start" => Some(CheckpointKind::SegmentStart),
            _ => None,
        }
    }
}

/// A signed statement "the chain at `seq` has hash `hash`". Also the anchor file format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub kind: CheckpointKind,
    pub seq: u64,
    pub hash: ChainHash,
    /// When it was signed, RFC 3339 UTC.
    pub time: String,
    /// [`key_id`] of the signing key (informational; not signed).
    pub key_id: String,
    /// Base64 Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes: `vigil-audit/v1/<kind>\n<seq>\n<hash hex>\n<time>`.
    pub fn message(kind: CheckpointKind, seq: u64, hash: &ChainHash, time: &str) -> Vec<u8> {
        format!("vigil-audit/v1/{}\n{seq}\n{hash}\n{time}", kind.as_str()).into_bytes()
    }

    /// Whether the signature is valid for `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(raw) = B64.decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&raw) else {
            return false;
        };
        let message = Self::message(self.kind, self.seq, &self.hash, &self.time);
        key.verify_strict(&message, &signature).is_ok()
    }
}

/// Signs checkpoints with one key.
pub struct CheckpointSigner {
    key: SigningKey,
    key_id: String,
}

impl CheckpointSigner {
    pub fn new(key: SigningKey) -> Self {
        let key_id = key_id(&key.verifying_key());
        CheckpointSigner { key, key_id }
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    pub fn sign(&self, kind: CheckpointKind, seq: u64, hash: ChainHash, time: &str) -> Checkpoint {
        let signature = self.key.sign(&Checkpoint::message(kind, seq, &hash, time));
        Checkpoint {
            kind,
            seq,
            hash,
            time: time.to_owned(),
            key_id: self.key_id.clone(),
            signature: B64.encode(signature.to_bytes()),
        }
    }
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// An anchor is a checkpoint kept outside the store.
pub type Anchor = Checkpoint;

/// Writes `anchor` to `path` as JSON (overwriting).
pub fn write_anchor(path: &Path, anchor: &Anchor) -> Result<()> {
    let text = serde_json::to_string_pretty(anchor).map_err(|e| AuditError::KeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    fs::write(path, text + "\n").map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Reads an anchor written by [`write_anchor`].
pub fn read_anchor(path: &Path) -> Result<Anchor> {
    let text = fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| AuditError::KeyFile {
        path: path.to_owned(),
        reason: format!("not an audit anchor: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::link;
    use crate::testing::TempDir;

    fn signer(seed: u8) -> CheckpointSigner {
        CheckpointSigner::new(SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn signatures_bind_every_field() {
        let s = signer(7);
        let key = s.verifying_key();
        let hash = link(&ChainHash::ZERO, "a");
        let cp = s.sign(
            CheckpointKind::Checkpoint,
            10,
            hash,
            "2026-01-01T00:00:00.000000Z",
        );
        assert!(cp.verify(&key));
        assert!(!cp.verify(&signer(8).verifying_key()));
        let mut c = cp.clone();
        c.seq = 11;
        assert!(!c.verify(&key));
        let mut c = cp.clone();
        c.hash = ChainHash::ZERO;
        assert!(!c.verify(&key));
        let mut c = cp.clone();
        c.kind = CheckpointKind::SegmentStart;
        assert!(!c.verify(&key));
        let mut c = cp.clone();
        c.time.push('x');
        assert!(!c.verify(&key));
        let mut c = cp;
        c.signature = "garbage".into();
        assert!(!c.verify(&key));
    }

    #[test]
    fn anchor_files_round_trip() {
        let dir = TempDir::new("anchor");
        let path = dir.path().join("anchor.json");
        let cp = signer(1).sign(CheckpointKind::Checkpoint, 3, ChainHash::ZERO, "t");
        write_anchor(&path, &cp).unwrap();
        assert_eq!(read_anchor(&path).unwrap(), cp);
        fs::write(&path, "{}").unwrap();
        assert!(read_anchor(&path).is_err());
    }
}
