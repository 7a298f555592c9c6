//! Bounded property tests ("fuzzing", on stable Rust, in plain `cargo test`)
//! of the library's parsers of untrusted input: itsdangerous tokens and the
//! remember cookie ([`crate::tokens`]), auth tokens
//! ([`crate::authn::parse_auth_token`]), submitted forms ([`FormInput`]),
//! stored password hashes ([`PasswordUtil::verify`]), `next` targets and
//! `Accept` headers.
//!
//! Each property runs a fixed, small number of cases and writes no
//! regression file; a failure prints the shrunk input. Where a parser is
//! lenient on purpose (base64 padding and trailing bits, as Python's decoder
//! is), the oracle accepts exactly that leniency and nothing more.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use rocket::http::{ContentType, Header};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};

use crate::http::{BadBody, FormInput};
use crate::passwords::{PasswordUtil, Verified};
use crate::state::SecurityState;
use crate::tokens::{Serializer, TokenError, remember_cookie_value, verify_remember_cookie};

// ---------------------------------------------------------------- harness

/// `cases` cases, no failure persistence (nothing is written to the tree).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `test` over `strategy` (for properties that share a client or a
/// state built once); panics with the shrunk failing input.
fn check<S: Strategy>(
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut runner = TestRunner::new(config(cases));
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

#[path = "../../tests/fuzz_strategies.rs"]
mod strategies;
use strategies::{any_text, edits, json_value, mutate, redirect_target, token_text};

// ------------------------------------------------- itsdangerous serializer

const SECRET: &str = "fuzz-secret-key";
const SALT: &str = "fuzz-salt";

/// The decoder itsdangerous (Python's base64) amounts to: URL-safe, padding
/// optional, trailing bits ignored. The oracle for "the same token".
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

fn serializer() -> Serializer {
    Serializer::new(&[SECRET], SALT)
}

/// An independent itsdangerous signer (django-concat key derivation,
/// HMAC-SHA1): `value "." base64url(signature)`.
fn sign(secret: &str, salt: &str, value: &str) -> String {
    let key: [u8; 20] = Sha1::new()
        .chain_update(salt.as_bytes())
        .chain_update(b"signer")
        .chain_update(secret.as_bytes())
        .finalize()
        .into();
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(&key).unwrap();
    mac.update(value.as_bytes());
    format!(
        "{value}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Whether `b` is `a` up to the encoding of its signature (padding, the
/// unused bits of the last character): the only changes a verifier that
/// decodes like Python may accept.
fn same_signed_token(a: &str, b: &str) -> bool {
    match (a.rsplit_once('.'), b.rsplit_once('.')) {
        (Some((va, sa)), Some((vb, sb))) => {
            va == vb
                && matches!(
                    (LENIENT_B64.decode(sa), LENIENT_B64.decode(sb)),
                    (Ok(x), Ok(y)) if x == y
                )
        }
        _ => false,
    }
}

/// What `loads_*` must make of a signed payload segment: independent of the
/// serializer's own decoder.
fn oracle_payload(payload: &str) -> Result<Value, &'static str> {
    let (compressed, b64) = match payload.strip_prefix('.') {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    let raw = LENIENT_B64.decode(b64).map_err(|_| "bad payload")?;
    let json = if compressed {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|_| "bad payload")?;
        out
    } else {
        raw
    };
    serde_json::from_slice(&json).map_err(|_| "bad payload")
}

/// The timestamp of a signed timed value: big-endian, at most 8 significant
/// bytes, within `i64`.
fn oracle_timestamp(ts: &str) -> Option<i64> {
    let bytes = LENIENT_B64.decode(ts).ok()?;
    let significant: Vec<u8> = bytes.into_iter().skip_while(|b| *b == 0).collect();
    if significant.len() > 8 {
        return None;
    }
    let mut be = [0u8; 8];
    be[8 - significant.len()..].copy_from_slice(&significant);
    i64::try_from(u64::from_be_bytes(be)).ok()
}

fn kind(r: &Result<Value, TokenError>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(TokenError::BadSignature) => "bad signature",
        Err(TokenError::BadPayload) => "bad payload",
        Err(TokenError::Expired { .. }) => "expired",
    }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Values a signer might have signed: token-alphabet noise, or payload and
/// timestamp segments built from arbitrary bytes, JSON and zlib streams.
fn signed_value() -> impl Strategy<Value = String> {
    let bytes = prop::collection::vec(any::<u8>(), 0..64);
    let json_bytes = json_value(3, 6, 24).prop_map(|v| v.to_string().into_bytes());
    let content = prop_oneof![bytes.clone(), json_bytes];
    let payload = prop_oneof![
        content.clone().prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        content
            .clone()
            .prop_map(|b| format!(".{}", URL_SAFE_NO_PAD.encode(zlib(&b)))),
        // Truncated zlib streams.
        (content, any::<prop::sample::Index>()).prop_map(|(b, i)| {
            let z = zlib(&b);
            let cut = i.index(z.len() + 1);
            format!(".{}", URL_SAFE_NO_PAD.encode(&z[..cut]))
        }),
        bytes.prop_map(|b| format!(".{}", URL_SAFE_NO_PAD.encode(b))),
        token_text(40),
    ];
    let timestamp = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..12).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        (0i64..=i64::MAX).prop_map(|t| {
            let be = t.to_be_bytes();
            let skip = be.iter().take_while(|b| **b == 0).count();
            URL_SAFE_NO_PAD.encode(&be[skip..])
        }),
        token_text(12),
    ];
    prop_oneof![
        4 => (payload.clone(), timestamp).prop_map(|(p, t)| format!("{p}.{t}")),
        1 => payload,
        1 => token_text(80),
    ]
}

