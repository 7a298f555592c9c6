//! One-time codes for two-factor sign-in (Flask-Security's `SECURITY_TWO_FACTOR`
//! with the `authenticator` method): the TOTP key of a user, its codes
//! (RFC 6238: HMAC-SHA1, 6 digits, 30 s steps, computed by `totp-rs`), the
//! `otpauth://` URI an authenticator app scans and its QR code as an SVG data
//! URI.
//!
//! [`passlib`] reads and writes the stored form of a key (`tf_totp_secret`),
//! passlib's JSON with the key encrypted under `SECURITY_TOTP_SECRETS`.
//!
//! Everything here is a pure function of its arguments (except
//! [`TotpKey::generate`], which draws from the OS); a code is accepted at most
//! once only if the caller remembers the step [`TotpKey::verify`] returns and
//! refuses it, or an earlier one, the next time.

pub(crate) mod passlib;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::RngCore;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};
use totp_rs::{Algorithm, Builder, Totp};

#[allow(unused_imports)]
pub(crate) use passlib::{TotpError, TotpSecrets};

/// Digits of a code.
pub(crate) const DIGITS: usize = 6;
/// Seconds a code lasts (the step of the counter).
pub(crate) const STEP: i64 = 30;
/// Bytes of a new key (the size of an HMAC-SHA1 output, passlib's default).
pub(crate) const KEY_LEN: usize = 20;

/// The alphabet of base32 as the stored JSON and the URI write it.
const B32: base32::Alphabet = base32::Alphabet::Rfc4648 { padding: false };

/// A TOTP key: 20 random bytes for keys made here; keys read from storage
/// keep their length. The bytes are wiped when the last copy is dropped, and
/// `Debug` never shows them.
#[derive(Clone)]
pub(crate) struct TotpKey {
    /// Holds the key bytes (zeroised on drop by `totp-rs`) with the fixed
    /// parameters: SHA1, [`DIGITS`], [`STEP`], no skew (the window is
    /// [`TotpKey::verify`]'s).
    totp: Totp,
}

impl fmt::Debug for TotpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpKey(<redacted>)")
    }
}

impl TotpKey {
    /// A fresh key of [`KEY_LEN`] bytes from the operating system's generator.
    pub(crate) fn generate() -> TotpKey {
        let mut bytes = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(bytes.as_mut_slice());
        TotpKey::from_bytes(bytes.as_slice())
    }

    /// The key with these bytes (any length; storage checks lengths when it
    /// reads a key).
    pub(crate) fn from_bytes(b: &[u8]) -> TotpKey {
        // `build()` would refuse keys under 16 bytes, which passlib (and so
        // existing databases) allow down to 10; the parameters below are the
        // RFC's, so nothing `build()` checks is at stake.
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_step_duration(STEP as u64)
            .with_skew(0)
            .with_secret(b.to_vec())
            .build_noncompliant();
        TotpKey { totp }
    }

    /// The raw key bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.totp.secret().as_ref()
    }

    /// The key in RFC 4648 base32, upper case, without padding (32 characters
    /// for 20 bytes), as the `secret` of the URI and the stored JSON write it.
    pub(crate) fn b32(&self) -> String {
        base32::encode(B32, self.as_bytes())
    }

    /// [`TotpKey::b32`] in groups of four joined by dashes, for typing the key
    /// by hand (passlib's `pretty_key()`): `JFUQ-2QJI-IUUE-...`.
    pub(crate) fn pretty(&self) -> String {
        let b32 = self.b32();
        let groups: Vec<&str> = b32
            .as_bytes()
            .chunks(4)
            // Base32 output is ASCII, so every chunk is valid UTF-8.
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        groups.join("-")
    }

    /// The code for counter `step` (a step before 1970 counts as step 0).
    fn code_for_step(&self, step: i64) -> String {
        let secs = u64::try_from(step.max(0))
            .unwrap_or(0)
            .saturating_mul(STEP as u64);
        self.totp.generate(secs).to_string()
    }

    /// The code at this Unix time: six digits, zero-padded (RFC 6238 with
    /// HMAC-SHA1 and 30 s steps). Times before 1970 give the code of step 0.
    pub(crate) fn code_at(&self, unix_secs: i64) -> String {
        self.code_for_step(unix_secs.div_euclid(STEP))
    }

    /// Checks `code` (surrounding white space ignored; otherwise exactly six
    /// ASCII digits) against the steps from `floor((now - window) / 30)` to
    /// `floor((now + window) / 30)`, and returns the earliest step whose code
    /// it is. A negative window counts as 0; steps before 1970 never match.
    ///
    /// Every step in the window is computed and compared in constant time,
    /// whether or not an earlier one matched. Refusing a step that was already
    /// used (replay) is the caller's job.
    pub(crate) fn verify(&self, code: &str, now_secs: i64, window_secs: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let window = window_secs.max(0);
        let first = now_secs.saturating_sub(window).div_euclid(STEP).max(0);
        let last = now_secs.saturating_add(window).div_euclid(STEP);
        let mut found = Choice::from(0);
        let mut step_found: i64 = 0;
        for step in first..=last {
            let matches = self.code_for_step(step).as_bytes().ct_eq(code.as_bytes());
            // Keep the first match: take this step only if it matches and
            // none did before.
            let take = matches & !found;
            step_found = i64::conditional_select(&step_found, &step, take);
            found |= matches;
        }
        bool::from(found).then_some(step_found)
    }
}

