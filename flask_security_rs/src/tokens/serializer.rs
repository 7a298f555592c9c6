//! The itsdangerous format used by every Flask-Security token.
//!
//! Every Flask-Security token (auth, confirm, reset, change-email, passwordless,
//! two-factor state, ...) is an itsdangerous `URLSafeTimedSerializer` token; refresh
//! tokens use the untimed `URLSafeSerializer`. [`Serializer`] produces and checks both,
//! byte-for-byte compatible with itsdangerous 2.x:
//!
//! ```text
//! json    = compact JSON (insertion order, non-ASCII kept, Python float repr)
//! payload = base64url(zlib(json)) prefixed by "." when that is shorter, else base64url(json)
//! value   = payload "." base64url(big-endian timestamp)        (timed)
//!         = payload                                            (untimed)
//! token   = value "." base64url(HMAC-SHA1(SHA1(salt "signer" secret), value))
//! ```
//!
//! All base64 is URL-safe without padding. The first key signs; every key verifies, so
//! `SECRET_KEY_FALLBACKS` can be passed after `SECRET_KEY`.
//!
//! The module also holds Flask-Login's remember-me cookie format
//! ([`remember_cookie_value`], [`verify_remember_cookie`]).

use std::fmt;
use std::io::Read;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use flate2::read::ZlibDecoder;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::{Digest, Sha1};
use sha2::Sha512;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;
type HmacSha512 = Hmac<Sha512>;

/// URL-safe base64 that writes no padding and, like Python's decoder, tolerates
/// padding and non-zero trailing bits when reading.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Separator between the parts of a token.
const SEP: char = '.';

/// Why a token was rejected.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Malformed token, or its signature does not match any key.
    #[error("bad signature")]
    BadSignature,
    /// The signature is valid but the token is older than `max_age` (or dated in the
    /// future). The decoded payload is kept so callers can tell "expired" from "invalid".
    #[error("signature expired")]
    Expired {
        /// The decoded payload of the expired token.
        payload: Value,
        /// The signing time (Unix seconds) embedded in the token.
        timestamp: i64,
    },
    /// The signature is valid but the payload is not base64 / zlib / JSON.
    #[error("bad payload")]
    BadPayload,
}

/// An itsdangerous `URLSafe(Timed)Serializer` with "django-concat" key derivation
/// and HMAC-SHA1 signatures.
#[derive(Clone)]
pub struct Serializer {
    /// HMAC state keyed with each secret key's derived key, cloned for every
    /// MAC (keying costs two SHA-1 blocks); all of them verify.
    verifiers: Vec<HmacSha1>,
    /// The first key's, or with no keys the one derived from an empty secret.
    signer: HmacSha1,
    salt: String,
}

impl fmt::Debug for Serializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Serializer")
            .field("keys", &format_args!("<{} redacted>", self.verifiers.len()))
            .field("salt", &self.salt)
            .finish()
    }
}

impl Serializer {
    /// Builds a serializer for `salt`. `secret_keys[0]` (`SECRET_KEY`) signs new tokens;
    /// all keys (`SECRET_KEY` followed by `SECRET_KEY_FALLBACKS`) are accepted when
    /// verifying. With no keys at all nothing verifies, and tokens are signed with the
    /// key derived from an empty secret.
    pub fn new<K: AsRef<[u8]>>(secret_keys: &[K], salt: &str) -> Self {
        let derive = |secret: &[u8]| -> [u8; 20] {
            let mut h = Sha1::new();
            h.update(salt.as_bytes());
            h.update(b"signer");
            h.update(secret);
            h.finalize().into()
        };
        let verifiers: Vec<HmacSha1> = secret_keys
            .iter()
            .map(|k| Self::mac(&derive(k.as_ref())))
            .collect();
        let signer = match verifiers.first() {
            Some(first) => first.clone(),
            None => Self::mac(&derive(b"")),
        };
        Self {
            verifiers,
            signer,
            salt: salt.to_owned(),
        }
    }