proptest! {
    #![proptest_config(config(128))]

    /// dumps_at → loads_at gives the value back, for any JSON value and time;
    /// past `max_age` (or dated in the future) it is `Expired` with the payload.
    #[test]
    fn serializer_timed_round_trip(
        v in json_value(3, 6, 24),
        ts in prop_oneof![0i64..=i64::MAX, 1_500_000_000i64..2_000_000_000],
        age in -5i64..1000,
        max_age in 0i64..1000,
    ) {
        let s = serializer();
        let tok = s.dumps_at(&v, ts);
        prop_assert_eq!(s.loads_at(&tok, None, ts).ok(), Some(v.clone()));
        let now = ts.saturating_add(age);
        let age = now - ts;
        match s.loads_at(&tok, Some(max_age), now) {
            Ok(got) => prop_assert!((0..=max_age).contains(&age) && got == v),
            Err(TokenError::Expired { payload, timestamp }) => {
                prop_assert!(age < 0 || age > max_age);
                prop_assert_eq!(payload, v.clone());
                prop_assert_eq!(timestamp, ts);
            }
            Err(e) => prop_assert!(false, "{e}"),
        }
        // The independent signer produces the same token.
        let (value, _) = tok.rsplit_once('.').unwrap();
        prop_assert_eq!(&sign(SECRET, SALT, value), &tok);
        // A timed token is not an untimed one; other salts and keys reject it.
        prop_assert!(s.loads_untimed(&tok).is_err());
        prop_assert!(Serializer::new(&[SECRET], "other-salt").loads_at(&tok, None, ts).is_err());
        prop_assert!(Serializer::new(&["other-key"], SALT).loads_at(&tok, None, ts).is_err());
        // Rotated keys: the old one still verifies.
        let rotated = Serializer::new(&["new-key", SECRET], SALT);
        prop_assert_eq!(rotated.loads_at(&tok, None, ts).ok(), Some(v));
    }

    /// dumps_untimed → loads_untimed gives the value back; the untimed token
    /// is no timed one.
    #[test]
    fn serializer_untimed_round_trip(v in json_value(3, 6, 24)) {
        let s = serializer();
        let tok = s.dumps_untimed(&v);
        prop_assert_eq!(s.loads_untimed(&tok).ok(), Some(v));
        prop_assert!(s.loads_at(&tok, None, 0).is_err());
        let (value, _) = tok.rsplit_once('.').unwrap();
        prop_assert_eq!(&sign(SECRET, SALT, value), &tok);
    }

    /// Arbitrary strings are rejected (never a panic), with or without keys.
    #[test]
    fn serializer_rejects_arbitrary_strings(
        t in prop_oneof![
            any_text(200),
            token_text(200),
            (token_text(60), token_text(8), token_text(30))
                .prop_map(|(a, b, c)| format!("{a}.{b}.{c}")),
        ],
        now in any::<i64>(),
        max_age in prop::option::of(any::<i64>()),
    ) {
        let s = serializer();
        prop_assert!(s.loads_at(&t, max_age, now).is_err());
        prop_assert!(s.loads_untimed(&t).is_err());
        let none = Serializer::new::<&str>(&[], SALT);
        prop_assert!(none.loads_at(&t, max_age, now).is_err());
        prop_assert!(none.loads_untimed(&t).is_err());
    }

    /// Edited tokens are rejected unless the edit only re-encoded the
    /// signature; timed and untimed alike.
    #[test]
    fn serializer_rejects_mutated_tokens(
        v in json_value(3, 6, 24),
        ts in 0i64..4_000_000_000,
        edits in edits(),
        max_age in prop::option::of(0i64..100_000),
    ) {
        let s = serializer();
        for (tok, timed) in [(s.dumps_at(&v, ts), true), (s.dumps_untimed(&v), false)] {
            let m = mutate(&tok, &edits);
            let res = if timed { s.loads_at(&m, max_age, ts) } else { s.loads_untimed(&m) };
            match res {
                Ok(got) => {
                    prop_assert!(m == tok || same_signed_token(&tok, &m), "{tok} -> {m} accepted");
                    prop_assert_eq!(got, v.clone());
                }
                Err(TokenError::Expired { .. }) => prop_assert!(false, "{m}: expired at age 0"),
                Err(_) => prop_assert!(m != tok),
            }
            // Whatever the edit, the other format never accepts it.
            let other = if timed { s.loads_untimed(&m) } else { s.loads_at(&m, max_age, ts) };
            prop_assert!(other.is_err(), "{m}");
        }
    }

    /// Validly signed values of any shape: the decoder agrees with an
    /// independent one on every outcome (and never panics: zlib garbage,
    /// truncated streams, huge or empty timestamps).
    #[test]
    fn serializer_decodes_signed_garbage_like_the_oracle(
        value in signed_value(),
        now in 0i64..4_000_000_000,
        max_age in prop::option::of(0i64..1_000_000_000),
    ) {
        let s = serializer();
        let tok = sign(SECRET, SALT, &value);
        // Timed.
        let got = s.loads_at(&tok, max_age, now);
        let want: Result<Value, &str> = match value.rsplit_once('.') {
            None => Err("bad signature"),
            Some((payload, ts)) => match oracle_timestamp(ts) {
                None => Err("bad signature"),
                Some(ts) => match (oracle_payload(payload), max_age) {
                    (Err(e), _) => Err(e),
                    (Ok(_), Some(max)) if now - ts > max || now - ts < 0 => Err("expired"),
                    (Ok(v), _) => Ok(v),
                },
            },
        };
        match (&got, &want) {
            (Ok(g), Ok(w)) => prop_assert_eq!(g, w),
            (Err(TokenError::Expired { payload, timestamp }), Err("expired")) => {
                let (p, ts) = value.rsplit_once('.').unwrap();
                prop_assert_eq!(Ok(payload.clone()), oracle_payload(p));
                prop_assert_eq!(Some(*timestamp), oracle_timestamp(ts));
            }
            (g, Err(w)) => prop_assert_eq!(kind(g), *w, "{}", value),
            (g, Ok(_)) => prop_assert!(false, "{value}: {} but the oracle decodes it", kind(g)),
        }
        // Untimed: the whole value is the payload.
        let got = s.loads_untimed(&tok);
        match (got, oracle_payload(&value)) {
            (Ok(g), Ok(w)) => prop_assert_eq!(g, w),
            (Err(TokenError::BadPayload), Err(_)) => {}
            (g, w) => prop_assert!(false, "{value}: {} vs {w:?}", kind(&g)),
        }
    }

    /// Remember cookies verify for the uid they were made for, under any key
    /// (rotations included), and only then.
    #[test]
    fn remember_cookie_round_trip(
        uid in any_text(40),
        key in prop::collection::vec(any::<u8>(), 0..80),
    ) {
        let value = remember_cookie_value(&key, &uid);
        prop_assert_eq!(verify_remember_cookie(&[&key], &value), Some(uid.clone()));
        // HMAC zero-pads short keys, so a key with one more non-zero byte differs.
        let mut other = key.clone();
        other.push(1);
        prop_assert_eq!(verify_remember_cookie(&[&other, &key], &value), Some(uid));
        prop_assert_eq!(verify_remember_cookie(&[&other], &value), None);
        prop_assert_eq!(verify_remember_cookie(&[], &value), None);
    }

    /// Arbitrary and edited remember cookies are rejected.
    #[test]
    fn remember_cookie_rejects_arbitrary_and_mutated(
        garbage in prop_oneof![any_text(200), token_text(200)],
        uid in any_text(40),
        edits in edits(),
    ) {
        let key = SECRET.as_bytes();
        prop_assert_eq!(verify_remember_cookie(&[key], &garbage), None);
        let value = remember_cookie_value(key, &uid);
        let m = mutate(&value, &edits);
        let got = verify_remember_cookie(&[key], &m);
        if m == value {
            prop_assert_eq!(got, Some(uid));
        } else {
            prop_assert_eq!(got, None, "{} -> {} accepted", value, m);
        }
    }
}

