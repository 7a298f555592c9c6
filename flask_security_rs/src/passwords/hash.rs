//! Password hashing compatible with Flask-Security 5.9 (passlib hash formats).
//!
//! New passwords are hashed as Flask-Security does by default: the NFKD-normalised
//! password is first HMAC-SHA512'd with `SECURITY_PASSWORD_SALT` and base64-encoded
//! (the "double hash", 88 ASCII characters), and that string is hashed with argon2id
//! using passlib's default parameters (m=65536 KiB, t=3, p=4, 16-byte salt, 32-byte hash).
//!
//! Existing hashes of the other schemes Flask-Security accepts by default still verify
//! (bcrypt, pbkdf2_sha256/512, sha256_crypt, sha512_crypt, plaintext); a successful
//! verification against anything but argon2id with the configured parameters reports
//! [`Verified::YesNeedsRehash`] so the caller can store a fresh hash.
//!
//! [`hash_data`] / [`verify_hash`] are Flask-Security's helpers for hashing values
//! embedded in tokens (`SECURITY_HASHING_SCHEMES = ["sha256_crypt", "hex_md5"]`).

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use rand::Rng;
use sha_crypt::{Sha256Params, Sha512Params};
use sha2::{Sha256, Sha512};
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;

/// passlib / argon2-cffi default memory cost (KiB).
pub const DEFAULT_ARGON2_M_COST: u32 = 65_536;
/// passlib / argon2-cffi default time cost.
pub const DEFAULT_ARGON2_T_COST: u32 = 3;
/// passlib / argon2-cffi default parallelism.
pub const DEFAULT_ARGON2_P_COST: u32 = 4;

/// Rounds passlib's `sha256_crypt` uses by default (and thus Flask-Security's `hash_data`).
const HASH_DATA_ROUNDS: usize = 535_000;
/// Hash strings may not ask for more argon2 memory than this (KiB) unless the
/// configured cost is higher; protects `verify` from aborting on absurd stored values.
const ARGON2_VERIFY_MAX_M_COST: u32 = 1 << 20;
/// Alphabet of crypt's "hash64" encoding (salts of sha-crypt / des_crypt).
const HASH64_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// bcrypt uses only the first 72 bytes of its input.
const BCRYPT_MAX_INPUT: usize = 72;

/// Standard-alphabet base64 that tolerates missing padding and trailing bits; used for
/// passlib's "adapted base64" after mapping `.` back to `+`.
const AB64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Hashing failed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured argon2 parameters are out of range.
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    /// The hash function reported an error (e.g. the RNG failed).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Outcome of [`PasswordUtil::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The password does not match (or the stored value is unusable).
    No,
    /// The password matches and the stored hash is current.
    Yes,
    /// The password matches but the stored hash uses another scheme or other argon2
    /// parameters; the caller should store `hash_password(password)`.
    YesNeedsRehash,
}

/// The hash scheme of a stored password value (passlib `identify` order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `$argon2id$…` (also `$argon2i$`, `$argon2d$`).
    Argon2,
    /// `$2b$…` (`$2a$`, `$2y$`; `$2$`/`$2x$` are identified but never verify, as in passlib).
    Bcrypt,
    /// `$pbkdf2-sha256$rounds$salt$hash` (passlib adapted base64).
    Pbkdf2Sha256,
    /// `$pbkdf2-sha512$rounds$salt$hash`.
    Pbkdf2Sha512,
    /// `$5$[rounds=N$]salt$hash`.
    Sha256Crypt,
    /// `$6$[rounds=N$]salt$hash`.
    Sha512Crypt,
    /// Anything else: the stored value is the password itself.
    Plaintext,
    /// Empty values, and des_crypt-shaped values (which passlib would claim for
    /// `des_crypt`, a scheme this port does not verify). Never verifies.
    Unknown,
}

/// Flask-Security's `PasswordUtil` plus the passlib `CryptContext` it drives.
#[derive(Clone)]
pub struct PasswordUtil {
    /// `SECURITY_PASSWORD_SALT` (the HMAC key of the double hash); secret.
    salt: Vec<u8>,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
}

impl fmt::Debug for PasswordUtil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordUtil")
            .field("salt", &"<redacted>")
            .field("m_cost", &self.m_cost)
            .field("t_cost", &self.t_cost)
            .field("p_cost", &self.p_cost)
            .finish()
    }
}

