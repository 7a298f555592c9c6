//! Sealed cookie values: AES-256-GCM, authenticated and encrypted, with the
//! cookie's name as associated data (a value cannot be moved to another
//! cookie).
//!
//! ```text
//! value = base64url(nonce[12] | ciphertext | tag[16])      (no padding)
//! key   = HMAC-SHA512(secret, "flask_security_rs session cookie key")[32..64]
//! ```
//!
//! The layout is that of Rocket's private cookies, and the key is the one
//! Rocket derives from a `secret_key` that [`crate::derive_cookie_key`] made,
//! so cookies Rocket sealed that way still open (their standard base64 is
//! read too). The URL-safe alphabet needs no percent-encoding in a
//! `Set-Cookie` header, and the cipher is keyed once, not per cookie.
//!
//! The first secret seals; every secret (`secret_key`, then
//! `secret_key_fallbacks`) opens, so a rotated key does not end sessions.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// What [`crate::derive_cookie_key`] signs to make a cookie key.
pub(crate) const COOKIE_KEY_CONTEXT: &[u8] = b"flask_security_rs session cookie key";

/// The 64-byte cookie key material of `secret`.
pub(crate) fn cookie_key_material(secret: &[u8]) -> Option<[u8; 64]> {
    let mut mac = <Hmac<sha2::Sha512> as Mac>::new_from_slice(secret).ok()?;
    mac.update(COOKIE_KEY_CONTEXT);
    Some(mac.finalize().into_bytes().into())
}

/// Seals with the first key, opens with any.
pub(crate) struct Sealer {
    ciphers: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealer(<{} keys redacted>)", self.ciphers.len())
    }
}

impl Sealer {
    /// A sealer over the cookie keys of `secrets` (the first one seals).
    pub(crate) fn new<K: AsRef<[u8]>>(secrets: &[K]) -> Sealer {
        let ciphers = secrets
            .iter()
            .filter_map(|s| cookie_key_material(s.as_ref()))
            .filter_map(|m| m.get(32..).and_then(|k| Aes256Gcm::new_from_slice(k).ok()))
            .collect();
        Sealer { ciphers }
    }

    /// `plain` sealed for the cookie `name`; `None` without a key.
    pub(crate) fn seal(&self, name: &str, plain: &str) -> Option<String> {
        use rand::RngCore;
        let cipher = self.ciphers.first()?;
        let mut data = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        data.extend_from_slice(&nonce);
        data.extend_from_slice(plain.as_bytes());
        let tag = cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                name.as_bytes(),
                data.get_mut(NONCE_LEN..)?,
            )
            .ok()?;
        data.extend_from_slice(&tag);
        Some(URL_SAFE_NO_PAD.encode(&data))
    }

    /// The plain text of `value` sealed for the cookie `name`, if a key
    /// opens it.
    pub(crate) fn open(&self, name: &str, value: &str) -> Option<String> {
        // Rocket's own sealing writes standard base64 with padding.
        let data = URL_SAFE_NO_PAD
            .decode(value)
            .or_else(|_| STANDARD.decode(value))
            .ok()?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, rest) = data.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        self.ciphers.iter().find_map(|cipher| {
            let mut plain = body.to_vec();
            cipher
                .decrypt_in_place_detached(
                    Nonce::from_slice(nonce),
                    name.as_bytes(),
                    &mut plain,
                    aes_gcm::Tag::from_slice(tag),
                )
                .ok()?;
            String::from_utf8(plain).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::http::private::cookie::{Cookie, CookieJar, Key};

    #[test]
    fn round_trip_and_name_binding() {
        let s = Sealer::new(&["secret"]);
        let v = s.seal("session", r#"{"a":1}"#).expect("sealed");
        assert!(
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(s.open("session", &v).as_deref(), Some(r#"{"a":1}"#));
        assert_eq!(s.open("other", &v), None);
        // Each seal has its own nonce.
        assert_ne!(s.seal("session", "x"), s.seal("session", "x"));
        // Tampering is refused.
        let mut bad = v.clone().into_bytes();
        let i = bad.len() / 2;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            s.open("session", &String::from_utf8(bad).expect("ascii")),
            None
        );
        assert_eq!(s.open("session", "short"), None);
        assert_eq!(s.open("session", "%%%"), None);
    }

    #[test]
    fn fallback_keys_open_and_the_first_seals() {
        let old = Sealer::new(&["old"]);
        let rotated = Sealer::new(&["new", "old"]);
        let v = old.seal("session", "data").expect("sealed");
        assert_eq!(rotated.open("session", &v).as_deref(), Some("data"));
        let w = rotated.seal("session", "data").expect("sealed");
        assert_eq!(old.open("session", &w), None);
        assert_eq!(Sealer::new::<&str>(&[]).seal("session", "x"), None);
    }

    #[test]
    fn opens_what_rocket_sealed_under_the_derived_key() {
        let master = base64::engine::general_purpose::STANDARD
            .decode(crate::derive_cookie_key("secret"))
            .expect("base64");
        let key = Key::from(&master);
        let mut jar = CookieJar::new();
        jar.private_mut(&key)
            .add(Cookie::new("session", "from rocket"));
        let sealed = jar.get("session").expect("cookie").value().to_string();
        let s = Sealer::new(&["secret"]);
        assert_eq!(s.open("session", &sealed).as_deref(), Some("from rocket"));
        // And the other way round.
        let ours = s.seal("session", "from us").expect("sealed");
        let mut jar = CookieJar::new();
        jar.add_original(Cookie::new(
            "session",
            STANDARD.encode(URL_SAFE_NO_PAD.decode(&ours).expect("b64")),
        ));
        let opened = jar
            .private(&key)
            .get("session")
            .map(|c| c.value().to_string());
        assert_eq!(opened.as_deref(), Some("from us"));
    }
}