// ------------------------------------------------------------ auth tokens

/// A Rocket with the Security fairing on an in-memory database: the real
/// `SecurityState` (token_max_age 900 s).
async fn security_client() -> rocket::local::asynchronous::Client {
    use crate::datastore::entity::{role, user};
    // One connection: every connection to `:memory:` is a database of its own.
    let mut options = sea_orm::ConnectOptions::new("sqlite::memory:");
    options.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(options).await.unwrap();
    crate::migration::create_tables::<user::Entity>(&db)
        .await
        .unwrap();
    let figment = rocket::Config::figment()
        .merge(("secret_key", crate::derive_cookie_key(SECRET)))
        .merge(("log_level", "off"))
        .merge(("security.secret_key", SECRET))
        .merge(("security.password_salt", "fuzz-password-salt"));
    let rocket = rocket::custom(figment).attach(crate::Security::new(crate::SeaOrmDatastore::<
        user::Model,
        role::Model,
    >::new(db)));
    rocket::local::asynchronous::Client::untracked(rocket)
        .await
        .unwrap()
}

/// The uid and `fs_paa` that `parse_auth_token` finds in `token`.
fn parsed(state: &SecurityState, token: &str) -> Option<(String, f64)> {
    crate::authn::parse_auth_token(state, token).map(|v| (v.claims.uid.clone(), v.claims.paa))
}