impl PasswordUtil {
    /// Uses `password_salt` (`SECURITY_PASSWORD_SALT`) and passlib's default argon2
    /// parameters.
    pub fn new(password_salt: &str) -> Self {
        Self {
            salt: password_salt.as_bytes().to_vec(),
            m_cost: DEFAULT_ARGON2_M_COST,
            t_cost: DEFAULT_ARGON2_T_COST,
            p_cost: DEFAULT_ARGON2_P_COST,
        }
    }

    /// Overrides the argon2 parameters used for new hashes (memory in KiB, iterations,
    /// lanes). Hashes with other parameters still verify but report
    /// [`Verified::YesNeedsRehash`]. Out-of-range values make `hash_password` fail.
    pub fn with_argon2_params(mut self, m_cost: u32, t_cost: u32, p_cost: u32) -> Self {
        self.m_cost = m_cost;
        self.t_cost = t_cost;
        self.p_cost = p_cost;
        self
    }

    /// The configured argon2 parameters `(m_cost, t_cost, p_cost)`.
    #[cfg(test)]
    pub fn argon2_params(&self) -> (u32, u32, u32) {
        (self.m_cost, self.t_cost, self.p_cost)
    }

    /// `SECURITY_PASSWORD_NORMALIZE_FORM` = NFKD.
    pub fn normalize(password: &str) -> String {
        password.nfkd().collect()
    }