    /// Timed token for `value`, stamped with `timestamp` (Unix seconds; negative values
    /// are clamped to 0 because the format stores an unsigned integer).
    pub fn dumps_at(&self, value: &Value, timestamp: i64) -> String {
        let mut out = encode_payload(value);
        out.push(SEP);
        let ts = u64::try_from(timestamp).unwrap_or(0);
        out.push_str(&B64.encode(int_to_bytes(ts)));
        self.append_signature(out)
    }

    /// Like [`dumps_at`](Self::dumps_at), but the payload is never
    /// compressed: itsdangerous reads both forms, and trying zlib costs more
    /// than the rest of signing a short payload that would not shrink.
    pub fn dumps_plain_at(&self, value: &Value, timestamp: i64) -> String {
        let mut out = B64.encode(to_python_json(value));
        out.push(SEP);
        let ts = u64::try_from(timestamp).unwrap_or(0);
        out.push_str(&B64.encode(int_to_bytes(ts)));
        self.append_signature(out)
    }

    /// Checks a timed token as of `now` (Unix seconds) and returns its payload.
    ///
    /// With `max_age_secs` set, a token whose age is greater than `max_age_secs` or
    /// negative is rejected with [`TokenError::Expired`] (carrying the decoded payload).
    /// Without it, age is not checked, as in itsdangerous.
    pub fn loads_at(
        &self,
        token: &str,
        max_age_secs: Option<i64>,
        now: i64,
    ) -> Result<Value, TokenError> {
        let (payload, timestamp) = self.loads_signed(token)?;
        if let Some(max_age) = max_age_secs {
            let age = now.saturating_sub(timestamp);
            if age > max_age || age < 0 {
                return Err(TokenError::Expired { payload, timestamp });
            }
        }
        Ok(payload)
    }

    /// The payload of a timed token whose signature is good, and when it was
    /// signed (Unix seconds); its age is the caller's to check.
    pub fn loads_signed(&self, token: &str) -> Result<(Value, i64), TokenError> {
        let value = self.unsign(token)?;
        let (payload, ts_b64) = value.rsplit_once(SEP).ok_or(TokenError::BadSignature)?;
        let timestamp = decode_timestamp(ts_b64).ok_or(TokenError::BadSignature)?;
        Ok((decode_payload(payload)?, timestamp))
    }

    /// Untimed token for `value` (itsdangerous `URLSafeSerializer`), the
    /// format of refresh tokens (a later issue); the known-answer tests pin it.
    #[allow(dead_code)]
    pub fn dumps_untimed(&self, value: &Value) -> String {
        self.append_signature(encode_payload(value))
    }

    /// Checks an untimed token and returns its payload.
    #[allow(dead_code)]
    pub fn loads_untimed(&self, token: &str) -> Result<Value, TokenError> {
        let value = self.unsign(token)?;
        decode_payload(value)
    }

    fn mac(key: &[u8; 20]) -> HmacSha1 {
        // HMAC zero-pads keys shorter than the 64-byte SHA-1 block, so handing it the
        // padded block gives the same MAC through the infallible constructor.
        let mut block = hmac::digest::Key::<HmacSha1>::default();
        for (dst, src) in block.iter_mut().zip(key) {
            *dst = *src;
        }
        <HmacSha1 as hmac::digest::KeyInit>::new(&block)
    }

    fn append_signature(&self, mut value: String) -> String {
        let mut mac = self.signer.clone();
        mac.update(value.as_bytes());
        let sig = mac.finalize().into_bytes();
        value.push(SEP);
        value.push_str(&B64.encode(sig));
        value
    }

    /// Splits off and checks the signature; returns the signed value.
    fn unsign<'t>(&self, token: &'t str) -> Result<&'t str, TokenError> {
        let (value, sig_b64) = token.rsplit_once(SEP).ok_or(TokenError::BadSignature)?;
        let sig = B64
            .decode(sig_b64.as_bytes())
            .map_err(|_| TokenError::BadSignature)?;
        let mut ok = false;
        for verifier in &self.verifiers {
            let mut mac = verifier.clone();
            mac.update(value.as_bytes());
            // `verify_slice` compares in constant time.
            ok |= mac.verify_slice(&sig).is_ok();
        }
        if ok {
            Ok(value)
        } else {
            Err(TokenError::BadSignature)
        }
    }
}