/// What Python's `urllib.parse.quote(s, safe='')` leaves as it is: letters,
/// digits and `_.-~`.
const QUOTE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'_')
    .remove(b'.')
    .remove(b'-')
    .remove(b'~');
/// `quote(s, safe='@')`, as passlib encodes the label.
const QUOTE_LABEL: &AsciiSet = &QUOTE.remove(b'@');

/// The key URI an authenticator app reads, as Flask-Security's
/// (passlib's `TOTP.to_uri(username, issuer)`) is:
/// `otpauth://totp/<issuer>:<username>?secret=<b32>&issuer=<issuer>`.
///
/// In the label, issuer and username are percent-encoded (UTF-8) except for
/// letters, digits, `_.-~` and `@`; in the query, `@` is encoded too. With an
/// empty issuer, the URI has neither the issuer prefix nor the parameter.
/// passlib refuses a `:` in either; here it is encoded as `%3A`.
pub(crate) fn otpauth_uri(key: &TotpKey, issuer: &str, username: &str) -> String {
    let label = utf8_percent_encode(username, QUOTE_LABEL);
    let secret = key.b32();
    if issuer.is_empty() {
        return format!("otpauth://totp/{label}?secret={secret}");
    }
    format!(
        "otpauth://totp/{}:{label}?secret={secret}&issuer={}",
        utf8_percent_encode(issuer, QUOTE_LABEL),
        utf8_percent_encode(issuer, QUOTE),
    )
}

/// A QR code of `uri` as `data:image/svg+xml;base64,...`, for an `<img src>`.
/// `None` when `uri` is too long for a QR code.
pub(crate) fn qr_svg_data_uri(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    let svg = code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Some(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg)
    ))
}

/// What setting an authenticator app up shows a user: the key (grouped
/// and plain base32), the account name, the issuer and the `otpauth://` URI.
pub(crate) struct AuthenticatorSetup {
    key: String,
    b32key: String,
    username: String,
    issuer: String,
    uri: String,
}

impl AuthenticatorSetup {
    /// For `user` (its username, else its email, names the account).
    pub(crate) fn new(key: &TotpKey, issuer: &str, user: &crate::datastore::User) -> Self {
        let username = user.username.as_deref().unwrap_or(&user.email).to_string();
        AuthenticatorSetup {
            key: key.pretty(),
            b32key: key.b32(),
            uri: otpauth_uri(key, issuer, &username),
            username,
            issuer: issuer.to_string(),
        }
    }

    /// Into a JSON answer as `<prefix>authr_key`, `_b32key`, `_username`,
    /// `_issuer`, `_uri` (`tf_` for two-factor, none for unified sign-in).
    pub(crate) fn to_json(
        &self,
        prefix: &str,
        body: &mut serde_json::Map<String, serde_json::Value>,
    ) {
        for (k, v) in [
            ("key", &self.key),
            ("b32key", &self.b32key),
            ("username", &self.username),
            ("issuer", &self.issuer),
            ("uri", &self.uri),
        ] {
            body.insert(
                format!("{prefix}authr_{k}"),
                serde_json::Value::String(v.clone()),
            );
        }
    }