/// What `parse_auth_token` must make of a validly signed, fresh payload.
fn oracle_auth(payload: &Value, now: f64) -> Option<(String, f64)> {
    match payload {
        Value::Object(m) => {
            let uid = m.get("uid")?.as_str()?.to_string();
            m.get("ver")?;
            let exp = m.get("exp")?.as_f64()?;
            if exp > 0.0 && exp < now {
                return None;
            }
            Some((uid, m.get("fs_paa").and_then(Value::as_f64).unwrap_or(0.0)))
        }
        Value::Array(items) => Some((items.last()?.as_str()?.to_string(), 0.0)),
        _ => None,
    }
}

/// Payloads shaped like auth tokens (v5 objects, v3/v4 lists) with
/// arbitrary and wrongly typed members; `exp` kept a minute or more away
/// from `now` so the property does not race the clock.
fn auth_payload(now: i64) -> impl Strategy<Value = Value> {
    let exp = prop_oneof![
        Just(json!(0)),
        (-1_000_000_000i64..=-1).prop_map(Value::from),
        (60i64..10_000_000).prop_map(move |d| json!(now + d)),
        (60i64..10_000_000).prop_map(move |d| json!(now - d)),
        (60.5f64..1e7).prop_map(move |d| json!(now as f64 + d)),
        (60.5f64..1e7).prop_map(move |d| json!(now as f64 - d)),
        json_value(3, 6, 24),
    ];
    let finite = any::<f64>().prop_filter_map("finite", |f| {
        serde_json::Number::from_f64(f).map(Value::Number)
    });
    let uid = prop_oneof![3 => any_text(40).prop_map(Value::String), 1 => json_value(3, 6, 24)];
    let ver = prop_oneof![3 => Just(json!("5")), 1 => json_value(3, 6, 24)];
    let paa = prop_oneof![finite, json_value(3, 6, 24)];
    // Each v5 member present most of the time, plus members of any name.
    let object = (
        prop::option::weighted(0.85, uid),
        prop::option::weighted(0.85, ver),
        prop::option::weighted(0.85, exp),
        prop::option::weighted(0.7, paa),
        prop::collection::vec((any_text(8), json_value(3, 6, 24)), 0..3),
    )
        .prop_map(|(uid, ver, exp, paa, extra)| {
            let mut m = Map::new();
            for (k, v) in [("uid", uid), ("ver", ver), ("exp", exp), ("fs_paa", paa)] {
                if let Some(v) = v {
                    m.insert(k.to_string(), v);
                }
            }
            m.extend(extra);
            Value::Object(m)
        });
    prop_oneof![
        4 => object,
        1 => prop::collection::vec(
            prop_oneof![any_text(20).prop_map(Value::String), json_value(3, 6, 24)],
            0..4,
        )
        .prop_map(Value::Array),
        1 => json_value(3, 6, 24),
    ]
}

#[rocket::async_test]
async fn auth_tokens_are_parsed_like_the_oracle() {
    let client = security_client().await;
    let state = client.rocket().state::<SecurityState>().unwrap();
    let ser = state.serializer(&state.config.remember_salt);
    let now = state.clock.now_secs();
    assert_eq!(state.config.token_max_age, 900);

    // Validly signed payloads of every shape.
    check(128, auth_payload(now), |payload| {
        let tok = ser.dumps_at(&payload, state.clock.now_secs());
        let got = parsed(state, &tok);
        let want = oracle_auth(&payload, state.clock.now());
        match (&got, &want) {
            (Some((gu, gp)), Some((wu, wp))) => {
                prop_assert_eq!(gu, wu);
                prop_assert!(gp.to_bits() == wp.to_bits(), "{gp} != {wp}");
            }
            _ => prop_assert_eq!(&got, &want, "{}", payload),
        }
        Ok(())
    });

    // Age: valid within token_max_age only (never when dated in the future).
    let v5 = json!({"ver": "5", "uid": "u-1", "fs_paa": 1.5, "exp": 0});
    let ages = prop_oneof![-10_000_000i64..-5, 5i64..895, 905i64..100_000_000];
    check(64, ages, |age| {
        let tok = ser.dumps_at(&v5, state.clock.now_secs() - age);
        let got = parsed(state, &tok);
        let valid = (0..=900).contains(&age);
        prop_assert_eq!(got.is_some(), valid, "age {}", age);
        Ok(())
    });

    // Arbitrary strings, edited real tokens, tokens of other salts and keys.
    let real = ser.dumps_at(&v5, now);
    assert!(parsed(state, &real).is_some());
    let strategy = (
        prop_oneof![any_text(200), token_text(200)],
        edits(),
        json_value(3, 6, 24),
    );
    check(128, strategy, |(garbage, edits, other_payload)| {
        prop_assert_eq!(parsed(state, &garbage), None);
        let m = mutate(&real, &edits);
        let got = parsed(state, &m);
        if got.is_some() {
            prop_assert!(m == real || same_signed_token(&real, &m), "{} accepted", m);
        }
        let at = state.clock.now_secs();
        for tok in [
            Serializer::new(&["other-key"], &state.config.remember_salt).dumps_at(&v5, at),
            state.serializer("confirm-salt").dumps_at(&v5, at),
            state.serializer("reset-salt").dumps_at(&other_payload, at),
            ser.dumps_untimed(&v5),
        ] {
            prop_assert_eq!(parsed(state, &tok), None, "{}", tok);
        }
        Ok(())
    });
}

