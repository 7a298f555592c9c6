//! The stored form of a TOTP key: passlib's TOTP JSON, which Flask-Security
//! keeps in `tf_totp_secret`.
//!
//! With `SECURITY_TOTP_SECRETS` set, Flask-Security stores
//! `{"enckey":{"c":14,"k":"...","s":"...","t":"1","v":1},"type":"totp","v":1}`:
//! the key encrypted under the secret with tag `t`. A stretched key is drawn
//! from that secret and the salt `s` by PBKDF2-HMAC-SHA256 with `2^c` rounds
//! (48 bytes: an AES-256 key, then a 16-byte initial counter block), and `k`
//! is the TOTP key run through AES-256-CTR with it. `k` and `s` are unpadded
//! base32. Older rows may hold the key in the clear: `{"key":"<b32>",...}`.
//!
//! CTR has no integrity check: a wrong secret under the right tag decrypts to
//! a wrong key, not to an error (the codes then simply never match), exactly
//! as with passlib.
//!
//! PBKDF2 at cost 14 takes about 10 ms, so on the async executor call
//! [`TotpSecrets::encrypt_blocking`] / [`TotpSecrets::decrypt_blocking`].

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use aes::cipher::{KeyIvInit, StreamCipher};
use rand::RngCore;
use serde_json::{Map, Value};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{B32, TotpKey};

/// The cost (log2 of the PBKDF2 rounds) of new encryptions: passlib's default.
pub(crate) const ENCRYPT_COST: u32 = 14;
/// The highest cost a stored value may name. The stored value is data, so its
/// cost must not be able to make a decryption run for minutes (2^20 rounds
/// take about a second).
pub(crate) const MAX_COST: u32 = 20;
/// Bytes of the salt of new encryptions (passlib's `salt_size`).
const SALT_LEN: usize = 12;
/// Longest salt read back.
const MAX_SALT_LEN: usize = 64;
/// Shortest key read back: passlib refuses shorter ones.
pub(crate) const MIN_KEY_LEN: usize = 10;
/// Longest key read back (an HMAC-SHA1 block; Flask-Security makes 20 bytes).
pub(crate) const MAX_KEY_LEN: usize = 64;