    /// Into a page's context, with the QR code of the URI (`authr_qrcode`).
    pub(crate) fn to_page(&self, c: &mut rocket_dyn_templates::tera::Context) {
        c.insert("authr_qrcode", &qr_svg_data_uri(&self.uri));
        c.insert("authr_key", &self.key);
        c.insert("authr_username", &self.username);
        c.insert("authr_issuer", &self.issuer);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// The key of the passlib vectors (see `passlib.rs`).
    const VECTOR_B32: &str = "EQCCBJEUOIXML6D7V7234V7KTXJVUC5B";

    fn vector_key() -> TotpKey {
        TotpKey::from_bytes(&base32::decode(B32, VECTOR_B32).unwrap())
    }

    /// RFC 6238 appendix B's SHA1 key.
    fn rfc_key() -> TotpKey {
        TotpKey::from_bytes(b"12345678901234567890")
    }

    #[test]
    fn rfc6238_sha1_vectors_last_six_digits() {
        let k = rfc_key();
        // The RFC lists 8 digits; a 6-digit code is their last six.
        for (t, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(k.code_at(t), eight[2..], "T={t}");
        }
        assert_eq!(k.code_at(59), "287082");
        assert_eq!(k.code_at(1_111_111_109), "081804");
        assert_eq!(k.code_at(1_234_567_890), "005924");
    }

    #[test]
    fn passlib_code_vector() {
        // passlib: TOTP(key=VECTOR_B32).generate(1700000000).token
        assert_eq!(vector_key().code_at(1_700_000_000), "804439");
    }

    #[test]
    fn code_is_constant_within_a_step() {
        let k = vector_key();
        // 1699999980 is the first second of the step holding 1700000000.
        assert_eq!(k.code_at(1_699_999_980), "804439");
        assert_eq!(k.code_at(1_700_000_009), "804439");
        assert_ne!(k.code_at(1_699_999_979), "804439");
        assert_ne!(k.code_at(1_700_000_010), "804439");
    }

    #[test]
    fn verify_accepts_current_step() {
        let k = vector_key();
        assert_eq!(
            k.verify("804439", 1_700_000_000, 0),
            Some(1_700_000_000 / 30)
        );
        assert_eq!(k.verify(" 804439\n", 1_700_000_000, 0), Some(56_666_666));
        assert_eq!(k.verify("804438", 1_700_000_000, 0), None);
    }

    #[test]
    fn verify_window_edges() {
        let k = vector_key();
        // The code's step covers 1699999980 ..= 1700000009.
        let code = k.code_at(1_700_000_000);
        let step = 56_666_666;
        // Clock behind: now + window reaches the step's first second, not one less.
        assert_eq!(k.verify(&code, 1_699_999_980 - 30, 30), Some(step));
        assert_eq!(k.verify(&code, 1_699_999_980 - 31, 30), None);
        // Clock ahead: now - window reaches the step's last second, not one more.
        assert_eq!(k.verify(&code, 1_700_000_009 + 30, 30), Some(step));
        assert_eq!(k.verify(&code, 1_700_000_009 + 31, 30), None);
        // A window of 90 s reaches three steps away.
        assert_eq!(k.verify(&code, 1_700_000_009 + 90, 90), Some(step));
        assert_eq!(k.verify(&code, 1_700_000_009 + 91, 90), None);
    }

    #[test]
    fn verify_returns_the_step_of_the_code_not_of_now() {
        let k = vector_key();
        let now = 1_700_000_000;
        let previous = k.code_at(now - 30);
        let next = k.code_at(now + 30);
        assert_eq!(k.verify(&previous, now, 30), Some(56_666_665));
        assert_eq!(k.verify(&next, now, 30), Some(56_666_667));
    }

    #[test]
    fn verify_returns_the_first_matching_step() {
        // Find the first code that recurs (a few thousand steps apart, by the
        // birthday bound); verify must name the earlier of its two steps.
        let k = vector_key();
        let now = 1_700_000_000_i64;
        let mut seen = std::collections::HashMap::new();
        let mut pair = None;
        for step in (now / 30 - 20_000)..(now / 30 + 20_000) {
            let c = k.code_for_step(step);
            if let Some(&earlier) = seen.get(&c) {
                pair = Some((earlier, step, c));
                break;
            }
            seen.insert(c, step);
        }
        let (earlier, later, code) = pair.expect("some code repeats within 40000 steps");
        // A window from `earlier` to past `later`: both match, the first wins.
        let window = (later - earlier) * 30;
        assert_eq!(k.verify(&code, later * 30, window), Some(earlier));
        assert_eq!(k.verify(&code, later * 30, 0), Some(later));
    }

    #[test]
    fn verify_rejects_malformed_codes() {
        let k = vector_key();
        let now = 1_700_000_000;
        for bad in [
            "",
            "80443",
            "8044390",
            "80443a",
            "+80443",
            "-80443",
            "80 439",
            "８０４４３９",
            "804439x",
        ] {
            assert_eq!(k.verify(bad, now, 30), None, "{bad:?}");
        }
    }

    #[test]
    fn verify_never_matches_before_1970() {
        let k = rfc_key();
        let step0 = k.code_at(0);
        assert_eq!(k.verify(&step0, 0, 30), Some(0));
        assert_eq!(k.verify(&step0, -1000, 30), None);
        assert_eq!(k.code_at(-5), step0);
    }

    #[test]
    fn b32_and_pretty() {
        let k = vector_key();
        assert_eq!(k.b32(), VECTOR_B32);
        // passlib: TOTP(key=VECTOR_B32).pretty_key()
        assert_eq!(k.pretty(), "EQCC-BJEU-OIXM-L6D7-V723-4V7K-TXJV-UC5B");
        let odd = TotpKey::from_bytes(&[0u8; 11]);
        assert_eq!(odd.b32(), "AAAAAAAAAAAAAAAAAA");
        assert_eq!(odd.pretty(), "AAAA-AAAA-AAAA-AAAA-AA");
    }

    #[test]
    fn generate_makes_distinct_20_byte_keys() {
        let a = TotpKey::generate();
        let b = TotpKey::generate();
        assert_eq!(a.as_bytes().len(), KEY_LEN);
        assert_eq!(a.b32().len(), 32);
        assert_eq!(a.pretty().len(), 39);
        assert_ne!(a.as_bytes(), b.as_bytes());
        let c = a.clone();
        assert_eq!(a.as_bytes(), c.as_bytes());
    }

    #[test]
    fn debug_is_redacted() {
        let k = vector_key();
        let dbg = format!("{k:?} {k:#?}");
        assert!(!dbg.contains(VECTOR_B32), "{dbg}");
        assert!(!dbg.contains(&format!("{:?}", k.as_bytes())), "{dbg}");
        assert!(!dbg.contains(&hex::encode(k.as_bytes())), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn otpauth_uri_as_passlib_writes_it() {
        let k = vector_key();
        // passlib 1.7.4: TOTP(key=VECTOR_B32, issuer="FS Conformance").to_uri("user@example.com")
        assert_eq!(
            otpauth_uri(&k, "FS Conformance", "user@example.com"),
            "otpauth://totp/FS%20Conformance:user@example.com\
             ?secret=EQCCBJEUOIXML6D7V7234V7KTXJVUC5B&issuer=FS%20Conformance"
        );
        // passlib 1.7.4: TOTP(key=VECTOR_B32).to_uri("a b/c+e&f=g?h#i%j~k.l_m-n@é", "FS Conf/@&é~")
        assert_eq!(
            otpauth_uri(&k, "FS Conf/@&é~", "a b/c+e&f=g?h#i%j~k.l_m-n@é"),
            "otpauth://totp/FS%20Conf%2F@%26%C3%A9~:a%20b%2Fc%2Be%26f%3Dg%3Fh%23i%25j~k.l_m-n@%C3%A9\
             ?secret=EQCCBJEUOIXML6D7V7234V7KTXJVUC5B&issuer=FS%20Conf%2F%40%26%C3%A9~"
        );
        // passlib: TOTP(key=VECTOR_B32).to_uri("user@example.com") (no issuer)
        assert_eq!(
            otpauth_uri(&k, "", "user@example.com"),
            "otpauth://totp/user@example.com?secret=EQCCBJEUOIXML6D7V7234V7KTXJVUC5B"
        );
        // A ':' (which passlib refuses) cannot split the label.
        assert_eq!(
            otpauth_uri(&k, "a:b", "c:d"),
            "otpauth://totp/a%3Ab:c%3Ad?secret=EQCCBJEUOIXML6D7V7234V7KTXJVUC5B&issuer=a%3Ab"
        );
    }

    #[test]
    fn qr_svg_data_uri_is_an_svg() {
        let uri = otpauth_uri(&vector_key(), "FS Conformance", "user@example.com");
        let data = qr_svg_data_uri(&uri).unwrap();
        let b64 = data.strip_prefix("data:image/svg+xml;base64,").unwrap();
        let svg = String::from_utf8(STANDARD.decode(b64).unwrap()).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        // The QR is of the URI: a different URI draws different modules.
        let other = qr_svg_data_uri(&otpauth_uri(&vector_key(), "FS", "user@example.com")).unwrap();
        assert_ne!(data, other);
    }

    #[test]
    fn qr_of_an_overlong_uri_is_none() {
        assert!(qr_svg_data_uri(&"x".repeat(4000)).is_none());
    }
}