// ------------------------------------------------------------------ forms

/// The accessors' verdicts on the names of the `X-Probe` header (a JSON
/// array), or the body error.
struct Probe(Vec<String>);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Probe {
    type Error = ();

    async fn from_request(
        req: &'r rocket::Request<'_>,
    ) -> rocket::request::Outcome<Self, Self::Error> {
        let names = req
            .headers()
            .get_one("X-Probe")
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        rocket::request::Outcome::Success(Probe(names))
    }
}

#[rocket::post("/probe", data = "<form>")]
fn probe(names: Probe, form: Result<FormInput, BadBody>) -> String {
    let form = match form {
        Ok(f) => f,
        Err(BadBody(status)) => return json!({"bad": status.code}).to_string(),
    };
    let verdicts: Map<String, Value> = names
        .0
        .into_iter()
        .map(|name| {
            let text = match form.text(&name) {
                Ok(None) => json!("none"),
                Ok(Some(s)) => json!({"some": s}),
                Err(_) => json!("err"),
            };
            let boolean = match form.boolean(&name) {
                Ok(None) => json!("none"),
                Ok(Some(b)) => json!({"some": b}),
                Err(_) => json!("err"),
            };
            let v = json!({
                "text": text,
                "boolean": boolean,
                "blank": form.text_or_blank(&name),
                "null": form.is_null(&name),
            });
            (name, v)
        })
        .collect();
    json!({"ok": verdicts}).to_string()
}

/// What the accessors must say of field `name` of `fields`.
fn oracle_field(fields: &Map<String, Value>, name: &str) -> Value {
    let v = fields.get(name);
    let text = match v {
        None | Some(Value::Null) => json!("none"),
        Some(Value::String(s)) if s.trim().is_empty() => json!("none"),
        Some(Value::String(s)) => json!({"some": s}),
        Some(_) => json!("err"),
    };
    let boolean = match v {
        None | Some(Value::Null) => json!("none"),
        Some(Value::Bool(b)) => json!({"some": b}),
        Some(Value::String(s)) => {
            let falsy = ["", "false", "0", "n", "no", "off"].contains(&s.to_lowercase().as_str())
                && s.is_ascii();
            json!({"some": !falsy})
        }
        Some(Value::Number(n)) => json!({"some": n.as_f64().is_some_and(|f| f != 0.0)}),
        Some(_) => json!("err"),
    };
    json!({
        "text": text,
        "boolean": boolean,
        "blank": v.and_then(Value::as_str),
        "null": matches!(v, Some(Value::Null)),
    })
}

/// Content types, and whether the library reads the body as JSON.
const CONTENT_TYPES: &[(Option<&str>, bool)] = &[
    (Some("application/json"), true),
    (Some("application/json; charset=utf-8"), true),
    (Some("application/vnd.api+json"), true),
    (Some("application/x-www-form-urlencoded"), false),
    (Some("text/plain"), false),
    (Some("application/jsonx"), false),
    (None, false),
];