    /// Flask-Security's `get_hmac`: base64 (standard, padded) of
    /// HMAC-SHA512(`PASSWORD_SALT`, NFKD(password)). Always 88 ASCII characters.
    pub fn hmac_password(&self, password: &str) -> String {
        let normalized = Self::normalize(password);
        let mut mac = match <Hmac<Sha512> as Mac>::new_from_slice(&self.salt) {
            Ok(mac) => mac,
            // HMAC takes keys of any length; this branch is unreachable.
            Err(_) => <Hmac<Sha512> as hmac::digest::KeyInit>::new(&Default::default()),
        };
        mac.update(normalized.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    fn argon2(&self) -> Result<Argon2<'static>, PasswordError> {
        let params = Params::new(self.m_cost, self.t_cost, self.p_cost, None)
            .map_err(|e| PasswordError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Hashes a new password: argon2id PHC string of the double hash.
    pub fn hash_password(&self, password: &str) -> Result<String, PasswordError> {
        let double = self.hmac_password(password);
        let hash = self
            .argon2()?
            .hash_password(double.as_bytes())
            .map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Checks `password` against a stored hash of any supported scheme. Never panics;
    /// malformed or unsupported stored values give [`Verified::No`].
    pub fn verify(&self, password: &str, stored: &str) -> Verified {
        let scheme = Self::identify(stored);
        let matched = match scheme {
            Scheme::Unknown => false,
            Scheme::Plaintext => {
                let normalized = Self::normalize(password);
                bool::from(normalized.as_bytes().ct_eq(stored.as_bytes()))
            }
            Scheme::Argon2 => {
                return self.verify_argon2(&self.hmac_password(password), stored);
            }
            Scheme::Bcrypt => verify_bcrypt(&self.hmac_password(password), stored),
            Scheme::Pbkdf2Sha256 => {
                verify_pbkdf2(&self.hmac_password(password), stored, Pbkdf2Digest::Sha256)
            }
            Scheme::Pbkdf2Sha512 => {
                verify_pbkdf2(&self.hmac_password(password), stored, Pbkdf2Digest::Sha512)
            }
            Scheme::Sha256Crypt => {
                verify_sha_crypt(self.hmac_password(password).as_bytes(), stored)
            }
            Scheme::Sha512Crypt => {
                verify_sha_crypt(self.hmac_password(password).as_bytes(), stored)
            }
        };
        if matched {
            Verified::YesNeedsRehash
        } else {
            Verified::No
        }
    }

    fn verify_argon2(&self, double: &str, stored: &str) -> Verified {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Verified::No;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return Verified::No;
        };
        if params.m_cost() > ARGON2_VERIFY_MAX_M_COST.max(self.m_cost) {
            return Verified::No;
        }
        if Argon2::default()
            .verify_password(double.as_bytes(), &parsed)
            .is_err()
        {
            return Verified::No;
        }
        let current = parsed.algorithm.as_str() == "argon2id"
            && parsed.version == Some(0x13)
            && params.m_cost() == self.m_cost
            && params.t_cost() == self.t_cost
            && params.p_cost() == self.p_cost
            && parsed.hash.as_ref().map(|h| h.len()) == Some(Params::DEFAULT_OUTPUT_LEN);
        if current {
            Verified::Yes
        } else {
            Verified::YesNeedsRehash
        }
    }

    /// passlib `CryptContext.identify` over Flask-Security's default `PASSWORD_SCHEMES`.
    pub fn identify(stored: &str) -> Scheme {
        if stored.is_empty() {
            return Scheme::Unknown;
        }
        const PREFIXES: &[(&str, Scheme)] = &[
            ("$2$", Scheme::Bcrypt),
            ("$2a$", Scheme::Bcrypt),
            ("$2b$", Scheme::Bcrypt),
            ("$2x$", Scheme::Bcrypt),
            ("$2y$", Scheme::Bcrypt),
            ("$argon2i$", Scheme::Argon2),
            ("$argon2d$", Scheme::Argon2),
            ("$argon2id$", Scheme::Argon2),
            ("$pbkdf2-sha256$", Scheme::Pbkdf2Sha256),
            ("$pbkdf2-sha512$", Scheme::Pbkdf2Sha512),
            ("$5$", Scheme::Sha256Crypt),
            ("$6$", Scheme::Sha512Crypt),
        ];
        if let Some((_, scheme)) = PREFIXES.iter().find(|(p, _)| stored.starts_with(p)) {
            return *scheme;
        }
        // passlib's des_crypt claims 2-char (salt only) and 13-char hash64 strings.
        let des_like =
            matches!(stored.len(), 2 | 13) && stored.bytes().all(|b| HASH64_CHARS.contains(&b));
        if des_like {
            return Scheme::Unknown;
        }
        Scheme::Plaintext
    }

    /// A string shaped like the hashes this util stores (same scheme,
    /// parameters and length), for work that must cost what it costs on a
    /// real stored hash (sha-crypt's cost grows with its input's length).
    pub fn decoy_hash(&self) -> String {
        format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            self.m_cost,
            self.t_cost,
            self.p_cost,
            "A".repeat(22),
            "A".repeat(43)
        )
    }

    /// Burns about as much time as a real verification, so that a login attempt for an
    /// unknown user (or one without a password) is not distinguishable by timing.
    pub fn dummy_verify(&self) {
        let _ = self.hash_password("flask-security-dummy-password");
    }
}

fn verify_bcrypt(double: &str, stored: &str) -> bool {
    let supported = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p));
    if !supported || stored.len() != 60 || !stored.is_ascii() {
        return false;
    }
    let input = double.as_bytes();
    let input = input.get(..BCRYPT_MAX_INPUT).unwrap_or(input);
    bcrypt::verify(input, stored).unwrap_or(false)
}

/// Decodes passlib's adapted base64 (`.` for `+`, no padding).
fn ab64_decode(s: &str) -> Option<Vec<u8>> {
    if s.contains('+') {
        return None;
    }
    AB64.decode(s.replace('.', "+")).ok()
}

/// Encodes passlib's adapted base64.
#[cfg(test)]
fn ab64_encode(bytes: &[u8]) -> String {
    AB64.encode(bytes).replace('+', ".")
}

#[derive(Clone, Copy)]
enum Pbkdf2Digest {
    Sha256,
    Sha512,
}

fn verify_pbkdf2(double: &str, stored: &str, digest: Pbkdf2Digest) -> bool {
    let mut parts = stored.split('$');
    let (Some(""), Some(id), Some(rounds), Some(salt), Some(checksum), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (ident, digest_len) = match digest {
        Pbkdf2Digest::Sha256 => ("pbkdf2-sha256", 32),
        Pbkdf2Digest::Sha512 => ("pbkdf2-sha512", 64),
    };
    if id != ident || rounds.is_empty() || !rounds.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let Ok(rounds) = rounds.parse::<u32>() else {
        return false;
    };
    let (Some(salt), Some(expected)) = (ab64_decode(salt), ab64_decode(checksum)) else {
        return false;
    };
    if rounds == 0 || expected.len() != digest_len {
        return false;
    }
    let mut out = vec![0u8; digest_len];
    match digest {
        Pbkdf2Digest::Sha256 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(double.as_bytes(), &salt, rounds, &mut out)
        }
        Pbkdf2Digest::Sha512 => {
            pbkdf2::pbkdf2_hmac::<Sha512>(double.as_bytes(), &salt, rounds, &mut out)
        }
    }
    bool::from(out.ct_eq(&expected))
}

