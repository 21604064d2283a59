//! Secrets at rest: XChaCha20-Poly1305 with a 256-bit key from
//! `THENA_SF_SECRET_KEY` (base64) or a key file generated in the data
//! directory (mode 0600). Each ciphertext is bound to its slot (connection and
//! field) so one cannot be moved to another.

use std::path::Path;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const VERSION: u8 = 1;
pub const KEY_ENV: &str = "THENA_SF_SECRET_KEY";
pub const KEY_FILE: &str = "secret.key";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("{KEY_ENV} must be 32 bytes in base64 (e.g. from `openssl rand -base64 32`)")]
    BadKey,
    #[error("cannot read or create the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("a stored secret could not be decrypted: wrong key, or the data was changed")]
    Decrypt,
}

/// The key that encrypts secrets at rest.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(***)")
    }
}

impl SecretBox {
    pub fn from_key(key: &[u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// The box for `key` (base64 of 32 bytes, the config's `THENA_SF_SECRET_KEY`),
    /// else for the key file under `data_dir`, made if missing.
    pub fn with_key(
        data_dir: &Path,
        key: Option<&salesforce::Secret>,
    ) -> Result<SecretBox, CryptoError> {
        if let Some(b64) = key {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64.expose().trim())
                .map_err(|_| CryptoError::BadKey)?;
            let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
            return Ok(SecretBox::from_key(&key));
        }
        let path = data_dir.join(KEY_FILE);
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::BadKey)?;
                Ok(SecretBox::from_key(&key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir).map_err(io)?;
                let mut key = [0u8; 32];
                rand::thread_rng().fill_bytes(&mut key);
                write_private(&path, &key).map_err(io)?;
                Ok(SecretBox::from_key(&key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Encrypts `plain` for the slot `aad` (e.g. "acme/refresh_token").
    pub fn seal(&self, aad: &str, plain: &str) -> Vec<u8> {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("encryption of an in-memory buffer does not fail");
        let mut out = Vec::with_capacity(1 + 24 + ct.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    pub fn open(&self, aad: &str, sealed: &[u8]) -> Result<String, CryptoError> {
        if sealed.len() < 25 || sealed[0] != VERSION {
            return Err(CryptoError::Decrypt);
        }
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(&sealed[1..25]),
                Payload {
                    msg: &sealed[25..],
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Decrypt)
    }
}

#[cfg(unix)]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

/// SHA-256 of `bytes`, as lowercase hex (on the accept path for every
/// event: no allocation per byte).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// SHA-256 of a token, hex: what is stored for webhook tokens.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

/// Compares a presented token with a stored hash in constant time.
pub fn token_matches(presented: &str, stored_hash: &str) -> bool {
    use subtle::ConstantTimeEq;
    token_hash(presented)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// A new random token (for webhooks), URL-safe.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "tsf_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_is_the_usual_lowercase_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn seal_open_and_tamper() {
        let b = SecretBox::from_key(&[7u8; 32]);
        let sealed = b.seal("acme/refresh_token", "5Aep861secret");
        assert!(!String::from_utf8_lossy(&sealed).contains("5Aep861secret"));
        assert_eq!(
            b.open("acme/refresh_token", &sealed).unwrap(),
            "5Aep861secret"
        );
        assert!(
            b.open("other/refresh_token", &sealed).is_err(),
            "bound to its slot"
        );
        let mut bad = sealed.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(b.open("acme/refresh_token", &bad).is_err());
        assert!(SecretBox::from_key(&[8u8; 32])
            .open("acme/refresh_token", &sealed)
            .is_err());
        assert_ne!(b.seal("a", "x"), b.seal("a", "x"), "fresh nonce each time");
    }

    #[test]
    fn key_file_is_made_once_and_private() {
        let dir = std::env::temp_dir().join(format!(
            "thena-sf-key-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let a = SecretBox::with_key(&dir, None).unwrap();
        let sealed = a.seal("x", "y");
        let b = SecretBox::with_key(&dir, None).unwrap();
        assert_eq!(b.open("x", &sealed).unwrap(), "y");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn tokens_compare_by_hash() {
        let t = new_token();
        let h = token_hash(&t);
        assert!(token_matches(&t, &h));
        assert!(!token_matches("nope", &h));
        assert!(t.starts_with("tsf_") && t.len() > 40);
    }
}