/// One [`Serializer`] per salt over one set of keys, each built on first
/// use and then shared: deriving and keying the MACs is most of the cost of
/// signing a short token. Salts come from the configuration and the code,
/// never from requests, so the set stays small.
pub(crate) struct Serializers {
    keys: Vec<Vec<u8>>,
    by_salt: std::sync::RwLock<Vec<(Box<str>, std::sync::Arc<Serializer>)>>,
}

impl Serializers {
    pub(crate) fn new(keys: Vec<Vec<u8>>) -> Self {
        Self {
            keys,
            by_salt: std::sync::RwLock::new(Vec::new()),
        }
    }

    /// The serializer for `salt`.
    pub(crate) fn get(&self, salt: &str) -> std::sync::Arc<Serializer> {
        let find = |list: &[(Box<str>, std::sync::Arc<Serializer>)]| {
            list.iter()
                .find(|(s, _)| &**s == salt)
                .map(|(_, ser)| ser.clone())
        };
        if let Some(ser) = find(&self.by_salt.read().unwrap_or_else(|p| p.into_inner())) {
            return ser;
        }
        let mut list = self.by_salt.write().unwrap_or_else(|p| p.into_inner());
        if let Some(ser) = find(&list) {
            return ser;
        }
        let ser = std::sync::Arc::new(Serializer::new(&self.keys, salt));
        list.push((salt.into(), ser.clone()));
        ser
    }
}

/// Big-endian bytes without leading zeros (0 encodes as no bytes at all).
fn int_to_bytes(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes.get(skip..).map(<[u8]>::to_vec).unwrap_or_default()
}

fn decode_timestamp(ts_b64: &str) -> Option<i64> {
    let bytes = B64.decode(ts_b64.as_bytes()).ok()?;
    let significant = bytes.get(bytes.iter().take_while(|b| **b == 0).count()..)?;
    if significant.len() > 8 {
        return None;
    }
    let n = significant
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    i64::try_from(n).ok()
}

fn encode_payload(value: &Value) -> String {
    let json = to_python_json(value).into_bytes();
    let compressed = zlib_compat::compress(&json);
    if compressed.len() + 1 < json.len() {
        let mut out = String::with_capacity(1 + compressed.len() * 4 / 3 + 4);
        out.push(SEP);
        B64.encode_string(&compressed, &mut out);
        out
    } else {
        B64.encode(&json)
    }
}

fn decode_payload(payload: &str) -> Result<Value, TokenError> {
    let (compressed, b64) = match payload.strip_prefix(SEP) {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let raw = B64
        .decode(b64.as_bytes())
        .map_err(|_| TokenError::BadPayload)?;
    let json = if compressed {
        let mut out = Vec::new();
        ZlibDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|_| TokenError::BadPayload)?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|_| TokenError::BadPayload)
}

/// Serialises like Python's `json.dumps(v, separators=(",", ":"), ensure_ascii=False)`.
pub(crate) fn to_python_json(value: &Value) -> String {
    let mut out = String::new();
    write_json(value, &mut out);
    out
}

fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = n.as_f64() {
                out.push_str(&python_float_repr(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_json_str(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_str(k, out);
                out.push(':');
                write_json(v, out);
            }
            out.push('}');
        }
    }
}

