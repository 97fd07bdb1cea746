//! Ed25519 key files for signing checkpoints: generation, loading, key ids.
//!
//! A key file is text, one value per line, `#` lines ignored:
//!
//! ```text
//! # Vigil audit signing key (Ed25519). Keep it secret; keep a copy of the .pub file elsewhere.
//! vigil-audit-ed25519-secret-v1 <base64 of the 32-byte seed>
//! ```
//!
//! and its public half, written next to it as `<name>.pub`:
//!
//! ```text
//! vigil-audit-ed25519-public-v1 <base64 of the 32-byte public key>
//! ```

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, Result};

const SECRET_TAG: &str = "vigil-audit-ed25519-secret-v1";
const PUBLIC_TAG: &str = "vigil-audit-ed25519-public-v1";

/// Where the public half of the key at `secret` is written: `<secret>.pub`.
pub fn public_key_path(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

/// Generates a new signing key at `path` (mode 0600, never overwriting) and its public
/// half at `<path>.pub`. Returns the public key. This is `vigil audit keygen`.
pub fn generate_key(path: &Path) -> Result<VerifyingKey> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    let public = key.verifying_key();
    let pub_path = public_key_path(path);
    if pub_path.exists() {
        return Err(key_error(
            &pub_path,
            "already exists; refusing to overwrite",
        ));
    }
    let secret_text = format!(
        "# Vigil audit signing key (Ed25519), key id {}. Keep it secret.\n{SECRET_TAG} {}\n",
        key_id(&public),
        B64.encode(key.to_bytes())
    );
    write_new(path, secret_text.as_bytes(), 0o600)?;
    let public_text = format!(
        "# Vigil audit verification key (Ed25519), key id {}.\n{PUBLIC_TAG} {}\n",
        key_id(&public),
        B64.encode(public.to_bytes())
    );
    write_new(&pub_path, public_text.as_bytes(), 0o644)?;
    Ok(public)
}

/// Loads the signing key written by [`generate_key`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let (tag, bytes) = read_key_line(path)?;
    if tag != SECRET_TAG {
        return Err(key_error(path, "not a Vigil audit secret key file"));
    }
    warn_if_readable_by_others(path);
    Ok(SigningKey::from_bytes(&bytes))
}

/// Loads a verification key from a `.pub` file, or derives it from a secret key file.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey> {
    let (tag, bytes) = read_key_line(path)?;
    match tag.as_str() {
        PUBLIC_TAG => VerifyingKey::from_bytes(&bytes)
            .map_err(|_| key_error(path, "not a valid Ed25519 public key")),
        SECRET_TAG => Ok(SigningKey::from_bytes(&bytes).verifying_key()),
        _ => Err(key_error(path, "not a Vigil audit key file")),
    }
}

/// A short, stable name for a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

fn read_key_line(path: &Path) -> Result<(String, [u8; 32])> {
    let text = fs::read_to_string(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| key_error(path, "empty key file"))?;
    let (tag, b64) = line
        .split_once(' ')
        .ok_or_else(|| key_error(path, "expected \"<tag> <base64>\""))?;
    let raw = B64
        .decode(b64.trim())
        .map_err(|_| key_error(path, "key is not valid base64"))?;
    let bytes = <[u8; 32]>::try_from(raw.as_slice())
        .map_err(|_| key_error(path, "key must be 32 bytes"))?;
    Ok((tag.to_owned(), bytes))
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let io = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o077 != 0 {
                tracing::warn!(path = %path.display(), "audit signing key is readable by group or others");
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

fn key_error(path: &Path, reason: &str) -> AuditError {
    AuditError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TempDir;

    #[test]
    fn generate_then_load_both_halves() {
        let dir = TempDir::new("keyfile");
        let path = dir.path().join("audit.key");
        let public = generate_key(&path).unwrap();
        assert_eq!(load_signing_key(&path).unwrap().verifying_key(), public);
        assert_eq!(load_verifying_key(&public_key_path(&path)).unwrap(), public);
        assert_eq!(load_verifying_key(&path).unwrap(), public);
        assert_eq!(key_id(&public).len(), 16);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn never_overwrites_and_rejects_bad_files() {
        let dir = TempDir::new("keyfile-bad");
        let path = dir.path().join("audit.key");
        generate_key(&path).unwrap();
        assert!(generate_key(&path).is_err());
        let bad = dir.path().join("bad.key");
        fs::write(&bad, "vigil-audit-ed25519-secret-v1 AAAA\n").unwrap();
        let err = load_signing_key(&bad).unwrap_err().to_string();
        assert!(err.contains("32 bytes"), "{err}");
        let public_only = public_key_path(&path);
        assert!(load_signing_key(&public_only).is_err());
        assert!(load_signing_key(&dir.path().join("missing")).is_err());
    }
}
