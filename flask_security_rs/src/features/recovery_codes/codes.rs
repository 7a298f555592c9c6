//! Multi-factor recovery codes, as Flask-Security makes and keeps them:
//! `MULTI_FACTOR_RECOVERY_CODES_N` random codes of 12 lowercase hex digits
//! in groups of four (`419a-78ce-c353`), kept in the user's
//! `mf_recovery_codes` column joined by commas. With
//! `MULTI_FACTOR_RECOVERY_CODES_KEYS` each code is stored as a Fernet token
//! (the first key encrypts, every key decrypts; Python's
//! `cryptography.fernet.MultiFernet`), and `MULTI_FACTOR_RECOVERY_CODE_TTL`
//! is the largest age, in seconds, of a token still accepted. A code is
//! single-use: using it removes it from the column.
//!
//! Pure functions of the column's value; the feature reads and writes the
//! column. The `*_at` forms take the time (seconds since the epoch) so
//! callers pass the library's clock and tests need not sleep.

use base64::Engine as _;
use fernet::Fernet;
use rand::RngCore;

use crate::util;

/// `n` distinct new codes, `xxxx-xxxx-xxxx` in lowercase hex (48 random
/// bits each).
pub(crate) fn generate(n: usize) -> Vec<String> {
    let mut rng = rand::thread_rng();
    let mut codes: Vec<String> = Vec::with_capacity(n);
    while codes.len() < n {
        let mut bytes = [0u8; 6];
        rng.fill_bytes(&mut bytes);
        let digits = util::hex(&bytes);
        let code = format!("{}-{}-{}", &digits[..4], &digits[4..8], &digits[8..]);
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// Turns codes into the column's value and back: plain, or each code
/// Fernet-encrypted when keys are configured. Its `Debug` shows how many
/// keys it has, never a key.
#[derive(Clone)]
pub(crate) struct CodeVault {
    /// Empty: codes are stored as they are. Else the first encrypts.
    keys: Vec<Fernet>,
    /// Largest accepted age of a token, in seconds.
    ttl: Option<u64>,
}

impl std::fmt::Debug for CodeVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeVault")
            .field("keys", &self.keys.len())
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// Seconds since the epoch by the system clock.
fn system_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The entries of a column value (`AsaList`: an empty value is no entry).
fn entries(stored: &str) -> impl Iterator<Item = &str> {
    (!stored.is_empty())
        .then(|| stored.split(','))
        .into_iter()
        .flatten()
}

/// The creation time a Fernet token carries (bytes 1..9, big-endian).
fn token_time(token: &str) -> Option<u64> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim_end_matches('='))
        .ok()?;
    let stamp: [u8; 8] = raw.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(stamp))
}