/// Bodies: JSON of any shape (objects with the fields forms use), truncated
/// and otherwise invalid JSON, urlencoded text, raw bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        prop::sample::select(vec![
            "email",
            "password",
            "remember",
            "next",
            "csrf_token",
            ""
        ])
        .prop_map(String::from),
        any_text(10),
    ];
    // Values forms see, booleans' spellings among them.
    let word = prop_oneof![
        prop::sample::select(vec![
            "", " ", "false", "FALSE", "False", "0", "n", "N", "no", "No", "off", "OFF", "y", "on",
            "true", "1", "null", "\u{a0}", "\u{3000}",
        ])
        .prop_map(String::from),
        any_text(16),
    ];
    let value = prop_oneof![2 => word.clone().prop_map(Value::String), 3 => json_value(3, 6, 24)];
    let object = prop::collection::vec((field.clone(), value), 0..6)
        .prop_map(|kv| {
            Value::Object(kv.into_iter().collect())
                .to_string()
                .into_bytes()
        })
        .boxed();
    let urlencoded = prop::collection::vec((field, word), 0..6).prop_map(|kv| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in kv {
            s.append_pair(&k, &v);
        }
        s.finish().into_bytes()
    });
    prop_oneof![
        3 => object.clone(),
        1 => json_value(3, 6, 24).prop_map(|v| v.to_string().into_bytes()),
        2 => (object, any::<prop::sample::Index>())
            .prop_map(|(b, i)| b[..i.index(b.len() + 1)].to_vec()),
        2 => urlencoded,
        1 => prop::collection::vec(any::<u8>(), 0..200),
        1 => "[ \t\r\n]{0,8}".prop_map(String::into_bytes),
        1 => "[=&%+a-z0-9\u{e9}]{0,60}".prop_map(String::into_bytes),
    ]
}

#[test]
fn form_input_parses_like_the_oracle() {
    let rocket = rocket::custom(rocket::Config::figment().merge(("log_level", "off")))
        .mount("/", rocket::routes![probe]);
    let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    let strategy = (
        body(),
        prop::sample::select(CONTENT_TYPES.to_vec()),
        prop::collection::vec(any_text(6), 0..3),
    );
    check(192, strategy, |(body, (ct, json), extra_names)| {
        // A blank body is an empty form, whatever its type.
        let expected: Result<Map<String, Value>, u16> = if body.iter().all(u8::is_ascii_whitespace)
        {
            Ok(Map::new())
        } else if json {
            match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(m)) => Ok(m),
                _ => Err(400),
            }
        } else {
            let text = String::from_utf8_lossy(&body);
            let mut m = Map::new();
            for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
                m.entry(k.into_owned())
                    .or_insert(Value::String(v.into_owned()));
            }
            Ok(m)
        };
        let mut names: Vec<String> = ["email", "password", "remember", "next", "", "absent"]
            .iter()
            .map(|s| s.to_string())
            .chain(extra_names)
            .collect();
        if let Ok(m) = &expected {
            names.extend(m.keys().cloned());
        }
        let mut req = client
            .post("/probe")
            .header(Header::new(
                "X-Probe",
                serde_json::to_string(&names).unwrap(),
            ))
            .body(&body);
        if let Some(ct) = ct {
            req = req.header(ContentType::parse_flexible(ct).unwrap());
        }
        let resp = req.dispatch();
        prop_assert_eq!(resp.status().code, 200);
        let got: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
        match expected {
            Err(code) => prop_assert_eq!(got, json!({"bad": code})),
            Ok(m) => {
                for name in &names {
                    prop_assert_eq!(
                        &got["ok"][name],
                        &oracle_field(&m, name),
                        "field {:?}",
                        name
                    );
                }
            }
        }
        Ok(())
    });

    // Bodies around the 64 KiB limit: read whole below it, 413 above.
    check(16, 65_530usize..65_545, |len| {
        let body = vec![b'a'; len];
        let resp = client
            .post("/probe")
            .header(ContentType::Form)
            .header(Header::new("X-Probe", "[]"))
            .body(&body)
            .dispatch();
        let got: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
        if len <= 64 * 1024 {
            prop_assert_eq!(got, json!({"ok": {}}), "{}", len);
        } else {
            prop_assert_eq!(got, json!({"bad": 413}), "{}", len);
        }
        Ok(())
    });
}

// --------------------------------------------------------- password hashes

const PW: &str = "correct horse";

/// Whether verifying `s` stays cheap: every number in it small, bcrypt cost
/// at most 6, argon2 memory × passes at most 64 Mi KiB-passes. Costs are
/// read from the stored value, so the fuzzer must not ask for hours.
fn cost_ok(s: &str) -> bool {
    let numbers = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|t| !t.is_empty());
    if numbers
        .map(|t| t.parse::<u64>().unwrap_or(u64::MAX))
        .any(|n| n > 5000)
    {
        return false;
    }
    if s.starts_with("$2") {
        let cost = s.split('$').filter(|p| !p.is_empty()).nth(1);
        if cost
            .and_then(|c| c.parse::<u64>().ok())
            .is_some_and(|c| c > 6)
        {
            return false;
        }
    }
    if s.starts_with("$argon2") {
        let param = |key: &str, default: u64| {
            s.split(['$', ','])
                .filter_map(|p| p.strip_prefix(key))
                .filter_map(|v| v.parse::<u64>().ok())
                .max()
                .unwrap_or(default)
        };
        if param("m=", 19_456) * param("t=", 2) > 1 << 16 {
            return false;
        }
    }
    true
}