/// Splits `$5$[rounds=N$]salt$checksum` (or `$6$…`) into (ident, rounds, salt, checksum).
fn parse_sha_crypt(stored: &str) -> Option<(&str, usize, &str, &str)> {
    let mut parts = stored.split('$');
    if parts.next() != Some("") {
        return None;
    }
    let ident = parts.next()?;
    let mut next = parts.next()?;
    let rounds = match next.strip_prefix("rounds=") {
        Some(r) => {
            next = parts.next()?;
            if r.is_empty() || !r.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            r.parse().ok()?
        }
        None => sha_crypt::ROUNDS_DEFAULT,
    };
    let salt = next;
    let checksum = parts.next()?;
    if parts.next().is_some() || salt.len() > 16 {
        return None;
    }
    Some((ident, rounds, salt, checksum))
}

fn verify_sha_crypt(secret: &[u8], stored: &str) -> bool {
    let Some((ident, rounds, salt, checksum)) = parse_sha_crypt(stored) else {
        return false;
    };
    let computed = match ident {
        "5" => Sha256Params::new(rounds)
            .ok()
            .and_then(|p| sha_crypt::sha256_crypt_b64(secret, salt.as_bytes(), &p).ok()),
        "6" => Sha512Params::new(rounds)
            .ok()
            .and_then(|p| sha_crypt::sha512_crypt_b64(secret, salt.as_bytes(), &p).ok()),
        _ => None,
    };
    match computed {
        Some(c) => bool::from(c.as_bytes().ct_eq(checksum.as_bytes())),
        None => false,
    }
}

fn random_hash64_salt(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| {
            let i = rng.gen_range(0..HASH64_CHARS.len());
            char::from(HASH64_CHARS.get(i).copied().unwrap_or(b'.'))
        })
        .collect()
}

/// Flask-Security `hash_data`: passlib `sha256_crypt` (535000 rounds, 16-char salt) of
/// `data`, e.g. `$5$rounds=535000$<salt>$<hash>`.
pub fn hash_data(data: &str) -> String {
    let salt = random_hash64_salt(16);
    let checksum = Sha256Params::new(HASH_DATA_ROUNDS)
        .ok()
        .and_then(|p| sha_crypt::sha256_crypt_b64(data.as_bytes(), salt.as_bytes(), &p).ok())
        // The round count is a valid constant, so hashing cannot fail; an empty
        // checksum would simply never verify.
        .unwrap_or_default();
    format!("$5$rounds={HASH_DATA_ROUNDS}${salt}${checksum}")
}

/// Flask-Security `verify_hash`: checks `data` against a `sha256_crypt` hash or a
/// `hex_md5` digest (32 hex characters).
pub fn verify_hash(hash: &str, data: &str) -> bool {
    if hash.starts_with("$5$") {
        return verify_sha_crypt(data.as_bytes(), hash);
    }
    if hash.len() == 32 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        use md5::Digest as _;
        let digest = crate::util::hex(&md5::Md5::digest(data.as_bytes()));
        return bool::from(
            digest
                .as_bytes()
                .ct_eq(hash.to_ascii_lowercase().as_bytes()),
        );
    }
    false
}