/// Why a stored TOTP value could not be read (or a blocking task failed).
/// The messages never carry key material or secrets.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TotpError {
    /// Not JSON, not passlib's shape, or a field of the wrong type.
    #[error("stored TOTP value is malformed: {0}")]
    Malformed(&'static str),
    /// `type` is not `totp`, or a version other than 1.
    #[error("stored TOTP value has an unsupported type or version")]
    UnsupportedVersion,
    /// An algorithm, digit count, period or key format other than
    /// Flask-Security's (SHA1, 6, 30, base32).
    #[error("stored TOTP value has unsupported parameters: {0}")]
    Unsupported(&'static str),
    /// Encrypted under a tag not in `SECURITY_TOTP_SECRETS`.
    #[error("stored TOTP key is encrypted under an unknown secret tag {0:?}")]
    UnknownTag(String),
    /// Encrypted with a cost above [`MAX_COST`].
    #[error("stored TOTP key has encryption cost {0}, above the limit of {MAX_COST}")]
    CostTooHigh(u64),
    /// A field that should be base32 is not.
    #[error("stored TOTP value has invalid base32 in {0:?}")]
    Base32(&'static str),
    /// The key has fewer than [`MIN_KEY_LEN`] or more than [`MAX_KEY_LEN`] bytes.
    #[error("stored TOTP key has {0} bytes; between {MIN_KEY_LEN} and {MAX_KEY_LEN} are accepted")]
    KeyLength(usize),
    /// The blocking task running PBKDF2 panicked or was cancelled.
    #[error("TOTP key encryption task failed")]
    Task,
}

/// The application secrets, `SECURITY_TOTP_SECRETS` (`{tag: secret}`): new
/// keys are encrypted under [`TotpSecrets::default_tag`], stored keys under
/// any tag are read. `Debug` shows the tags only.
#[derive(Clone)]
pub(crate) struct TotpSecrets {
    secrets: BTreeMap<String, Zeroizing<Vec<u8>>>,
    default_tag: String,
    default_secret: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for TotpSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSecrets")
            .field("tags", &self.secrets.keys().collect::<Vec<_>>())
            .field("default_tag", &self.default_tag)
            .finish_non_exhaustive()
    }
}

/// passlib's rule for tags: `^[a-z0-9][a-z0-9_.-]*$`, any case.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Orders all-digit tags by their integer value (of any length).
fn cmp_numeric(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl TotpSecrets {
    /// Checks and keeps the secrets. Fails (naming the tag, never a secret)
    /// when there are none, a tag breaks `^[a-z0-9][a-z0-9_.-]*$` (any case)
    /// or a secret is empty.
    pub(crate) fn new(map: &BTreeMap<String, String>) -> Result<TotpSecrets, String> {
        if map.is_empty() {
            return Err("no TOTP secrets configured".to_owned());
        }
        let mut secrets = BTreeMap::new();
        for (tag, secret) in map {
            if !valid_tag(tag) {
                return Err(format!(
                    "TOTP secret tag {tag:?} must match ^[a-z0-9][a-z0-9_.-]*$"
                ));
            }
            if secret.is_empty() {
                return Err(format!("TOTP secret {tag:?} is empty"));
            }
            secrets.insert(tag.clone(), Zeroizing::new(secret.as_bytes().to_vec()));
        }
        // The first of equal maxima, as Python's max() over the tags.
        let all_digits = secrets
            .keys()
            .all(|t| t.bytes().all(|b| b.is_ascii_digit()));
        let mut best: Option<&String> = None;
        for tag in secrets.keys() {
            let better = match best {
                None => true,
                Some(b) if all_digits => cmp_numeric(tag, b).is_gt(),
                Some(b) => tag > b,
            };
            if better {
                best = Some(tag);
            }
        }
        let (default_tag, default_secret) = best
            .and_then(|t| secrets.get(t).map(|s| (t.clone(), s.clone())))
            .ok_or_else(|| "no TOTP secrets configured".to_owned())?;
        Ok(TotpSecrets {
            secrets,
            default_tag,
            default_secret,
        })
    }

    /// The tag new keys are encrypted under, as passlib picks it: when every
    /// tag is all digits, the greatest by value (`"10"` over `"9"`), else the
    /// greatest string.
    pub(crate) fn default_tag(&self) -> &str {
        &self.default_tag
    }

    /// The stored form of `key`, encrypted under the default tag at cost 14
    /// with a fresh 12-byte salt, written as passlib writes it (keys sorted,
    /// no spaces):
    /// `{"enckey":{"c":14,"k":"<b32>","s":"<b32>","t":"<tag>","v":1},"type":"totp","v":1}`.
    ///
    /// Runs PBKDF2 (about 10 ms): from async code use
    /// [`TotpSecrets::encrypt_blocking`].
    pub(crate) fn encrypt(&self, key: &TotpKey) -> String {
        let mut salt = [0u8; SALT_LEN];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        encrypted_json(
            key,
            &self.default_tag,
            &self.default_secret,
            &salt,
            ENCRYPT_COST,
        )
    }

    /// [`TotpSecrets::encrypt`] with a given tag, salt and cost.
    pub(crate) fn encrypt_with_salt(
        &self,
        key: &TotpKey,
        tag: &str,
        salt: &[u8],
        cost: u32,
    ) -> Result<String, TotpError> {
        if cost > MAX_COST {
            return Err(TotpError::CostTooHigh(cost.into()));
        }
        let secret = self.secret(tag)?;
        Ok(encrypted_json(key, tag, secret, salt, cost))
    }

    fn secret(&self, tag: &str) -> Result<&[u8], TotpError> {
        self.secrets
            .get(tag)
            .map(|s| s.as_slice())
            .ok_or_else(|| TotpError::UnknownTag(tag.chars().take(64).collect()))
    }

    /// Reads a stored value: the encrypted form (`{"enckey":{...},...}`,
    /// under any configured tag, cost at most [`MAX_COST`]) or the plain one
    /// (`{"key":"<b32>","type":"totp","v":1,...}`). Base32 is read as passlib
    /// reads it: any case, padding optional, `8` for `B` and `0` for `O`.
    /// Fields passlib writes but Flask-Security's codes do not depend on
    /// (`issuer`, `label`) are ignored; `alg`, `digits` and `period` must be
    /// the defaults.
    ///
    /// Runs PBKDF2 for an encrypted value (about 10 ms at cost 14): from
    /// async code use [`TotpSecrets::decrypt_blocking`].
    pub(crate) fn decrypt(&self, stored: &str) -> Result<TotpKey, TotpError> {
        let value: Value =
            serde_json::from_str(stored).map_err(|_| TotpError::Malformed("not JSON"))?;
        let obj = value
            .as_object()
            .ok_or(TotpError::Malformed("not a JSON object"))?;
        match obj.get("type") {
            Some(Value::String(t)) if t == "totp" => {}
            Some(_) => return Err(TotpError::UnsupportedVersion),
            None => return Err(TotpError::Malformed("no \"type\"")),
        }
        if !is_one(obj.get("v")) {
            return Err(TotpError::UnsupportedVersion);
        }
        check_parameters(obj)?;
        let bytes = match (obj.get("enckey"), obj.get("key")) {
            (Some(enc), None) => self.decrypt_enckey(enc)?,
            (None, Some(Value::String(key))) => {
                match obj.get("format") {
                    None => {}
                    Some(Value::String(f)) if f == "base32" => {}
                    Some(_) => return Err(TotpError::Unsupported("format")),
                }
                Zeroizing::new(b32decode(key).ok_or(TotpError::Base32("key"))?)
            }
            (None, Some(_)) => return Err(TotpError::Malformed("\"key\" is not a string")),
            (Some(_), Some(_)) => return Err(TotpError::Malformed("both \"enckey\" and \"key\"")),
            (None, None) => return Err(TotpError::Malformed("no \"enckey\" or \"key\"")),
        };
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&bytes.len()) {
            return Err(TotpError::KeyLength(bytes.len()));
        }
        Ok(TotpKey::from_bytes(&bytes))
    }

    fn decrypt_enckey(&self, enc: &Value) -> Result<Zeroizing<Vec<u8>>, TotpError> {
        let enc = enc
            .as_object()
            .ok_or(TotpError::Malformed("\"enckey\" is not an object"))?;
        if !is_one(enc.get("v")) {
            return Err(TotpError::UnsupportedVersion);
        }
        let tag = enc
            .get("t")
            .and_then(Value::as_str)
            .ok_or(TotpError::Malformed("\"enckey.t\" is not a string"))?;
        let cost = enc
            .get("c")
            .and_then(Value::as_u64)
            .ok_or(TotpError::Malformed("\"enckey.c\" is not a whole number"))?;
        let cost = u32::try_from(cost)
            .ok()
            .filter(|&c| c <= MAX_COST)
            .ok_or(TotpError::CostTooHigh(cost))?;
        let salt = enc
            .get("s")
            .and_then(Value::as_str)
            .ok_or(TotpError::Malformed("\"enckey.s\" is not a string"))?;
        let salt = b32decode(salt).ok_or(TotpError::Base32("enckey.s"))?;
        if salt.is_empty() || salt.len() > MAX_SALT_LEN {
            return Err(TotpError::Malformed("salt length"));
        }
        let ciphertext = enc
            .get("k")
            .and_then(Value::as_str)
            .ok_or(TotpError::Malformed("\"enckey.k\" is not a string"))?;
        let mut key = Zeroizing::new(b32decode(ciphertext).ok_or(TotpError::Base32("enckey.k"))?);
        if !(MIN_KEY_LEN..=MAX_KEY_LEN).contains(&key.len()) {
            // Before PBKDF2: a wrong length fails fast.
            return Err(TotpError::KeyLength(key.len()));
        }
        let secret = self.secret(tag)?;
        apply_keystream(secret, &salt, cost, &mut key);
        Ok(key)
    }

    /// [`TotpSecrets::encrypt`] on the blocking thread pool.
    pub(crate) async fn encrypt_blocking(
        self: &Arc<Self>,
        key: TotpKey,
    ) -> Result<String, TotpError> {
        let this = Arc::clone(self);
        rocket::tokio::task::spawn_blocking(move || this.encrypt(&key))
            .await
            .map_err(|e| {
                log::error!("TOTP key encryption task failed: {e}");
                TotpError::Task
            })
    }
    /// [`decrypt_blocking`](Self::decrypt_blocking), with a failure
    /// logged (no key material in the log) and answered `None`.
    pub(crate) async fn key_of(self: &Arc<Self>, stored: &str) -> Option<TotpKey> {
        match self.decrypt_blocking(stored.to_string()).await {
            Ok(k) => Some(k),
            Err(e) => {
                log::error!("decrypting a TOTP secret failed: {e}");
                None
            }
        }
    }

    /// [`TotpSecrets::decrypt`] on the blocking thread pool.
    pub(crate) async fn decrypt_blocking(
        self: &Arc<Self>,
        stored: String,
    ) -> Result<TotpKey, TotpError> {
        let this = Arc::clone(self);
        rocket::tokio::task::spawn_blocking(move || this.decrypt(&stored))
            .await
            .map_err(|e| {
                log::error!("TOTP key decryption task failed: {e}");
                TotpError::Task
            })?
    }
}

/// Whether a version field is the integer 1.
fn is_one(v: Option<&Value>) -> bool {
    v.and_then(Value::as_u64) == Some(1)
}

/// The codes here are SHA1, 6 digits, 30 s: a value asking for others is refused
/// rather than read with the wrong parameters.
fn check_parameters(obj: &Map<String, Value>) -> Result<(), TotpError> {
    if let Some(alg) = obj.get("alg") {
        let alg = alg.as_str().map(str::to_ascii_lowercase);
        if !matches!(alg.as_deref(), Some("sha1" | "sha-1")) {
            return Err(TotpError::Unsupported("alg"));
        }
    }
    if let Some(d) = obj.get("digits")
        && d.as_u64() != Some(super::DIGITS as u64)
    {
        return Err(TotpError::Unsupported("digits"));
    }
    if let Some(p) = obj.get("period")
        && p.as_u64() != Some(super::STEP as u64)
    {
        return Err(TotpError::Unsupported("period"));
    }
    Ok(())
}

/// PBKDF2-HMAC-SHA256 (`2^cost` rounds) of secret and salt gives 48 bytes: an
/// AES-256 key and the initial counter block of CTR mode (128-bit big-endian
/// counter). Encrypts or decrypts `data` in place.
fn apply_keystream(secret: &[u8], salt: &[u8], cost: u32, data: &mut [u8]) {
    let mut keyiv = Zeroizing::new([0u8; 48]);
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt, 1u32 << cost, keyiv.as_mut_slice());
    let (aes_key, iv) = keyiv.split_at(32);
    let mut cipher = ctr::Ctr128BE::<aes::Aes256>::new(aes_key.into(), iv.into());
    cipher.apply_keystream(data);
}