impl CodeVault {
    /// A vault for the configured `keys` (URL-safe base64 of 32 bytes, as
    /// `Fernet.generate_key()` writes them; none, or an empty list, stores
    /// codes in plain) and `ttl`. A key that is not a Fernet key is an
    /// error naming its position, not its value.
    pub(crate) fn new(keys: Option<&[String]>, ttl: Option<u64>) -> Result<CodeVault, String> {
        let keys = keys
            .unwrap_or_default()
            .iter()
            .enumerate()
            .map(|(i, key)| {
                Fernet::new(key.trim()).ok_or_else(|| {
                    format!(
                        "key {i} is not a Fernet key (32 bytes in URL-safe base64, \
                         as Fernet.generate_key() makes)"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CodeVault { keys, ttl })
    }

    /// The column value for `codes`: comma-joined, each code encrypted
    /// under the first key when there are keys.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn seal(&self, codes: &[String]) -> String {
        self.seal_at(codes, system_now())
    }

    /// [`seal`](Self::seal) with tokens stamped `now`.
    pub(crate) fn seal_at(&self, codes: &[String], now: u64) -> String {
        match self.keys.first() {
            None => codes.join(","),
            Some(primary) => codes
                .iter()
                .map(|code| primary.encrypt_at_time(code.as_bytes(), now))
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// The code an entry of the column holds at time `now`: the entry
    /// itself in plain mode; else the plaintext of a token one of the keys
    /// opens and not older than the TTL.
    fn reveal(&self, entry: &str, now: u64) -> Option<String> {
        if self.keys.is_empty() {
            return Some(entry.to_string());
        }
        let plain = self
            .keys
            .iter()
            .find_map(|key| key.decrypt_at_time(entry, None, now).ok())?;
        // Checked after the HMAC, so the time is authentic, and without
        // overflow whatever it is.
        if let Some(ttl) = self.ttl
            && token_time(entry)?.saturating_add(ttl) < now
        {
            return None;
        }
        String::from_utf8(plain).ok()
    }

    /// The codes in a column value. Entries no key opens, or older than
    /// the TTL, are left out (and left in the column).
    pub(crate) fn open(&self, stored: &str) -> Vec<String> {
        self.open_at(stored, system_now())
    }

    /// [`open`](Self::open) at time `now`.
    pub(crate) fn open_at(&self, stored: &str, now: u64) -> Vec<String> {
        entries(stored)
            .filter_map(|entry| self.reveal(entry, now))
            .filter(|code| !code.is_empty())
            .collect()
    }

    /// The column value with `code` removed, if `code` is one of the codes
    /// in `stored`; `None` if it is not (or is empty).
    ///
    /// The submitted code is compared as it is, as Flask-Security does
    /// (`code in codes`: no trimming, no case folding), but in constant
    /// time, against every entry. Exactly the matching entry is removed;
    /// every other entry is kept byte for byte, including entries no key
    /// opens now (an instance with other keys may still open them).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn consume(&self, stored: &str, code: &str) -> Option<String> {
        self.consume_at(stored, code, system_now())
    }

    /// [`consume`](Self::consume) at time `now`.
    pub(crate) fn consume_at(&self, stored: &str, code: &str, now: u64) -> Option<String> {
        if code.is_empty() {
            return None;
        }
        let all: Vec<&str> = entries(stored).collect();
        let mut found = None;
        for (i, entry) in all.iter().enumerate() {
            let matches = self
                .reveal(entry, now)
                .is_some_and(|plain| util::ct_eq(plain.as_bytes(), code.as_bytes()));
            if matches && found.is_none() {
                found = Some(i);
            }
        }
        let found = found?;
        Some(
            all.iter()
                .enumerate()
                .filter(|(i, _)| *i != found)
                .map(|(_, entry)| *entry)
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// Two keys made by Python's `Fernet.generate_key()`.
    const KEY_A: &str = "QLyu8KbMA-_l5-n88bLYXLqjXA0C1coBdAwb8sm8lKI=";
    const KEY_B: &str = "T8B3OxyJN-3FqBBtWr_09D3V6JnpJO_7y3MhHfZ4OYg=";
    /// `Fernet(KEY_A).encrypt_at_time(b"419a-78ce-c353", 1700000000)`
    /// (cryptography 50.0.2).
    const TOKEN_A: &str = "gAAAAABlU_EAd5B0lf_G_K2r1Fz41gP1IOmxhiNYDRN7_qWFuVJd8uP-kQqI6HoJS7md_mRy94px030iV92Kr8dLUsj_MZRI1g==";
    /// `Fernet(KEY_B).encrypt_at_time(b"879f-0ca5-cf7f", 1700000000)`.
    const TOKEN_B: &str = "gAAAAABlU_EAoTheNt7KoBov8ad8vCIUO1tHmA5JpzVOBPbtPR3_tXma2dp6lWI1c_y6Z3t8eTJNwyJANVTIwGwDCQff0bV_0w==";
    /// `Fernet(KEY_A).encrypt_at_time(b"48cc-4f0f-e5a8", 1700000000)`.
    const TOKEN_C: &str = "gAAAAABlU_EAA9nfwO25M4ihSKcUJwNwAYDpFDQnvueMWcw7Rqo7VIuwj1Op9qOaDvSSpWimALG5YQtmQpFr1ZE7idTO8_tsQA==";
    const MADE: u64 = 1_700_000_000;

    fn keys(list: &[&str]) -> Vec<String> {
        list.iter().map(|k| k.to_string()).collect()
    }

    fn plain() -> CodeVault {
        CodeVault::new(None, None).unwrap()
    }

    fn codes(list: &[&str]) -> Vec<String> {
        keys(list)
    }

    #[test]
    fn generated_codes_look_like_flask_securitys() {
        let made = generate(5);
        assert_eq!(made.len(), 5);
        for code in &made {
            assert_eq!(code.len(), 14, "{code}");
            for (i, c) in code.chars().enumerate() {
                if i == 4 || i == 9 {
                    assert_eq!(c, '-', "{code}");
                } else {
                    assert!(matches!(c, '0'..='9' | 'a'..='f'), "{code}");
                }
            }
        }
        let mut distinct = made.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 5);
        // Fresh each time.
        let again = generate(5);
        assert!(made.iter().all(|c| !again.contains(c)));
        assert!(generate(0).is_empty());
        assert_eq!(generate(50).len(), 50);
    }

    #[test]
    fn plain_round_trip() {
        let vault = plain();
        let made = generate(5);
        let stored = vault.seal(&made);
        assert_eq!(stored, made.join(","));
        assert_eq!(vault.open(&stored), made);
        assert!(vault.open("").is_empty());
        assert_eq!(vault.seal(&[]), "");
        // No keys and an empty key list are the same: plain.
        let empty = CodeVault::new(Some(&[]), Some(60)).unwrap();
        assert_eq!(empty.seal(&made), stored);
    }

    #[test]
    fn encrypted_round_trip() {
        let vault = CodeVault::new(Some(&keys(&[KEY_A, KEY_B])), None).unwrap();
        let made = generate(5);
        let stored = vault.seal(&made);
        let tokens: Vec<&str> = stored.split(',').collect();
        assert_eq!(tokens.len(), 5);
        for (token, code) in tokens.iter().zip(&made) {
            assert_eq!(token.len(), 100, "as Flask-Security's test expects");
            assert!(!token.contains(code.as_str()));
        }
        assert_eq!(vault.open(&stored), made);
        // The first key encrypted: a vault with only it opens them all...
        let a = CodeVault::new(Some(&keys(&[KEY_A])), None).unwrap();
        assert_eq!(a.open(&stored), made);
        // ...one with only the second opens none.
        let b = CodeVault::new(Some(&keys(&[KEY_B])), None).unwrap();
        assert!(b.open(&stored).is_empty());
        // Plain mode shows tokens as they are (as Flask-Security does).
        assert_eq!(plain().open(&stored).len(), 5);
    }

    #[test]
    fn opens_tokens_python_made() {
        let stored = [TOKEN_A, TOKEN_B, TOKEN_C].join(",");
        let both = CodeVault::new(Some(&keys(&[KEY_B, KEY_A])), None).unwrap();
        assert_eq!(
            both.open(&stored),
            codes(&["419a-78ce-c353", "879f-0ca5-cf7f", "48cc-4f0f-e5a8"])
        );
        // Undecryptable entries are skipped, not fatal.
        let a = CodeVault::new(Some(&keys(&[KEY_A])), None).unwrap();
        assert_eq!(
            a.open(&stored),
            codes(&["419a-78ce-c353", "48cc-4f0f-e5a8"])
        );
        let mixed = format!("{TOKEN_A},not-a-token,,{}", &TOKEN_C[..60]);
        assert_eq!(a.open(&mixed), codes(&["419a-78ce-c353"]));
        // And a token Rust made opens in the same way.
        let sealed = a.seal_at(&codes(&["419a-78ce-c353"]), MADE);
        assert!(sealed.starts_with("gAAAAABlU_EA"), "{sealed}");
        assert_eq!(a.open(&sealed), codes(&["419a-78ce-c353"]));
    }

    #[test]
    fn ttl_expires_tokens() {
        let stored = [TOKEN_A, TOKEN_C].join(",");
        let vault = CodeVault::new(Some(&keys(&[KEY_A])), Some(100)).unwrap();
        let both = codes(&["419a-78ce-c353", "48cc-4f0f-e5a8"]);
        assert_eq!(vault.open_at(&stored, MADE + 100), both);
        assert!(vault.open_at(&stored, MADE + 101).is_empty());
        assert_eq!(
            vault.consume_at(&stored, "419a-78ce-c353", MADE + 100),
            Some(TOKEN_C.to_string())
        );
        assert_eq!(
            vault.consume_at(&stored, "419a-78ce-c353", MADE + 101),
            None
        );
        // Without a TTL, age does not matter.
        let forever = CodeVault::new(Some(&keys(&[KEY_A])), None).unwrap();
        assert_eq!(forever.open_at(&stored, MADE + 10_000_000), both);
        // A token from more than a minute in the future is refused (as
        // Python's Fernet does), TTL or not.
        assert!(forever.open_at(&stored, MADE - 61).is_empty());
        assert_eq!(forever.open_at(&stored, MADE - 60), both);
        // A huge TTL does not overflow.
        let huge = CodeVault::new(Some(&keys(&[KEY_A])), Some(u64::MAX)).unwrap();
        assert_eq!(huge.open_at(&stored, MADE + 1), both);
    }

    #[test]
    fn consume_removes_exactly_one() {
        for vault in [
            plain(),
            CodeVault::new(Some(&keys(&[KEY_A, KEY_B])), Some(3600)).unwrap(),
        ] {
            let made = generate(5);
            let stored = vault.seal(&made);
            let after = vault.consume(&stored, &made[2]).unwrap();
            let mut rest = made.clone();
            rest.remove(2);
            assert_eq!(vault.open(&after), rest);
            // The other entries are kept as they were (not re-encrypted).
            let kept: Vec<&str> = stored
                .split(',')
                .enumerate()
                .filter(|(i, _)| *i != 2)
                .map(|(_, e)| e)
                .collect();
            assert_eq!(after, kept.join(","));
            // Used, unknown, empty: not a code.
            assert_eq!(vault.consume(&after, &made[2]), None);
            assert_eq!(vault.consume(&after, "0000-0000-0000"), None);
            assert_eq!(vault.consume(&after, ""), None);
            assert_eq!(vault.consume("", &made[0]), None);
            // Compared exactly, as Flask-Security does.
            assert_eq!(vault.consume(&after, &made[0].to_uppercase()), None);
            assert_eq!(vault.consume(&after, &format!(" {}", made[0])), None);
            assert_eq!(vault.consume(&after, &made[0][..13]), None);
            // Using them all leaves an empty column.
            let mut column = after;
            for code in &rest {
                column = vault.consume(&column, code).unwrap();
            }
            assert_eq!(column, "");
            assert!(vault.open(&column).is_empty());
        }
    }

    #[test]
    fn consume_keeps_entries_it_cannot_open() {
        // Flask-Security removes by position in the decrypted list, which
        // is off by one after a skipped entry; here the used code goes.
        let stored = [TOKEN_B, TOKEN_A, TOKEN_C].join(",");
        let a = CodeVault::new(Some(&keys(&[KEY_A])), None).unwrap();
        assert_eq!(
            a.consume(&stored, "48cc-4f0f-e5a8"),
            Some([TOKEN_B, TOKEN_A].join(","))
        );
        // A code whose token this vault cannot open is not accepted.
        assert_eq!(a.consume(&stored, "879f-0ca5-cf7f"), None);
        // A duplicate removes one copy.
        let twice = plain().seal(&codes(&["aaaa-bbbb-cccc", "aaaa-bbbb-cccc"]));
        assert_eq!(
            plain().consume(&twice, "aaaa-bbbb-cccc").as_deref(),
            Some("aaaa-bbbb-cccc")
        );
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        for bad in [
            "",
            "short",
            "QLyu8KbMA-_l5-n88bLYXLqjXA0C1coBdAwb8sm8l",
            "!!!!",
        ] {
            let err = CodeVault::new(Some(&keys(&[KEY_A, bad])), None).unwrap_err();
            assert!(err.contains("key 1"), "{err}");
            assert!(!err.contains(KEY_A), "{err}");
            if !bad.is_empty() {
                assert!(!err.contains(bad), "{err}");
            }
        }
        // Surrounding whitespace (a newline from a file) is ignored.
        assert!(CodeVault::new(Some(&keys(&[&format!("{KEY_A}\n")])), None).is_ok());
    }

    #[test]
    fn debug_shows_no_key() {
        let vault = CodeVault::new(Some(&keys(&[KEY_A, KEY_B])), Some(60)).unwrap();
        let debug = format!("{vault:?}");
        assert_eq!(debug, "CodeVault { keys: 2, ttl: Some(60) }");
        assert!(!debug.contains(&KEY_A[..8]) && !debug.contains(&KEY_B[..8]));
    }
}