/// A stored hash up to what verifiers may ignore: empty `$` segments,
/// `2a`/`2y` for `2b`, leading zeros of numbers (`rounds=` too), and the
/// padding and unused bits of (adapted) base64 segments.
fn canonical(s: &str) -> Vec<String> {
    let ab64 = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    s.split('$')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (prefix, rest) = match p.strip_prefix("rounds=") {
                Some(r) => ("rounds=", r),
                None => ("", p),
            };
            if !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()) {
                let n = rest.trim_start_matches('0');
                return format!("{prefix}{}", if n.is_empty() { "0" } else { n });
            }
            if matches!(p, "2a" | "2y") {
                return "2b".into();
            }
            match ab64.decode(p.replace('.', "+")) {
                Ok(bytes) if !p.contains('+') => format!("b64:{}", hex::encode(bytes)),
                _ => p.to_string(),
            }
        })
        .collect()
}

fn ab64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .encode(bytes)
        .replace('+', ".")
}

/// Real hashes of `PW` in every scheme, at the lowest costs.
fn real_hashes(util: &PasswordUtil) -> Vec<String> {
    let double = util.hmac_password(PW);
    let mut out = vec![util.hash_password(PW).unwrap()];
    let salt = b"0123456789abcdef";
    let mut dk = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha2::Sha256>(double.as_bytes(), salt, 100, &mut dk);
    out.push(format!(
        "$pbkdf2-sha256$100${}${}",
        ab64_encode(salt),
        ab64_encode(&dk)
    ));
    let mut dk = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<sha2::Sha512>(double.as_bytes(), salt, 100, &mut dk);
    out.push(format!(
        "$pbkdf2-sha512$100${}${}",
        ab64_encode(salt),
        ab64_encode(&dk)
    ));
    let p = sha_crypt::Sha256Params::new(1000).unwrap();
    let c = sha_crypt::sha256_crypt_b64(double.as_bytes(), b"saltsalt", &p).unwrap();
    out.push(format!("$5$rounds=1000$saltsalt${c}"));
    let p = sha_crypt::Sha512Params::new(1000).unwrap();
    let c = sha_crypt::sha512_crypt_b64(double.as_bytes(), b"saltsalt", &p).unwrap();
    out.push(format!("$6$rounds=1000$saltsalt${c}"));
    let bc = bcrypt::hash_with_salt(&double.as_bytes()[..72], 4, *salt).unwrap();
    out.push(bc.format_for_version(bcrypt::Version::TwoB));
    out
}

fn is_plaintext(stored: &str) -> bool {
    format!("{:?}", PasswordUtil::identify(stored)) == "Plaintext"
}

/// Stored values: anything, scheme prefixes with arbitrary tails, and
/// well-formed hashes of random bytes at low costs.
fn stored_value() -> impl Strategy<Value = String> {
    let prefix = prop::sample::select(vec![
        "$2$",
        "$2a$",
        "$2b$",
        "$2x$",
        "$2y$",
        "$2b$04$",
        "$argon2i$",
        "$argon2d$",
        "$argon2id$",
        "$argon2id$v=19$m=8,t=1,p=1$",
        "$pbkdf2-sha256$",
        "$pbkdf2-sha512$",
        "$pbkdf2-sha256$10$",
        "$5$",
        "$6$",
        "$5$rounds=1000$",
        "$6$rounds=1000$",
        "$1$",
    ]);
    let tail = "[A-Za-z0-9./+=$,]{0,80}";
    let b64 = |n: usize| prop::collection::vec(any::<u8>(), n).prop_map(|b| ab64_encode(&b));
    let hash64 =
        |n: usize| proptest::string::string_regex(&format!("[./0-9A-Za-z]{{{n}}}")).unwrap();
    prop_oneof![
        any_text(80),
        (prefix.clone(), tail).prop_map(|(p, t)| format!("{p}{t}")),
        (prefix, any_text(40)).prop_map(|(p, t)| format!("{p}{t}")),
        (1u32..500, b64(16), b64(32)).prop_map(|(r, s, h)| format!("$pbkdf2-sha256${r}${s}${h}")),
        (1u32..500, b64(16), b64(64)).prop_map(|(r, s, h)| format!("$pbkdf2-sha512${r}${s}${h}")),
        (1000u32..1500, hash64(8), hash64(43))
            .prop_map(|(r, s, h)| format!("$5$rounds={r}${s}${h}")),
        (hash64(16), hash64(86)).prop_map(|(s, h)| format!("$6${s}${h}")),
        hash64(53).prop_map(|h| format!("$2b$04${h}")),
        (8u32..64, 1u32..3, b64(16), b64(32)).prop_map(|(m, t, s, h)| {
            format!(
                "$argon2id$v=19$m={m},t={t},p=1${}${}",
                s.replace('.', "+"),
                h.replace('.', "+")
            )
        }),
    ]
    .prop_filter("cheap to verify", |s| cost_ok(s))
}