fn encrypted_json(key: &TotpKey, tag: &str, secret: &[u8], salt: &[u8], cost: u32) -> String {
    let mut ciphertext = key.as_bytes().to_vec();
    apply_keystream(secret, salt, cost, &mut ciphertext);
    format!(
        r#"{{"enckey":{{"c":{cost},"k":"{}","s":"{}","t":{},"v":1}},"type":"totp","v":1}}"#,
        base32::encode(B32, &ciphertext),
        base32::encode(B32, salt),
        Value::String(tag.to_owned()),
    )
}

/// Base32 as passlib decodes it: upper-cased, `8` read as `B` and `0` as `O`,
/// padded to a multiple of 8; then Python's rules (only `=` at the end, and
/// only as many as a real final group leaves: 0, 1, 3, 4 or 6).
pub(crate) fn b32decode(s: &str) -> Option<Vec<u8>> {
    let mut text: Vec<u8> = s
        .bytes()
        .map(|b| match b.to_ascii_uppercase() {
            b'8' => b'B',
            b'0' => b'O',
            u => u,
        })
        .collect();
    while !text.len().is_multiple_of(8) {
        text.push(b'=');
    }
    let body_len = text.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let (body, pad) = text.split_at(body_len);
    if !matches!(pad.len(), 0 | 1 | 3 | 4 | 6) {
        return None;
    }
    if !body
        .iter()
        .all(|&b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
    {
        return None;
    }
    base32::decode(B32, std::str::from_utf8(body).ok()?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const VECTOR_B32: &str = "EQCCBJEUOIXML6D7V7234V7KTXJVUC5B";
    const SECRET_ONE: &str = "flask-security-rs test secret one";
    const SECRET_TWO: &str = "second test secret";
    /// Written by passlib 1.7.4 for the key VECTOR_B32 with the secrets below.
    const UNDER_2: &str = r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":1},"type":"totp","v":1}"#;
    const UNDER_1: &str = r#"{"enckey":{"c":14,"k":"XUPA73KU7EO4FTXB52TQ5O3DF43QCVIS","s":"LWVTKZUMGGDDABQAQCIA","t":"1","v":1},"type":"totp","v":1}"#;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(t, s)| ((*t).to_owned(), (*s).to_owned()))
            .collect()
    }

    fn secrets() -> TotpSecrets {
        TotpSecrets::new(&map(&[("1", SECRET_ONE), ("2", SECRET_TWO)])).unwrap()
    }

    fn vector_key() -> TotpKey {
        TotpKey::from_bytes(&b32decode(VECTOR_B32).unwrap())
    }

    /// The fields of an `enckey` JSON.
    fn enckey(stored: &str) -> Map<String, Value> {
        let v: Value = serde_json::from_str(stored).unwrap();
        v["enckey"].as_object().unwrap().clone()
    }

    #[test]
    fn passlib_vectors_decrypt() {
        let s = secrets();
        for stored in [UNDER_2, UNDER_1] {
            let key = s.decrypt(stored).unwrap();
            assert_eq!(key.b32(), VECTOR_B32, "{stored}");
            assert_eq!(key.code_at(1_700_000_000), "804439");
        }
    }

    #[test]
    fn ciphertext_for_a_fixed_salt_is_passlibs() {
        let s = secrets();
        for (stored, tag) in [(UNDER_2, "2"), (UNDER_1, "1")] {
            let salt = b32decode(enckey(stored)["s"].as_str().unwrap()).unwrap();
            let mine = s.encrypt_with_salt(&vector_key(), tag, &salt, 14).unwrap();
            assert_eq!(mine, stored);
        }
    }

    #[test]
    fn a_wrong_secret_decrypts_to_a_wrong_key() {
        let s = TotpSecrets::new(&map(&[("1", SECRET_ONE), ("2", "not the secret")])).unwrap();
        let key = s.decrypt(UNDER_2).unwrap();
        assert_ne!(key.b32(), VECTOR_B32);
        assert_eq!(s.decrypt(UNDER_1).unwrap().b32(), VECTOR_B32);
    }

    #[test]
    fn encrypt_round_trips_with_passlibs_shape() {
        let s = secrets();
        let key = TotpKey::generate();
        let stored = s.encrypt(&key);
        assert_eq!(s.decrypt(&stored).unwrap().as_bytes(), key.as_bytes());

        let prefix = r#"{"enckey":{"c":14,"k":""#;
        assert!(stored.starts_with(prefix), "{stored}");
        assert!(
            stored.ends_with(r#"","t":"2","v":1},"type":"totp","v":1}"#),
            "{stored}"
        );
        assert!(!stored.contains(' '));
        let enc = enckey(&stored);
        let keys: Vec<&str> = enc.keys().map(String::as_str).collect();
        assert_eq!(keys, ["c", "k", "s", "t", "v"]);
        let k = enc["k"].as_str().unwrap();
        let salt = enc["s"].as_str().unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(b32decode(salt).unwrap().len(), 12);
        assert!(!k.contains('=') && !salt.contains('='));
        assert_ne!(k, key.b32(), "the key is encrypted");
        // A fresh salt each time.
        let again = s.encrypt(&key);
        assert_ne!(enckey(&again)["s"], enc["s"]);
        assert_ne!(again, stored);
    }

    #[test]
    fn default_tag_as_passlib_picks_it() {
        assert_eq!(secrets().default_tag(), "2");
        let numeric = TotpSecrets::new(&map(&[("9", "a"), ("10", "b"), ("2", "c")])).unwrap();
        assert_eq!(numeric.default_tag(), "10");
        let text = TotpSecrets::new(&map(&[("a", "x"), ("b", "y")])).unwrap();
        assert_eq!(text.default_tag(), "b");
        // Not all digits: plain string order ("9" > "10").
        let mixed = TotpSecrets::new(&map(&[("9", "x"), ("10", "y"), ("10a", "z")])).unwrap();
        assert_eq!(mixed.default_tag(), "9");
        // New keys go under the default tag, with its secret.
        let stored = numeric.encrypt(&vector_key());
        assert_eq!(enckey(&stored)["t"], "10");
        let only_10 = TotpSecrets::new(&map(&[("10", "b")])).unwrap();
        assert_eq!(only_10.decrypt(&stored).unwrap().b32(), VECTOR_B32);
    }

    #[test]
    fn new_rejects_bad_configuration() {
        assert!(TotpSecrets::new(&BTreeMap::new()).is_err());
        for tag in ["", "-a", "_a", ".a", "a b", "a/b", "é", "a\n"] {
            let err = TotpSecrets::new(&map(&[(tag, "secret")])).unwrap_err();
            assert!(err.contains("tag"), "{tag:?}: {err}");
        }
        for tag in ["A", "a", "0", "a.b-c_d", "Tag.2024-01"] {
            assert!(
                TotpSecrets::new(&map(&[(tag, "secret")])).is_ok(),
                "{tag:?}"
            );
        }
        let err = TotpSecrets::new(&map(&[("1", "ok"), ("2", "")])).unwrap_err();
        assert!(err.contains("empty"), "{err}");
    }

    #[test]
    fn decrypts_the_plain_form() {
        let s = secrets();
        // passlib: TOTP(key=VECTOR_B32, issuer="FS Conformance").to_json()
        let plain = r#"{"issuer":"FS Conformance","key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1}"#;
        assert_eq!(s.decrypt(plain).unwrap().b32(), VECTOR_B32);
        // Lower case, padding, 8 for B and 0 for O, as passlib reads them.
        let sloppy =
            r#"{"key":"eqcc8jeu0ixml6d7v7234v7ktxjvuc5b","type":"totp","v":1,"label":"x"}"#;
        assert_eq!(s.decrypt(sloppy).unwrap().b32(), VECTOR_B32);
        let padded = r#"{"key":"AAAAAAAAAAAAAAAAAA======","type":"totp","v":1}"#;
        assert_eq!(s.decrypt(padded).unwrap().as_bytes(), [0u8; 11]);
        let explicit = r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1,"alg":"sha1","digits":6,"period":30,"format":"base32"}"#;
        assert_eq!(s.decrypt(explicit).unwrap().b32(), VECTOR_B32);
    }

    #[test]
    fn unknown_tag_is_an_error() {
        let only_one = TotpSecrets::new(&map(&[("1", SECRET_ONE)])).unwrap();
        assert!(matches!(only_one.decrypt(UNDER_2), Err(TotpError::UnknownTag(t)) if t == "2"));
        assert!(only_one.decrypt(UNDER_1).is_ok());
        assert!(matches!(
            secrets().encrypt_with_salt(&vector_key(), "3", b"salt", 14),
            Err(TotpError::UnknownTag(_))
        ));
    }

    #[test]
    fn cost_is_bounded() {
        let s = secrets();
        let at = |c: &str| UNDER_2.replace(r#""c":14"#, &format!(r#""c":{c}"#));
        assert!(matches!(
            s.decrypt(&at("21")),
            Err(TotpError::CostTooHigh(21))
        ));
        assert!(matches!(
            s.decrypt(&at("4294967296")),
            Err(TotpError::CostTooHigh(_))
        ));
        assert!(matches!(
            s.decrypt(&at("99999999999999999999")),
            Err(TotpError::Malformed(_))
        ));
        assert!(matches!(s.decrypt(&at("-1")), Err(TotpError::Malformed(_))));
        assert!(matches!(
            s.decrypt(&at("14.5")),
            Err(TotpError::Malformed(_))
        ));
        assert!(matches!(
            s.decrypt(&at("\"14\"")),
            Err(TotpError::Malformed(_))
        ));
        // (The cost is checked before any PBKDF2 work: see `decrypt`.)
        assert!(matches!(
            s.encrypt_with_salt(&vector_key(), "2", b"salt", 21),
            Err(TotpError::CostTooHigh(21))
        ));
        // A lower cost than the default is read (and differs from cost 14).
        let low = s.encrypt_with_salt(&vector_key(), "2", b"salt", 1).unwrap();
        assert_eq!(s.decrypt(&low).unwrap().b32(), VECTOR_B32);
        assert_eq!(
            s.decrypt(&at("13")).map(|k| k.b32() != VECTOR_B32).ok(),
            Some(true)
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let s = secrets();
        let cases: &[&str] = &[
            "",
            "not json",
            "[]",
            r#""EQCCBJEUOIXML6D7V7234V7KTXJVUC5B""#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","v":1}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"hotp","v":1}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp"}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":2}"#,
            r#"{"type":"totp","v":1}"#,
            r#"{"key":12,"type":"totp","v":1}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5!","type":"totp","v":1}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B=","type":"totp","v":1}"#,
            r#"{"key":"EQCC=BJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1,"alg":"sha256"}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1,"digits":8}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1,"period":60}"#,
            r#"{"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1,"format":"hex"}"#,
            // Too short (9 bytes) and too long (65 bytes).
            r#"{"key":"AAAAAAAAAAAAAAA","type":"totp","v":1}"#,
            r#"{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","type":"totp","v":1}"#,
            r#"{"enckey":"x","type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":2},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQQ","t":2,"v":1},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQ!","t":"2","v":1},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRS","s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":1},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"","t":"2","v":1},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":1},"type":"totp","v":1}"#,
            r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":1},"key":"EQCCBJEUOIXML6D7V7234V7KTXJVUC5B","type":"totp","v":1}"#,
        ];
        for case in cases {
            let err = s.decrypt(case).err();
            assert!(err.is_some(), "accepted {case}");
            // No key material in the message.
            let msg = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(!msg.contains("EQCC") && !msg.contains("S3IC"), "{msg}");
        }
    }

    #[test]
    fn b32decode_as_python() {
        assert_eq!(b32decode("").unwrap(), b"");
        assert_eq!(b32decode("MY").unwrap(), b"f");
        assert_eq!(b32decode("MY======").unwrap(), b"f");
        assert_eq!(b32decode("my").unwrap(), b"f");
        assert_eq!(b32decode("MZXQ").unwrap(), b"fo");
        assert_eq!(b32decode("MZXW6").unwrap(), b"foo");
        assert_eq!(b32decode("MZXW6YQ").unwrap(), b"foob");
        assert_eq!(b32decode("MZXW6YTB").unwrap(), b"fooba");
        // Lengths no final group has (1, 3 or 6 characters over a multiple of 8).
        assert!(b32decode("M").is_none());
        assert!(b32decode("MZX").is_none());
        assert!(b32decode("MZXW6Y").is_none());
        assert!(b32decode("========").is_none());
        assert!(b32decode("MY=A====").is_none());
        assert!(b32decode("MY1").is_none());
    }

    #[test]
    fn debug_shows_no_secret() {
        let s = secrets();
        let dbg = format!("{s:?} {s:#?}");
        assert!(
            !dbg.contains(SECRET_ONE) && !dbg.contains(SECRET_TWO),
            "{dbg}"
        );
        assert!(
            !dbg.contains("flask-security") && !dbg.contains("second"),
            "{dbg}"
        );
        assert!(dbg.contains("default_tag"), "{dbg}");
    }

    #[tokio::test]
    async fn blocking_variants() {
        let s = Arc::new(secrets());
        let key = s.decrypt_blocking(UNDER_2.to_owned()).await.unwrap();
        assert_eq!(key.b32(), VECTOR_B32);
        let stored = s.encrypt_blocking(key).await.unwrap();
        assert_eq!(s.decrypt_blocking(stored).await.unwrap().b32(), VECTOR_B32);
        assert!(matches!(
            s.decrypt_blocking("{}".to_owned()).await,
            Err(TotpError::Malformed(_))
        ));
    }
}
