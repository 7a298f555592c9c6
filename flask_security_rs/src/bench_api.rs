//! Not API; for the benchmarks (`benches/micro.rs`). Thin wrappers over the
//! crate-private token, cookie and CSRF code, callable without a request;
//! each does what one request does (with the serializers built once per
//! salt and shared, as `SecurityState::serializer` shares them).

use rocket::http::private::cookie::{Cookie, CookieJar};

use crate::authn::session::SessionData;
use crate::authn::{csrf, token};
use crate::tokens;

/// Flask's `SECRET_KEY` and the `remember_salt`: auth tokens, remember
/// cookies and CSRF tokens.
pub struct Signing {
    keys: Vec<Vec<u8>>,
    serializers: tokens::Serializers,
    salt: String,
}

impl Signing {
    /// Signing keys from `secret_key` (no fallbacks); `salt` is
    /// `remember_salt` (Flask-Security's default: `remember-salt`).
    pub fn new(secret_key: &str, salt: &str) -> Self {
        let keys = vec![secret_key.as_bytes().to_vec()];
        Signing {
            serializers: tokens::Serializers::new(keys.clone()),
            keys,
            salt: salt.to_string(),
        }
    }

    /// A v5 auth token for `uid`, issued at `now` (Unix time), no expiry.
    pub fn auth_token(&self, uid: &str, now: f64) -> String {
        let payload = serde_json::json!({"ver": "5", "uid": uid, "fs_paa": now, "exp": 0});
        self.serializers
            .get(&self.salt)
            .dumps_at(&payload, now as i64)
    }

    /// The uid and `fs_paa` of a valid auth token, as the `token` mechanism
    /// checks it (before the user lookup).
    pub fn verify_auth_token(
        &self,
        token: &str,
        max_age: Option<i64>,
        now: f64,
    ) -> Option<(String, f64)> {
        token::parse_auth_token_at(&self.serializers.get(&self.salt), token, max_age, now)
    }

    /// Flask-Login's `remember_token` value for `payload` (`uid` or `uid.sid`).
    pub fn remember_cookie(&self, payload: &str) -> String {
        tokens::remember_cookie_value(self.keys.first().map_or(&[][..], Vec::as_slice), payload)
    }

    /// The payload of a valid `remember_token` value, checked against every key.
    pub fn verify_remember_cookie(&self, value: &str) -> Option<String> {
        let refs: Vec<&[u8]> = self.keys.iter().map(Vec::as_slice).collect();
        tokens::verify_remember_cookie(&refs, value)
    }

    /// The signed CSRF token of the session secret `raw`, at `now` (Unix seconds).
    pub fn csrf_token(&self, raw: &str, now: i64) -> String {
        csrf::sign_secret(&self.serializers.get(csrf::CSRF_SALT), raw, now)
    }

    /// Whether `token` is valid for the session secret `secret` at `now`.
    pub fn verify_csrf(
        &self,
        token: &str,
        secret: &str,
        time_limit: Option<i64>,
        now: i64,
    ) -> bool {
        csrf::check_token(
            &self.serializers.get(csrf::CSRF_SALT),
            token,
            secret,
            time_limit,
            now,
        )
        .is_ok()
    }
}

/// The `session` cookie, sealed (AES-256-GCM) under the key the library
/// derives from Flask's `SECRET_KEY`.
pub struct SessionCookies {
    sealer: tokens::Sealer,
}

impl SessionCookies {
    /// The cookie sealer for `secret_key`.
    pub fn new(secret_key: &str) -> Option<Self> {
        Some(SessionCookies {
            sealer: tokens::Sealer::new(&[secret_key]),
        })
    }

    /// The JSON of a signed-in session (user, session id, `fs_paa`, CSRF
    /// secret, issue time), as the library writes it.
    pub fn sample_session(now: i64) -> String {
        let data = SessionData {
            user_id: Some("8d48f920a34f45cb87db6c8a58598551".into()),
            sid: Some("VJ0b3Bt0y2bTn5mYq3fQm1YwZp1r8kQx6V0qJZc9eXs".into()),
            fs_paa: Some(now as f64 + 0.3151429),
            csrf_token: Some("7eba7871f05d1369e269c1691baaf2ada2879885".into()),
            issued_at: Some(now),
            ..SessionData::default()
        };
        serde_json::to_string(&data).unwrap_or_default()
    }

    /// `session=<value>` as a request's `Cookie` header carries it: `json`
    /// sealed the way the library writes it.
    pub fn seal(&self, json: &str) -> Option<String> {
        let value = self.sealer.seal("session", json)?;
        Some(Cookie::new("session", value).encoded().to_string())
    }

    /// What a request does with that header: parse it into a jar, open the
    /// sealed value, parse the session JSON; the session's user id.
    pub fn open(&self, header: &str) -> Option<String> {
        let cookie = Cookie::parse_encoded(header).ok()?.into_owned();
        let mut jar = CookieJar::new();
        jar.add_original(cookie);
        let plain = self.sealer.open("session", jar.get("session")?.value())?;
        serde_json::from_str::<SessionData>(&plain).ok()?.user_id
    }
}