#[test]
fn password_verification_of_arbitrary_and_mutated_hashes() {
    let util = PasswordUtil::new("fuzz-password-salt").with_argon2_params(8, 1, 1);
    let real = real_hashes(&util);
    for h in &real {
        assert_ne!(util.verify(PW, h), Verified::No, "{h}");
        assert_eq!(util.verify("wrong", h), Verified::No, "{h}");
    }

    // Arbitrary stored values: never a panic; only plaintext equal to the
    // (NFKD) password verifies.
    let strategy = (
        stored_value(),
        prop_oneof![Just(PW.to_string()), any_text(20)],
    );
    check(256, strategy, |(stored, pw)| {
        let got = util.verify(&pw, &stored);
        let plaintext_match = is_plaintext(&stored) && PasswordUtil::normalize(&pw) == stored;
        prop_assert_eq!(
            got != Verified::No,
            plaintext_match,
            "{:?} / {:?}",
            stored,
            pw
        );
        // Flask-Security's verify_hash (sha256_crypt / hex_md5): no panic, no match.
        prop_assert!(!crate::passwords::verify_hash(&stored, &pw), "{:?}", stored);
        Ok(())
    });

    // Edited real hashes: rejected unless the edit is one verifiers ignore.
    let strategy = (prop::sample::select(real.clone()), edits())
        .prop_map(|(h, e)| (h.clone(), mutate(&h, &e)))
        .prop_filter("cheap to verify", |(_, m)| cost_ok(m));
    check(256, strategy, |(orig, m)| {
        let got = util.verify(PW, &m);
        if got != Verified::No && m != orig {
            prop_assert!(
                canonical(&m) == canonical(&orig) || (is_plaintext(&m) && m == PW),
                "edited hash verifies: {:?} -> {:?}",
                orig,
                m
            );
        }
        if m == orig {
            prop_assert_ne!(got, Verified::No);
        }
        Ok(())
    });
}

// -------------------------------------------- next targets, Accept headers

#[test]
fn next_targets_never_leave_the_host() {
    let rocket = rocket::custom(rocket::Config::figment().merge(("log_level", "off")));
    let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    // The local client takes the host apart from the headers.
    let mut req = client.get("/login");
    let host = rocket::http::uri::Authority::parse("localhost").unwrap();
    req.inner_mut().set_host(rocket::http::uri::Host::new(host));
    let req = req.inner();
    let base = url::Url::parse("http://localhost/login").unwrap();
    // Controls: relative paths pass, other hosts do not.
    assert!(crate::http::redirect::redirect_allowed(req, "/account?x=1"));
    assert!(crate::http::redirect::redirect_allowed(
        req,
        "http://localhost/a"
    ));
    assert!(!crate::http::redirect::redirect_allowed(
        req,
        "//evil.example/"
    ));
    assert!(!crate::http::redirect::redirect_allowed(
        req,
        "https://evil.example/"
    ));

    check(512, redirect_target(), |target| {
        let location = crate::http::redirect::redirect_target(&target);
        prop_assert!(
            location.bytes().all(|b| b.is_ascii_graphic()),
            "{:?}",
            location
        );
        if crate::http::redirect::redirect_allowed(req, &target) {
            // Where a browser goes with that Location (WHATWG parsing);
            // an unparsable one goes nowhere.
            if let Ok(u) = base.join(&location) {
                prop_assert_eq!(
                    u.host_str(),
                    Some("localhost"),
                    "{:?} -> {:?}",
                    target,
                    location
                );
                prop_assert_eq!(u.port(), None, "{:?}", target);
            }
        }
        Ok(())
    });
}

#[test]
fn accept_headers_never_panic() {
    let rocket = rocket::custom(rocket::Config::figment().merge(("log_level", "off")));
    let client = rocket::local::blocking::Client::untracked(rocket).unwrap();
    let media = prop::sample::select(vec![
        "application/json",
        "APPLICATION/JSON",
        "text/html",
        "*/*",
        "application/*",
        "q=",
        ";",
        ",",
        "q=0",
        "q=1",
        "q=0.5",
        "q=NaN",
        "q=-1",
        "q=inf",
        " ",
        "\t",
        "\u{e9}",
    ]);
    let header = prop_oneof![
        prop::collection::vec(media, 0..8).prop_map(|p| p.concat()),
        any_text(40),
    ];
    check(256, header, |accept| {
        let req = client
            .get("/")
            .header(Header::new("Accept", accept.clone()));
        let json = crate::http::want_json(req.inner());
        if json {
            prop_assert!(
                accept.to_ascii_lowercase().contains("application/json"),
                "{:?}",
                accept
            );
        }
        Ok(())
    });
    let req = client
        .get("/")
        .header(Header::new("Accept", "application/json"));
    assert!(crate::http::want_json(req.inner()));
    let req = client
        .get("/")
        .header(Header::new("Accept", "text/html, application/json;q=0.9"));
    assert!(!crate::http::want_json(req.inner()));
}