fn write_json_str(s: &str, out: &mut String) {
    out.push('"');
    // Most strings (ids, hex secrets) need no escape at all.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, positional notation when the
/// decimal exponent is in `-4..16`, otherwise `d.ddde+XX` / `de-XX`.
pub(crate) fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "-1.5e-7", "0e0".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    // Position of the decimal point relative to the digit string (0.DIGITS x 10^decpt).
    let decpt = exp + 1;
    let mut out = String::from(sign);
    if (-3..=16).contains(&decpt) {
        let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
        if decpt <= 0 {
            out.push_str("0.");
            for _ in 0..(-decpt) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            for _ in 0..(decpt - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let split = usize::try_from(decpt).unwrap_or(0);
            let (int_part, frac_part) = digits.split_at(split.min(digits.len()));
            out.push_str(int_part);
            out.push('.');
            out.push_str(frac_part);
        }
    } else {
        let mut chars = digits.chars();
        if let Some(first) = chars.next() {
            out.push(first);
        }
        let rest: String = chars.collect();
        if !rest.is_empty() {
            out.push('.');
            out.push_str(&rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    }
    out
}

fn remember_digest_hex(secret_key: &[u8], uid: &str) -> String {
    let mut mac = <HmacSha512 as Mac>::new_from_slice(secret_key)
        .unwrap_or_else(|_| <HmacSha512 as hmac::digest::KeyInit>::new(&Default::default()));
    mac.update(uid.as_bytes());
    crate::util::hex(&mac.finalize().into_bytes())
}

/// Flask-Login's remember-me cookie value: `"<uid>|<hex HMAC-SHA512(secret_key, uid)>"`.
pub fn remember_cookie_value(secret_key: &[u8], uid: &str) -> String {
    format!("{uid}|{}", remember_digest_hex(secret_key, uid))
}

/// Checks a remember-me cookie value against every key (constant-time) and returns the
/// user id when one of them produced its digest.
pub fn verify_remember_cookie(secret_keys: &[&[u8]], value: &str) -> Option<String> {
    let (uid, digest) = value.rsplit_once('|')?;
    let mut ok = subtle::Choice::from(0u8);
    for key in secret_keys {
        let expected = remember_digest_hex(key, uid);
        ok |= expected.as_bytes().ct_eq(digest.as_bytes());
    }
    if bool::from(ok) {
        Some(uid.to_owned())
    } else {
        None
    }
}

/// `zlib.compress(data)` as CPython does it: flate2 over stock zlib (the
/// `zlib` backend, i.e. the same C library Python links) at the default level,
/// so our tokens are byte-identical to itsdangerous' for the same payload and time.
mod zlib_compat {
    use std::cell::RefCell;

    use flate2::{Compress, Compression, FlushCompress, Status};

    thread_local! {
        /// One compressor per thread, reset between uses: setting up zlib's
        /// state (a few hundred KiB) costs far more than compressing a token.
        static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
    }

    pub(super) fn compress(data: &[u8]) -> Vec<u8> {
        DEFLATE.with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return deflate(&mut Compress::new(Compression::new(6), true), data);
            };
            let comp = slot.get_or_insert_with(|| Compress::new(Compression::new(6), true));
            comp.reset();
            deflate(comp, data)
        })
    }

    /// The whole zlib stream of `data` (empty on an error: no compression).
    fn deflate(comp: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + data.len() / 16 + 64);
        loop {
            let read = usize::try_from(comp.total_in()).unwrap_or(data.len());
            let rest = data.get(read..).unwrap_or_default();
            match comp.compress_vec(rest, &mut out, FlushCompress::Finish) {
                Ok(Status::StreamEnd) => return out,
                Ok(_) => out.reserve(out.capacity().max(64)),
                Err(_) => return Vec::new(),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const TS: i64 = 1_767_225_600;
    const SPEC_TOKEN: &str = ".eJyrVipLLVKyUjJV0lEqzUwBsgwMjYxNTM3MLSwTk5JTUtPQ-UCFacXxBYmJSlaG5mbmRkamZgYGegY6SqkVBUpWBrUAibUVzg.aVW5AA.7DwShwaGDOwhYnCz_eIy_DI0OwI";

    fn spec_payload() -> Value {
        json!({"ver":"5","uid":"0123456789abcdef0123456789abcdef","fs_paa":1767225600.0,"exp":0})
    }

    fn remember() -> Serializer {
        Serializer::new(&["super-secret-key"], "remember-salt")
    }

    #[test]
    fn plain_tokens_verify_and_match_when_zlib_would_not_shrink() {
        let s = remember();
        let secret = Value::String("3f9c2a7be14d58061bd2f7a9c3e5108246dbf0a7".into());
        let plain = s.dumps_plain_at(&secret, TS);
        assert!(!plain.starts_with('.'));
        assert_eq!(plain, s.dumps_at(&secret, TS));
        assert_eq!(s.loads_at(&plain, None, TS).unwrap(), secret);
        // A payload zlib does shrink still verifies uncompressed.
        let long = Value::String("ab".repeat(100));
        let plain = s.dumps_plain_at(&long, TS);
        assert!(s.dumps_at(&long, TS).starts_with('.'));
        assert_eq!(s.loads_at(&plain, None, TS).unwrap(), long);
    }

    #[test]
    fn spec_worked_example_is_byte_exact() {
        let s = remember();
        assert_eq!(s.dumps_at(&spec_payload(), TS), SPEC_TOKEN);
        let v = s.loads_at(SPEC_TOKEN, Some(900), TS + 10).unwrap();
        assert_eq!(v, spec_payload());
        assert_eq!(
            to_python_json(&v),
            r#"{"ver":"5","uid":"0123456789abcdef0123456789abcdef","fs_paa":1767225600.0,"exp":0}"#
        );
    }

    // Vectors below were generated with itsdangerous 2.2.0 (time frozen at TS).
    #[test]
    fn itsdangerous_vectors() {
        let s = remember();
        assert_eq!(
            s.dumps_at(&json!(["abc"]), TS),
            "WyJhYmMiXQ.aVW5AA.4TbUVU-YufsGhM7f0kbQvfERBjA"
        );
        let confirm = Serializer::new(&["k"], "confirm-salt");
        let uni = json!([
            "0123456789abcdef0123456789abcdef",
            "h\u{e9}llo \u{e9}\u{e9} w\u{f6}rld"
        ]);
        let tok = ".eJyLVjIwNDI2MTUzt7BMTEpOSU1D5yvpKGUcXpmTk69weOXhlQrlh7cV5aQoxQIA4asTlg.aVW5AA.TgTmNuwffpdnqfdQQ20Ce1pwP4Y";
        assert_eq!(confirm.loads_at(tok, None, TS).unwrap(), uni);
        assert_eq!(confirm.dumps_at(&uni, TS), tok);

        let refresh = Serializer::new(&["k"], "refresh-token-salt");
        let payload = json!({"ver":"1","uid":"u1","expires_at":1767225600.5,"last_used_at":1.0e20,
            "name":"default","family":"abababababababababababababababab","gen":3});
        let tok = ".eJx9i0EKgDAQA_-Sq0VqRYV-Rla6SqGK2FYU8e-ueJdchiRzYecNFhUUsndC-UU-Vr9x7CnBVl3bGdO0WpeNQqCY-hzZfRsXRissNLOojkfKIYk_0uzDKRUN_5HvxAtsfT854StE.MeaRheHB1hoYM9TkmObQj0sM3TY";
        assert_eq!(refresh.loads_untimed(tok).unwrap(), payload);
        assert_eq!(refresh.dumps_untimed(&payload), tok);

        let tf = Serializer::new(&["k"], "tf-validity-salt");
        assert_eq!(
            tf.dumps_at(&json!("0123456789abcdef"), TS),
            "IjAxMjM0NTY3ODlhYmNkZWYi.aVW5AA.-YUkwmjnCBZwyF3Ulzw7jZgyKIg"
        );
        let small = Serializer::new(&["k"], "s");
        assert_eq!(
            small.dumps_at(&json!([1]), TS),
            "WzFd.aVW5AA.zK9RKYnypjMfr9LqIyb_BDh_33w"
        );
    }

    #[test]
    fn python_float_formatting() {
        let cases = [
            (1767225600.0, "1767225600.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e22, "1e+22"),
            (12345.678, "12345.678"),
            (1234567890123456.0, "1234567890123456.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1767225600.5, "1767225600.5"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
        assert_eq!(
            to_python_json(
                &json!({"a":"q\"\\\n\u{1}\u{7f}é","b":[true,null,-3,18446744073709551615u64]})
            ),
            "{\"a\":\"q\\\"\\\\\\n\\u0001\u{7f}é\",\"b\":[true,null,-3,18446744073709551615]}"
        );
    }

    #[test]
    fn tampered_token_is_bad_signature() {
        let s = remember();
        let mut bytes = SPEC_TOKEN.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            s.loads_at(&tampered, None, TS),
            Err(TokenError::BadSignature)
        ));
        // Signature of a different salt.
        let other = Serializer::new(&["super-secret-key"], "reset-salt");
        assert!(matches!(
            other.loads_at(SPEC_TOKEN, None, TS),
            Err(TokenError::BadSignature)
        ));
        // Different key.
        let other = Serializer::new(&["not-the-key"], "remember-salt");
        assert!(matches!(
            other.loads_at(SPEC_TOKEN, None, TS),
            Err(TokenError::BadSignature)
        ));
        // Timed token is not a valid untimed one and vice versa.
        let untimed = s.dumps_untimed(&json!(["x"]));
        assert!(s.loads_at(&untimed, None, TS).is_err());
    }

    #[test]
    fn expiry_and_negative_age() {
        let s = remember();
        assert!(s.loads_at(SPEC_TOKEN, Some(60), TS + 60).is_ok());
        let res = s.loads_at(SPEC_TOKEN, Some(60), TS + 61);
        assert!(
            matches!(&res, Err(TokenError::Expired { payload, timestamp })
                if *payload == spec_payload() && *timestamp == TS),
            "{res:?}"
        );
        // Issued in the future.
        assert!(matches!(
            s.loads_at(SPEC_TOKEN, Some(60), TS - 1),
            Err(TokenError::Expired { .. })
        ));
        // max_age 0: only valid within the same second.
        assert!(s.loads_at(SPEC_TOKEN, Some(0), TS).is_ok());
        assert!(s.loads_at(SPEC_TOKEN, Some(0), TS + 1).is_err());
        // No max age: never expires.
        assert!(s.loads_at(SPEC_TOKEN, None, TS + 10_000_000).is_ok());
        // Current-time helpers.
        let fresh = s.dumps_at(&json!(["now"]), 1_700_000_000);
        assert_eq!(
            s.loads_at(&fresh, Some(60), 1_700_000_030).unwrap(),
            json!(["now"])
        );
    }

    #[test]
    fn fallback_keys_verify_and_first_key_signs() {
        let old = Serializer::new(&["old-key"], "remember-salt");
        let rotated = Serializer::new(&["new-key", "old-key"], "remember-salt");
        let tok = old.dumps_at(&json!(["u"]), TS);
        assert_eq!(rotated.loads_at(&tok, None, TS).unwrap(), json!(["u"]));
        let tok = rotated.dumps_at(&json!(["u"]), TS);
        let new_only = Serializer::new(&["new-key"], "remember-salt");
        assert!(new_only.loads_at(&tok, None, TS).is_ok());
        assert!(old.loads_at(&tok, None, TS).is_err());
        let none: Serializer = Serializer::new::<&str>(&[], "remember-salt");
        assert!(none.loads_at(&tok, None, TS).is_err());
        let dbg = format!("{rotated:?}");
        assert!(!dbg.contains("new-key") && dbg.contains("remember-salt"));
    }

    #[test]
    fn short_payloads_stay_uncompressed() {
        let s = remember();
        let v = json!(["ab"]);
        let tok = s.dumps_at(&v, TS);
        assert!(!tok.starts_with('.'));
        assert_eq!(s.loads_at(&tok, Some(5), TS).unwrap(), v);
        let long = json!(["aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"]);
        let tok = s.dumps_untimed(&long);
        assert!(tok.starts_with('.'));
        assert_eq!(s.loads_untimed(&tok).unwrap(), long);
        // Timestamp 0 encodes as an empty segment.
        let tok = s.dumps_at(&v, 0);
        assert!(tok.contains(".."));
        assert_eq!(s.loads_at(&tok, None, 5).unwrap(), v);
    }

    #[test]
    fn garbage_never_panics() {
        let s = remember();
        let garbage = [
            "",
            ".",
            "..",
            "...",
            "nodots",
            "a.b",
            "a.b.c",
            "!!!.###.$$$",
            "WyJhYmMiXQ.aVW5AA.!!!",
            ".\u{e9}.\u{e9}.\u{e9}",
        ];
        for g in garbage {
            assert!(s.loads_at(g, Some(10), TS).is_err(), "{g}");
            assert!(s.loads_untimed(g).is_err(), "{g}");
        }
        // Validly signed values with a broken payload / timestamp.
        let sign = |v: &str| s.append_signature(v.to_owned());
        for (value, timed) in [
            ("!!notb64.aVW5AA", true),
            (".bm90emxpYg.aVW5AA", true), // "notzlib" marked compressed
            ("bm90anNvbg.aVW5AA", true),  // "notjson"
            (".eJyr", false),             // truncated zlib stream
            ("bm90anNvbg", false),
        ] {
            let tok = sign(value);
            let res = if timed {
                s.loads_at(&tok, Some(10), TS)
            } else {
                s.loads_untimed(&tok)
            };
            assert!(
                matches!(res, Err(TokenError::BadPayload)),
                "{value}: {res:?}"
            );
        }
        for value in ["WyJhYmMiXQ", "WyJhYmMiXQ.!!", "WyJhYmMiXQ.AQEBAQEBAQEBAQ"] {
            let tok = sign(value);
            assert!(
                matches!(s.loads_at(&tok, None, TS), Err(TokenError::BadSignature)),
                "{value}"
            );
        }
    }

    #[test]
    fn remember_cookie() {
        let key = b"super-secret-key";
        let v = remember_cookie_value(key, "0123");
        // Flask-Login / Python hmac vector.
        assert_eq!(
            v,
            "0123|b2f69f06c950386ee2d11170e4940cfeecf2b760a9df3cac8bf0aa776c4b0e8b24cb0382083847def674ff692f3f427f9c57fdd7323a4000fa0058ac34d61695"
        );
        assert_eq!(verify_remember_cookie(&[key], &v).as_deref(), Some("0123"));
        assert_eq!(
            verify_remember_cookie(&[b"new", key], &v).as_deref(),
            Some("0123")
        );
        assert_eq!(verify_remember_cookie(&[b"new"], &v), None);
        assert_eq!(verify_remember_cookie(&[key], "0123"), None);
        assert_eq!(verify_remember_cookie(&[key], "0124|b2f6"), None);
        let with_pipe = remember_cookie_value(key, "a|b");
        assert_eq!(
            verify_remember_cookie(&[key], &with_pipe).as_deref(),
            Some("a|b")
        );
    }
    /// Deterministic test input mixing literals, repeated words and back-references.
    fn zlib_test_input(n: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"uid",
            b"fs_paa",
            b"0123456789abcdef",
            b"$5$rounds=535000$",
            b"\":\"",
            b",",
            b"ver",
            b"exp",
        ];
        let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut out: Vec<u8> = Vec::with_capacity(n + 300);
        while out.len() < n {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            match (s >> 8) % 4 {
                0 => out.push((s & 0xff) as u8),
                1 => out.extend_from_slice(words[((s >> 16) % 8) as usize]),
                2 if !out.is_empty() => {
                    let dist = 1 + ((s >> 20) as usize) % out.len().min(40_000);
                    for _ in 0..(3 + (s >> 40) % 200) {
                        out.push(out[out.len() - dist]);
                    }
                }
                _ => out.push(97 + ((s >> 24) % 4) as u8),
            }
        }
        out.truncate(n);
        out
    }

    // Expected values from CPython's zlib.compress (zlib 1.2.13).
    #[test]
    fn zlib_matches_cpython() {
        assert_eq!(hex::encode(zlib_compat::compress(b"")), "789c030000000001");
        assert_eq!(
            hex::encode(zlib_compat::compress(b"a")),
            "789c4b040000620062"
        );
        assert_eq!(
            hex::encode(zlib_compat::compress(b"[\"ab\"]")),
            "789c8b564a4c528a0500061d01c0"
        );
        for (n, len, sha) in [
            (1000, 98, "f098a87e28b0978804210248c8daeba6f1055bb2"),
            (200_000, 15_527, "541ba8b0d50e0cef60e11a818ef603aca4c7ad6e"),
        ] {
            let input = zlib_test_input(n);
            let z = zlib_compat::compress(&input);
            assert_eq!(z.len(), len, "n={n}");
            assert_eq!(hex::encode(Sha1::digest(&z)), sha, "n={n}");
            let mut back = Vec::new();
            ZlibDecoder::new(z.as_slice())
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, input);
        }
    }
}