/// passlib-format `$pbkdf2-sha256$…` hash of an already double-hashed secret. Only
/// used by tests to cross-check the encoder against passlib vectors.
#[cfg(test)]
fn pbkdf2_sha256_hash(secret: &str, salt: &[u8], rounds: u32) -> String {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret.as_bytes(), salt, rounds, &mut out);
    format!(
        "$pbkdf2-sha256${rounds}${}${}",
        ab64_encode(salt),
        ab64_encode(&out)
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decoy_hash_has_the_shape_of_a_stored_hash() {
        let util = PasswordUtil::new("salt").with_argon2_params(1024, 1, 1);
        let real = util.hash_password("a password").unwrap_or_default();
        let decoy = util.decoy_hash();
        assert_eq!(decoy.len(), real.len(), "{decoy} vs {real}");
        assert_eq!(decoy.rsplitn(3, '$').nth(2), real.rsplitn(3, '$').nth(2));
        assert_eq!(util.verify("a password", &decoy), Verified::No);
    }

    const SALT: &str = "salty-salt";
    const HMAC_PASSWORD: &str =
        "NzVgrgMeeNseSr3/dCDq6jAkQ3C1vNqjAeZwcw5dStxxq1JgNzEb1c+t8aPIFqOfGSteOuHiF8eVtFzwWb5deg==";
    // Captured from Flask-Security 5.9.2 (spec 3.4).
    const SPEC_ARGON2: &str = "$argon2id$v=19$m=65536,t=3,p=4$s7ZWyplTqvU+B4DQOqd0bg$1stUZ1ZiWUrmJNt2JfdRCQBoW/yCCRgkGQrS9iKm+7I";
    const SPEC_BCRYPT: &str = "$2b$12$34XxUHyeYYkRfP/90v5Sa.OsKdKr1ifjcdl5DfS5vwnWpGgOAUbv.";
    // Generated with passlib 1.7.4 over HMAC_PASSWORD (i.e. password "password").
    const PL_PBKDF2_SHA256: &str =
        "$pbkdf2-sha256$29000$ZCyllPL./1/r/X9P6d1bSw$JixbtnmzR4KdCfHlihDM3nLvajiWmn50va6wB7hrM2w";
    const PL_PBKDF2_SHA512: &str = "$pbkdf2-sha512$25000$H.PcO.ecE4Iw5twbw5jzng$zUinre4egsS2Qg6z8GsNoaeh8h6QFvIa9YrieozbExwmxF1zjGnFI0SMgzf6BkMfhfpFZl3nl4N35WIgLghaJA";
    const PL_SHA256_CRYPT: &str =
        "$5$rounds=535000$s0../nueg0xOFIo8$T2DL66UZ5.6uZNt4Uw5Mu7NLISIuR9erlvNIhTSM0dC";
    const PL_SHA512_CRYPT: &str = "$6$rounds=656000$b3a5gHsGU4S3QY.y$7FbGpKC.9flOOV545vr6Pxt54cp0npDXnDkUwyrUdFgqzXDhbF/SCqvCsZg2OxcCRrTjmKdV4C0NNPcnjZDsd0";
    const PL_SHA256_CRYPT_IMPLICIT: &str =
        "$5$Lc9N4VFoq2t0UXF3$4A8Eadw.biqInUfD0hOEcd5HKz7Wc3stKVi/Y7OTUFA";
    // passlib, password "p\u{e5}ssw\u{f6}rd\u{fb01}" (NFKD folds the "fi" ligature).
    const UNI_PASSWORD: &str = "p\u{e5}ssw\u{f6}rd\u{fb01}";
    const UNI_HMAC: &str =
        "w6ALbvbPOzvDC9Xj7R6+W6ZbObHpK5FJvuo1/fkwFy7LfQRgQyotBRFjnHM3oWDv8AkUFpn/14R1Z2TSf0dyiw==";
    const UNI_PBKDF2_SHA256: &str =
        "$pbkdf2-sha256$1000$mrM2xjjnXIux9t4bI2SM8Q$D3upAUs4jTVZeeofxE0SO7EcgA5hT5SdsFQCgiy.tXw";
    // passlib sha256_crypt / hex_md5 of "alice@example.com".
    const PL_HASH_DATA: &str =
        "$5$rounds=535000$uY5WuJPy0XLrw.4v$Wt/q4VNy/XTMNPz1CVjBfRgabPvKTlIpis6f5ZWnBp5";
    const PL_MD5: &str = "c160f8cc69a4f0bf2b0362752353d060";

    fn util() -> PasswordUtil {
        PasswordUtil::new(SALT)
    }

    #[test]
    fn hmac_matches_spec() {
        let u = util();
        assert_eq!(u.hmac_password("password"), HMAC_PASSWORD);
        assert_eq!(u.hmac_password(UNI_PASSWORD), UNI_HMAC);
        assert_eq!(
            PasswordUtil::normalize(UNI_PASSWORD),
            "pa\u{30a}sswo\u{308}rdfi"
        );
    }

    #[test]
    fn spec_argon2_and_bcrypt_vectors() {
        let u = util();
        assert_eq!(u.verify("password", SPEC_ARGON2), Verified::Yes);
        assert_eq!(u.verify("Password", SPEC_ARGON2), Verified::No);
        assert_eq!(u.verify("password", SPEC_BCRYPT), Verified::YesNeedsRehash);
        assert_eq!(u.verify("passwore", SPEC_BCRYPT), Verified::No);
        // Another PASSWORD_SALT never verifies.
        assert_eq!(
            PasswordUtil::new("other").verify("password", SPEC_BCRYPT),
            Verified::No
        );
        // Configured with other argon2 params: still verifies, but wants a rehash.
        let tuned = util().with_argon2_params(19_456, 2, 1);
        assert_eq!(
            tuned.verify("password", SPEC_ARGON2),
            Verified::YesNeedsRehash
        );
    }

    #[test]
    fn passlib_pbkdf2_and_sha_crypt_vectors() {
        let u = util();
        for stored in [
            PL_PBKDF2_SHA256,
            PL_PBKDF2_SHA512,
            PL_SHA256_CRYPT,
            PL_SHA512_CRYPT,
            PL_SHA256_CRYPT_IMPLICIT,
        ] {
            assert_eq!(
                u.verify("password", stored),
                Verified::YesNeedsRehash,
                "{stored}"
            );
            assert_eq!(u.verify("wrong", stored), Verified::No, "{stored}");
        }
        assert_eq!(
            u.verify(UNI_PASSWORD, UNI_PBKDF2_SHA256),
            Verified::YesNeedsRehash
        );
        // Composed form of the same text normalises identically.
        assert_eq!(
            u.verify("pa\u{30a}sswo\u{308}rdfi", UNI_PBKDF2_SHA256),
            Verified::YesNeedsRehash
        );
        // Our encoder reproduces passlib's string from the same salt.
        let salt = ab64_decode("mrM2xjjnXIux9t4bI2SM8Q").unwrap();
        assert_eq!(pbkdf2_sha256_hash(UNI_HMAC, &salt, 1000), UNI_PBKDF2_SHA256);
    }

    #[test]
    fn identify_schemes() {
        use Scheme::*;
        let cases = [
            (SPEC_ARGON2, Argon2),
            (SPEC_BCRYPT, Bcrypt),
            ("$2a$04$abc", Bcrypt),
            ("$2y$04$abc", Bcrypt),
            (PL_PBKDF2_SHA256, Pbkdf2Sha256),
            (PL_PBKDF2_SHA512, Pbkdf2Sha512),
            (PL_SHA256_CRYPT, Sha256Crypt),
            (PL_SHA512_CRYPT, Sha512Crypt),
            ("hunter2", Plaintext),
            ("$1$md5crypt$xyz", Plaintext),
            ("", Unknown),
            ("abJnggxhB/yWI", Unknown), // des_crypt shape
            ("ab", Unknown),
        ];
        for (stored, want) in cases {
            assert_eq!(PasswordUtil::identify(stored), want, "{stored}");
        }
    }

    #[test]
    fn plaintext_rules() {
        let u = util();
        assert_eq!(u.verify("hunter2!", "hunter2!"), Verified::YesNeedsRehash);
        assert_eq!(u.verify("hunter2", "hunter2!"), Verified::No);
        assert_eq!(u.verify("", ""), Verified::No);
        assert_eq!(u.verify("x", ""), Verified::No);
        // Plaintext compares against the NFKD form of the typed password.
        assert_eq!(u.verify("\u{fb01}ne!", "fine!"), Verified::YesNeedsRehash);
    }

    #[test]
    fn hash_password_round_trip_and_rehash() {
        let u = util();
        let h = u.hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=4$"), "{h}");
        assert_eq!(u.verify("correct horse", &h), Verified::Yes);
        assert_eq!(u.verify("correct horse!", &h), Verified::No);
        assert_ne!(u.hash_password("correct horse").unwrap(), h);

        let small = util().with_argon2_params(1024, 1, 1);
        assert_eq!(small.argon2_params(), (1024, 1, 1));
        let hs = small.hash_password("pw").unwrap();
        assert!(hs.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{hs}");
        assert_eq!(small.verify("pw", &hs), Verified::Yes);
        assert_eq!(u.verify("pw", &hs), Verified::YesNeedsRehash);
        assert_eq!(small.verify("pw", SPEC_ARGON2), Verified::No);

        let bad = util().with_argon2_params(1, 0, 0);
        assert!(bad.hash_password("pw").is_err());
        bad.dummy_verify();
        small.dummy_verify();
    }

    #[test]
    fn garbage_hashes_do_not_verify() {
        let u = util();
        let garbage = [
            "$argon2id$",
            "$argon2id$v=19$m=65536,t=3,p=4$!!!$???",
            "$argon2id$v=19$m=4294967295,t=3,p=4$s7ZWyplTqvU+B4DQOqd0bg$1stUZ1ZiWUrmJNt2JfdRCQBoW/yCCRgkGQrS9iKm+7I",
            "$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ",
            "$2b$12$short",
            "$2b$99$34XxUHyeYYkRfP/90v5Sa.OsKdKr1ifjcdl5DfS5vwnWpGgOAUbv.",
            "$2x$12$34XxUHyeYYkRfP/90v5Sa.OsKdKr1ifjcdl5DfS5vwnWpGgOAUbv.",
            "$2b$12$34XxUHyeYYkRfP/90v5Sa.OsKdKr1ifjcdl5DfS5vwnWpGgOAUb\u{e9}",
            "$pbkdf2-sha256$",
            "$pbkdf2-sha256$0$ZCyllPL./1/r/X9P6d1bSw$JixbtnmzR4KdCfHlihDM3nLvajiWmn50va6wB7hrM2w",
            "$pbkdf2-sha256$x$ZCyllPL./1/r/X9P6d1bSw$JixbtnmzR4KdCfHlihDM3nLvajiWmn50va6wB7hrM2w",
            "$pbkdf2-sha256$29000$ZCyllPL./1/r/X9P6d1bSw$Jixbtn",
            "$pbkdf2-sha256$29000$!!$JixbtnmzR4KdCfHlihDM3nLvajiWmn50va6wB7hrM2w",
            "$pbkdf2-sha512$25000$H.PcO.ecE4Iw5twbw5jzng$zUin$extra",
            "$5$",
            "$5$rounds=$salt$hash",
            "$5$rounds=10$s0../nueg0xOFIo8$T2DL66UZ5.6uZNt4Uw5Mu7NLISIuR9erlvNIhTSM0dC",
            "$5$rounds=535000$s0../nueg0xOFIo8$",
            "$6$rounds=656000$b3a5gHsGU4S3QY.y$x$y",
        ];
        for g in garbage {
            assert_eq!(u.verify("password", g), Verified::No, "{g}");
        }
    }

    #[test]
    fn hash_data_and_verify_hash() {
        let h = hash_data("alice@example.com");
        assert!(h.starts_with("$5$rounds=535000$"), "{h}");
        assert_eq!(h.len(), "$5$rounds=535000$".len() + 16 + 1 + 43);
        assert!(verify_hash(&h, "alice@example.com"));
        assert!(!verify_hash(&h, "bob@example.com"));
        assert!(verify_hash(PL_HASH_DATA, "alice@example.com"));
        assert!(!verify_hash(PL_HASH_DATA, "alice@example.org"));
        assert!(verify_hash(PL_MD5, "alice@example.com"));
        assert!(verify_hash(
            &PL_MD5.to_ascii_uppercase(),
            "alice@example.com"
        ));
        assert!(!verify_hash(PL_MD5, "alice@example.org"));
        assert!(!verify_hash("", "alice@example.com"));
        assert!(!verify_hash("alice@example.com", "alice@example.com"));
        assert!(!verify_hash("$5$garbage", "x"));
    }

    #[test]
    fn debug_redacts_salt() {
        let dbg = format!("{:?}", PasswordUtil::new("very-secret-salt"));
        assert!(!dbg.contains("very-secret-salt"), "{dbg}");
        assert!(dbg.contains("65536"));
    }
}
