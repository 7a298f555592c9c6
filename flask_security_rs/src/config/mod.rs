//! Configuration, read from Rocket's figment under `security`.
//!
//! Keys are Flask-Security's `SECURITY_*` names lower-cased without the prefix
//! (`SECURITY_PASSWORD_SALT` → `password_salt`), with the same defaults;
//! durations are whole seconds. The kernel reads [`SecurityConfig`]; each
//! feature reads its own section of the same flat key space (the register
//! feature reads `registerable`, `send_register_email`, ...), and the
//! `msg_<key>` keys override messages ([`crate::messages`]).
//!
//! The fairing checks the whole `security` table at ignite: a value of the
//! wrong type or out of range, or a key no section knows (a typo such as
//! `token_max_agee`), stops launch with an error naming the key and, for
//! unknown keys, the closest known one.

mod keys;

use std::collections::BTreeMap;

use rocket::figment::Figment;
use serde::Deserialize;
use serde::de::DeserializeOwned;

pub(crate) use keys::{check_unknown_keys, field_names};

/// The figment key the configuration lives under.
pub const SECTION: &str = "security";

/// A configuration problem, naming the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`security.{key}`: {message}")]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    pub(crate) fn new(key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Refuses a duration of `value` seconds that is not positive.
    pub(crate) fn positive_secs(key: &str, value: i64) -> Result<(), ConfigError> {
        if value <= 0 {
            return Err(ConfigError::new(
                key,
                "must be a positive number of seconds",
            ));
        }
        Ok(())
    }

    /// The key at fault (without the `security.` prefix).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// Reads one section (a struct of flat keys) from the `security` table.
pub(crate) fn extract<T: DeserializeOwned + Default>(figment: &Figment) -> Result<T, ConfigError> {
    if !figment.contains(SECTION) {
        return Ok(T::default());
    }
    let value = figment
        .find_value(SECTION)
        .map_err(|e| ConfigError::new(SECTION, e.to_string()))?;
    // serde_path_to_error names the key whose value did not fit.
    serde_path_to_error::deserialize::<_, T>(&value).map_err(|e| {
        let key = e
            .path()
            .iter()
            .next()
            .map(|seg| seg.to_string())
            .unwrap_or_else(|| SECTION.to_string());
        ConfigError::new(&key, e.inner().to_string())
    })
}

/// A secret string: never printed by `Debug`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself; handle with care.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A cookie's `SameSite` attribute. Values are matched case-insensitively
/// (`"Strict"`, `"lax"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=Lax`.
    Lax,
    /// `SameSite=None` (needs `Secure` in browsers).
    None,
}

impl SameSite {
    pub(crate) fn to_cookie(self) -> rocket::http::SameSite {
        match self {
            SameSite::Strict => rocket::http::SameSite::Strict,
            SameSite::Lax => rocket::http::SameSite::Lax,
            SameSite::None => rocket::http::SameSite::None,
        }
    }
}

impl<'de> Deserialize<'de> for SameSite {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.to_ascii_lowercase().as_str() {
            "strict" => Ok(SameSite::Strict),
            "lax" => Ok(SameSite::Lax),
            "none" => Ok(SameSite::None),
            _ => Err(serde::de::Error::custom(format!(
                "unknown SameSite value {s:?} (use \"Strict\", \"Lax\" or \"None\")"
            ))),
        }
    }
}

/// An authentication mechanism, as named in `api_enabled_methods`,
/// `csrf_protect_mechanisms` and `#[auth_required(..)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// `session` cookie (or remember cookie).
    Session,
    /// Auth token (header, query or JSON body).
    Token,
    /// HTTP basic.
    Basic,
}

impl Mechanism {
    /// Flask-Security's name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Session => "session",
            Mechanism::Token => "token",
            Mechanism::Basic => "basic",
        }
    }

    /// The mechanism's bit in a set of mechanisms (the guard behind
    /// `#[auth_required]` carries such a set).
    pub const fn bit(self) -> u8 {
        match self {
            Mechanism::Token => 1,
            Mechanism::Session => 2,
            Mechanism::Basic => 4,
        }
    }

    /// The set of `mechanisms` as bits.
    pub(crate) fn mask(mechanisms: &[Mechanism]) -> u8 {
        mechanisms.iter().fold(0, |m, x| m | x.bit())
    }
}

/// `SECURITY_REDIRECT_BEHAVIOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RedirectBehavior {
    /// Link endpoints redirect to the configured SPA views with the outcome in
    /// the query string.
    Spa,
}

/// `SECURITY_PASSWORD_COMPLEXITY_CHECKER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComplexityChecker {
    /// zxcvbn's score, against `zxcvbn_minimum_score`.
    Zxcvbn,
}

/// `SECURITY_PASSWORD_HASH`: the scheme new hashes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordHash {
    /// argon2id with passlib's parameters (the only scheme produced; bcrypt,
    /// pbkdf2 and sha-crypt hashes still verify and are re-hashed).
    #[default]
    Argon2,
}

/// `SECURITY_PASSWORD_CHECK_BREACHED`: off, on (network errors let the
/// password through), or `"strict"` (network errors reject it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BreachedCheck {
    /// No check.
    #[default]
    Off,
    /// Check; if the service cannot be reached, accept the password.
    On,
    /// Check; if the service cannot be reached, reject the password.
    Strict,
}

impl<'de> Deserialize<'de> for BreachedCheck {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Bool(false) => BreachedCheck::Off,
            Raw::Bool(true) => BreachedCheck::On,
            Raw::Text(t) => match t.to_ascii_lowercase().as_str() {
                "strict" => BreachedCheck::Strict,
                "" | "false" | "none" => BreachedCheck::Off,
                "true" | "best-effort" => BreachedCheck::On,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "unknown value {other:?} (use true, false or \"strict\")"
                    )));
                }
            },
        })
    }
}

/// Attributes of the CSRF cookie (`SECURITY_CSRF_COOKIE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CsrfCookie {
    /// `SameSite` value. _Default:_ `"Strict"`.
    pub samesite: Option<SameSite>,
    /// `HttpOnly` flag (false so JavaScript can read it). _Default:_ `false`.
    pub httponly: bool,
    /// `Secure` flag. _Default:_ `true`.
    pub secure: bool,
}

impl Default for CsrfCookie {
    fn default() -> Self {
        CsrfCookie {
            samesite: Some(SameSite::Strict),
            httponly: false,
            secure: true,
        }
    }
}

/// Outgoing mail settings (Flask-Mail's `MAIL_*` keys, lower-cased, in the
/// same `security` table), and the outbox's delivery settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct MailConfig {
    /// SMTP host; when unset mails are written to the console. _Default:_ unset.
    pub mail_server: Option<String>,
    /// SMTP port. _Default:_ 25, 465 with `mail_use_ssl`, 587 with `mail_use_tls`.
    pub mail_port: Option<u16>,
    /// STARTTLS. _Default:_ `false`.
    pub mail_use_tls: bool,
    /// Implicit TLS. _Default:_ `false`.
    pub mail_use_ssl: bool,
    /// SMTP user name. _Default:_ unset.
    pub mail_username: Option<String>,
    /// SMTP password. _Default:_ unset.
    pub mail_password: Option<Secret>,
    /// Seconds one delivery attempt may take, connecting included, before it
    /// counts as failed. _Default:_ `30`.
    pub mail_send_timeout: f64,
    /// Delivery attempts before a mail becomes a dead letter. _Default:_ `8`.
    pub mail_max_attempts: u32,
    /// Seconds before the first retry; each further retry waits twice as
    /// long (at most an hour). _Default:_ `10`.
    pub mail_retry_delay: i64,
    /// Seconds between looks at the outbox when nothing wakes the sender
    /// (retries, mails queued by other instances). _Default:_ `2`.
    pub mail_outbox_poll_interval: f64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            mail_server: None,
            mail_port: None,
            mail_use_tls: false,
            mail_use_ssl: false,
            mail_username: None,
            mail_password: None,
            mail_send_timeout: 30.0,
            mail_max_attempts: 8,
            mail_retry_delay: 10,
            mail_outbox_poll_interval: 2.0,
        }
    }
}

impl MailConfig {
    /// Checks the delivery settings.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("mail_send_timeout", self.mail_send_timeout),
            ("mail_outbox_poll_interval", self.mail_outbox_poll_interval),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(
                    key,
                    "must be a positive number of seconds",
                ));
            }
        }
        if self.mail_max_attempts == 0 {
            return Err(ConfigError::new("mail_max_attempts", "must be at least 1"));
        }
        if self.mail_retry_delay < 1 {
            return Err(ConfigError::new(
                "mail_retry_delay",
                "must be at least 1 second",
            ));
        }
        Ok(())
    }
}

/// The identity cache's settings (see the `datastore::cache` module for what
/// it guarantees).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Whether the users of sessions and tokens, and session records, are
    /// cached in process. _Default:_ `true`.
    pub identity_cache: bool,
    /// How many users (and how many session records) the cache holds at
    /// most. _Default:_ `10000`.
    pub identity_cache_capacity: u64,
    /// Seconds an entry may be served after it was read, whatever the
    /// change feed reports. _Default:_ `60`.
    pub identity_cache_max_staleness: f64,
    /// Seconds between looks for writes by other processes where the
    /// database cannot notify (SQLite's `PRAGMA data_version`). _Default:_ `1`.
    pub identity_cache_poll_interval: f64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            identity_cache: true,
            identity_cache_capacity: 10_000,
            identity_cache_max_staleness: 60.0,
            identity_cache_poll_interval: 1.0,
        }
    }
}

impl CacheConfig {
    /// Checks the cache settings.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            (
                "identity_cache_max_staleness",
                self.identity_cache_max_staleness,
            ),
            (
                "identity_cache_poll_interval",
                self.identity_cache_poll_interval,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(ConfigError::new(
                    key,
                    "must be a positive number of seconds",
                ));
            }
        }
        if self.identity_cache_capacity == 0 {
            return Err(ConfigError::new(
                "identity_cache_capacity",
                "must be at least 1 (turn the cache off with identity_cache = false)",
            ));
        }
        Ok(())
    }
}

/// The kernel's settings: secrets, passwords, tokens, sessions, cookies, CSRF,
/// identities and redirects. Each feature's own keys live in its folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Flask `SECRET_KEY`: signs tokens, links and the remember cookie.
    /// Required outside Rocket's debug profile. _Default:_ unset.
    pub secret_key: Option<Secret>,
    /// Flask `SECRET_KEY_FALLBACKS`: also accepted when verifying. _Default:_ `[]`.
    pub secret_key_fallbacks: Vec<Secret>,
    /// HMAC key of the double password hash. Required outside Rocket's debug
    /// profile. _Default:_ unset.
    pub password_salt: Option<Secret>,
    /// Scheme of new password hashes. _Default:_ `"argon2"`.
    pub password_hash: PasswordHash,
    /// passlib-style options, e.g. `{"argon2__memory_cost": 65536,
    /// "argon2__rounds": 3, "argon2__parallelism": 4}`. _Default:_ `{}`.
    pub password_hash_passlib_options: BTreeMap<String, u32>,
    /// Most password hashes computed at once (dummy ones included); each
    /// takes argon2's memory. _Default:_ the number of cores.
    pub password_hash_concurrency: Option<usize>,
    /// Seconds a request waits for a hashing slot before it gets 503 with
    /// `Retry-After`. _Default:_ `10`.
    pub password_hash_queue_timeout: f64,
    /// Minimum password length (after NFKD). _Default:_ `8`.
    pub password_length_min: usize,
    /// Maximum password length (after NFKD). _Default:_ `128`.
    pub password_length_max: usize,
    /// Password complexity checker. _Default:_ none.
    pub password_complexity_checker: Option<ComplexityChecker>,
    /// Required zxcvbn score (0-4). _Default:_ `3`.
    pub zxcvbn_minimum_score: u8,
    /// Breached-password check. _Default:_ `false`.
    pub password_check_breached: BreachedCheck,
    /// Counts at or above this are breached. _Default:_ `1`.
    pub password_breached_count: u64,
    /// Base URL of the k-anonymity range API (the 5-hex-digit prefix is
    /// appended). _Default:_ `"https://api.pwnedpasswords.com/range/"`.
    pub password_breached_url: String,
    /// `SECURITY_FLASH_MESSAGES`: HTML pages show what happened. _Default:_ `true`.
    pub flash_messages: bool,
    /// URL prefix of the library's endpoints. _Default:_ none (`/`).
    pub url_prefix: Option<String>,
    /// Query-string key of the auth token. _Default:_ `"auth_token"`.
    pub token_authentication_key: String,
    /// Header carrying the auth token. _Default:_ `"Authentication-Token"`.
    pub token_authentication_header: String,
    /// Auth token lifetime in seconds (0: no limit). _Default:_ `900`.
    pub token_max_age: i64,
    /// Methods of `#[auth_required]` without arguments and of the library's
    /// own authenticated endpoints. _Default:_ `["session", "token"]`.
    pub api_enabled_methods: Vec<Mechanism>,
    /// Anti-enumeration mode. _Default:_ `false`.
    pub return_generic_responses: bool,
    /// Freshness window of sensitive endpoints, seconds (negative: off).
    /// _Default:_ `86400`.
    pub freshness: i64,
    /// Grace period after a successful freshness check, seconds.
    /// _Default:_ `3600`.
    pub freshness_grace_period: i64,
    /// Whether the auth token's `fs_paa` satisfies freshness. _Default:_ `true`.
    pub freshness_allow_auth_token: bool,
    /// `SECURITY_TRACKABLE`: login times, addresses and count. _Default:_ `false`.
    pub trackable: bool,
    /// `SECURITY_USERNAME_ENABLE`. _Default:_ `false`.
    pub username_enable: bool,
    /// `SECURITY_USERNAME_REQUIRED`. _Default:_ `false`.
    pub username_required: bool,
    /// `SECURITY_USERNAME_MIN_LENGTH`. _Default:_ `4`.
    pub username_min_length: usize,
    /// `SECURITY_USERNAME_MAX_LENGTH`. _Default:_ `32`.
    pub username_max_length: usize,
    /// `SECURITY_TOTP_SECRETS`: `{tag: secret}`, the application secrets
    /// that encrypt stored TOTP keys (passlib's format: the highest tag
    /// encrypts, every tag decrypts). Required by two-factor and unified
    /// sign-in. _Default:_ none.
    pub totp_secrets: Option<BTreeMap<String, Secret>>,
    /// `SECURITY_TOTP_ISSUER`: the service name authenticator apps show.
    /// Required by two-factor and unified sign-in. _Default:_ none.
    pub totp_issuer: Option<String>,
    /// `SECURITY_PHONE_REGION_DEFAULT`: the region of phone numbers given
    /// without a country code. _Default:_ `"US"`.
    pub phone_region_default: String,
    /// Sender of every mail. _Default:_ `"no-reply@localhost"`.
    pub email_sender: String,
    /// `SECURITY_REDIRECT_BEHAVIOR`. _Default:_ none (server-rendered pages).
    pub redirect_behavior: Option<RedirectBehavior>,
    /// `SECURITY_REDIRECT_HOST`. _Default:_ none.
    pub redirect_host: Option<String>,
    /// Flask's `SERVER_NAME` (`host[:port]`): links in mails use it instead of
    /// the request's `Host`. _Default:_ none.
    pub server_name: Option<String>,
    /// Flask's `TRUSTED_HOSTS`: the `Host` values (`host[:port]`; `.example.com`
    /// also matches its subdomains) the library's endpoints answer; any other
    /// gets 400. Outside Rocket's debug profile, `server_name` or
    /// `trusted_hosts` must be set. _Default:_ none (any host).
    pub trusted_hosts: Option<Vec<String>>,
    /// Flask's `PREFERRED_URL_SCHEME` of links in mails (`"http"` or `"https"`).
    /// _Default:_ `"https"` when Rocket serves TLS, else `"http"`.
    pub preferred_url_scheme: Option<String>,
    /// `SECURITY_POST_LOGIN_VIEW`. _Default:_ `"/"`.
    pub post_login_view: String,
    /// `SECURITY_POST_LOGOUT_VIEW`. _Default:_ `"/"`.
    pub post_logout_view: String,
    /// Mechanisms whose requests must carry a CSRF token.
    /// _Default:_ `["basic", "session", "token"]`.
    pub csrf_protect_mechanisms: Vec<Mechanism>,
    /// Skip CSRF for anonymous callers of the library's endpoints. _Default:_ `false`.
    pub csrf_ignore_unauth_endpoints: bool,
    /// Name of the JavaScript-readable CSRF cookie. _Default:_ none (no cookie).
    pub csrf_cookie_name: Option<String>,
    /// Attributes of that cookie. _Default:_ see [`CsrfCookie`].
    pub csrf_cookie: CsrfCookie,
    /// Extra header accepted for the CSRF token (`X-CSRFToken` and
    /// `X-CSRF-Token` always are). _Default:_ `"X-XSRF-Token"`.
    pub csrf_header: String,
    /// CSRF token lifetime in seconds (Flask-WTF's `WTF_CSRF_TIME_LIMIT`;
    /// none: no limit). _Default:_ `3600`.
    pub csrf_time_limit: Option<i64>,
    /// Flask's `SESSION_COOKIE_SAMESITE`. _Default:_ `"Strict"` (Flask: none).
    pub session_cookie_samesite: Option<SameSite>,
    /// Flask's `SESSION_COOKIE_SECURE` (also the remember cookie's unless
    /// `remember_cookie_secure` is set). _Default:_ `false`.
    pub session_cookie_secure: bool,
    /// Flask's `SESSION_COOKIE_HTTPONLY`. _Default:_ `true`.
    pub session_cookie_httponly: bool,
    /// Flask's `PERMANENT_SESSION_LIFETIME`, seconds: a session cookie last
    /// written longer ago than this is ignored, as Flask's signed session
    /// cookie is. _Default:_ `2678400` (31 days).
    pub permanent_session_lifetime: i64,
    /// Flask-Login's `REMEMBER_COOKIE_DURATION`, seconds. _Default:_ `31536000` (365 days).
    pub remember_cookie_duration: i64,
    /// Flask-Login's `REMEMBER_COOKIE_SAMESITE`. _Default:_ `"Strict"` (Flask-Login: none).
    pub remember_cookie_samesite: Option<SameSite>,
    /// Flask-Login's `REMEMBER_COOKIE_SECURE`. _Default:_ `session_cookie_secure`.
    pub remember_cookie_secure: Option<bool>,
    /// Flask-Login's `REMEMBER_COOKIE_HTTPONLY`. _Default:_ `true`.
    pub remember_cookie_httponly: bool,
    /// Realm of the HTTP basic challenge. _Default:_ `"Login Required"`.
    pub default_http_auth_realm: String,
    /// `Cache-Control` sent on the library's endpoints. _Default:_ `"private, no-store"`.
    pub cache_control: String,
    /// Salt of auth tokens. _Default:_ `"remember-salt"`.
    pub remember_salt: String,
    /// Directory with template overrides (`security/*.html.tera`,
    /// `security/email/*`). _Default:_ none.
    pub templates_dir: Option<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            secret_key: None,
            secret_key_fallbacks: Vec::new(),
            password_salt: None,
            password_hash: PasswordHash::Argon2,
            password_hash_passlib_options: BTreeMap::new(),
            password_hash_concurrency: None,
            password_hash_queue_timeout: 10.0,
            password_length_min: 8,
            password_length_max: 128,
            password_complexity_checker: None,
            zxcvbn_minimum_score: 3,
            password_check_breached: BreachedCheck::Off,
            password_breached_count: 1,
            password_breached_url: "https://api.pwnedpasswords.com/range/".into(),
            flash_messages: true,
            url_prefix: None,
            token_authentication_key: "auth_token".into(),
            token_authentication_header: "Authentication-Token".into(),
            token_max_age: 15 * 60,
            api_enabled_methods: vec![Mechanism::Session, Mechanism::Token],
            return_generic_responses: false,
            freshness: 24 * 3600,
            freshness_grace_period: 3600,
            freshness_allow_auth_token: true,
            trackable: false,
            username_enable: false,
            username_required: false,
            username_min_length: 4,
            username_max_length: 32,
            totp_secrets: None,
            totp_issuer: None,
            phone_region_default: "US".into(),
            email_sender: "no-reply@localhost".into(),
            redirect_behavior: None,
            redirect_host: None,
            server_name: None,
            trusted_hosts: None,
            preferred_url_scheme: None,
            post_login_view: "/".into(),
            post_logout_view: "/".into(),
            csrf_protect_mechanisms: vec![Mechanism::Basic, Mechanism::Session, Mechanism::Token],
            csrf_ignore_unauth_endpoints: false,
            csrf_cookie_name: None,
            csrf_cookie: CsrfCookie::default(),
            csrf_header: "X-XSRF-Token".into(),
            csrf_time_limit: Some(3600),
            session_cookie_samesite: Some(SameSite::Strict),
            session_cookie_secure: false,
            session_cookie_httponly: true,
            permanent_session_lifetime: 31 * 24 * 3600,
            remember_cookie_duration: 365 * 24 * 3600,
            remember_cookie_samesite: Some(SameSite::Strict),
            remember_cookie_secure: None,
            remember_cookie_httponly: true,
            default_http_auth_realm: "Login Required".into(),
            cache_control: "private, no-store".into(),
            remember_salt: "remember-salt".into(),
            templates_dir: None,
        }
    }
}

impl SecurityConfig {
    /// Attributes usable as identity at login, in order.
    pub fn identity_attributes(&self) -> Vec<&'static str> {
        if self.username_enable {
            vec!["email", "username"]
        } else {
            vec!["email"]
        }
    }

    /// Whether link endpoints redirect to SPA views.
    pub fn spa(&self) -> bool {
        self.redirect_behavior == Some(RedirectBehavior::Spa)
    }

    /// `path` under `url_prefix`.
    pub fn url(&self, path: &str) -> String {
        match self.url_prefix.as_deref() {
            Some(p) if !p.is_empty() && p != "/" => format!("{}{}", p.trim_end_matches('/'), path),
            _ => path.to_string(),
        }
    }

    /// All signing keys: `secret_key` first, then the fallbacks.
    pub(crate) fn signing_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = Vec::new();
        if let Some(k) = &self.secret_key {
            keys.push(k.expose().as_bytes().to_vec());
        }
        keys.extend(
            self.secret_key_fallbacks
                .iter()
                .map(|k| k.expose().as_bytes().to_vec()),
        );
        keys
    }

    /// Whether a CSRF token is demanded of requests authenticated by `mechanism`.
    pub(crate) fn csrf_protects(&self, mechanism: Mechanism) -> bool {
        self.csrf_protect_mechanisms.contains(&mechanism)
    }

    /// The remember cookie's `Secure` flag.
    pub(crate) fn remember_secure(&self) -> bool {
        self.remember_cookie_secure
            .unwrap_or(self.session_cookie_secure)
    }

    /// How many hashes may run at once.
    pub(crate) fn hash_concurrency(&self) -> usize {
        self.password_hash_concurrency.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }

    /// argon2 parameters from `password_hash_passlib_options` (passlib's names).
    pub(crate) fn argon2_params(&self) -> (u32, u32, u32) {
        let o = &self.password_hash_passlib_options;
        (
            o.get("argon2__memory_cost").copied().unwrap_or(65536),
            o.get("argon2__rounds")
                .or_else(|| o.get("argon2__time_cost"))
                .copied()
                .unwrap_or(3),
            o.get("argon2__parallelism").copied().unwrap_or(4),
        )
    }

    /// Whether the `Host` header value `host` is one `trusted_hosts` allows.
    pub(crate) fn host_trusted(&self, host: &str) -> bool {
        let Some(trusted) = &self.trusted_hosts else {
            return true;
        };
        let (name, port) = split_host(host);
        trusted.iter().any(|entry| {
            let (want, want_port) = split_host(entry);
            let name_ok = match want.strip_prefix('.') {
                Some(domain) => {
                    name.eq_ignore_ascii_case(domain)
                        || name
                            .to_ascii_lowercase()
                            .ends_with(&format!(".{}", domain.to_ascii_lowercase()))
                }
                None => name.eq_ignore_ascii_case(want),
            };
            name_ok && (want_port.is_none() || want_port == port)
        })
    }

    /// Checks values that parse but make no sense.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(s) = &self.preferred_url_scheme
            && s != "http"
            && s != "https"
        {
            return Err(ConfigError::new(
                "preferred_url_scheme",
                "must be \"http\" or \"https\"",
            ));
        }
        if let Some(n) = &self.server_name
            && (n.trim().is_empty() || n.contains(['/', ' ']))
        {
            return Err(ConfigError::new(
                "server_name",
                "must be `host` or `host:port`",
            ));
        }
        if self.trusted_hosts.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(ConfigError::new(
                "trusted_hosts",
                "must name at least one host (leave it unset for any host)",
            ));
        }
        let positive = [
            (
                "permanent_session_lifetime",
                self.permanent_session_lifetime,
            ),
            ("remember_cookie_duration", self.remember_cookie_duration),
        ];
        for (key, v) in positive {
            ConfigError::positive_secs(key, v)?;
        }
        if self.password_hash_concurrency == Some(0) {
            return Err(ConfigError::new(
                "password_hash_concurrency",
                "must be at least 1",
            ));
        }
        if !(self.password_hash_queue_timeout.is_finite()
            && self.password_hash_queue_timeout >= 0.0)
        {
            return Err(ConfigError::new(
                "password_hash_queue_timeout",
                "must be a number of seconds, 0 or more",
            ));
        }
        if self.token_max_age < 0 {
            return Err(ConfigError::new(
                "token_max_age",
                "must be 0 (no limit) or a positive number of seconds",
            ));
        }
        if self.freshness_grace_period < 0 {
            return Err(ConfigError::new(
                "freshness_grace_period",
                "must not be negative",
            ));
        }
        if self.zxcvbn_minimum_score > 4 {
            return Err(ConfigError::new("zxcvbn_minimum_score", "must be 0 to 4"));
        }
        if self.password_length_min == 0 || self.password_length_min > self.password_length_max {
            return Err(ConfigError::new(
                "password_length_min",
                format!(
                    "must be at least 1 and at most password_length_max ({})",
                    self.password_length_max
                ),
            ));
        }
        if self.username_min_length > self.username_max_length {
            return Err(ConfigError::new(
                "username_min_length",
                "must not exceed username_max_length",
            ));
        }
        if self.api_enabled_methods.is_empty() {
            return Err(ConfigError::new(
                "api_enabled_methods",
                "must name at least one of \"session\", \"token\", \"basic\"",
            ));
        }
        if let Some(p) = &self.url_prefix
            && !p.is_empty()
            && !p.starts_with('/')
        {
            return Err(ConfigError::new("url_prefix", "must start with `/`"));
        }
        if self.token_authentication_header.trim().is_empty() {
            return Err(ConfigError::new(
                "token_authentication_header",
                "must not be empty",
            ));
        }
        if self
            .csrf_cookie_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(ConfigError::new("csrf_cookie_name", "must not be empty"));
        }
        if let Some(t) = self.csrf_time_limit
            && t <= 0
        {
            return Err(ConfigError::new(
                "csrf_time_limit",
                "must be a positive number of seconds (or none for no limit)",
            ));
        }
        if self
            .email_sender
            .parse::<lettre::message::Mailbox>()
            .is_err()
        {
            return Err(ConfigError::new(
                "email_sender",
                format!("{:?} is not a mail address", self.email_sender),
            ));
        }
        if self.password_check_breached != BreachedCheck::Off
            && url::Url::parse(&self.password_breached_url).is_err()
        {
            return Err(ConfigError::new("password_breached_url", "is not a URL"));
        }
        Ok(())
    }
}

/// `host[:port]` split at the port (IPv6 literals keep their brackets).
fn split_host(host: &str) -> (&str, Option<&str>) {
    match host.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty() && !p.contains(']') && (!h.contains(':') || h.ends_with(']')) =>
        {
            (h, Some(p))
        }
        _ => (host, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_values_sane() {
        let c = SecurityConfig::default();
        // Flask-Security 5.9's defaults.
        assert_eq!(c.password_length_min, 8);
        assert_eq!(c.token_max_age, 15 * 60);
        assert_eq!(c.token_authentication_header, "Authentication-Token");
        assert_eq!(c.token_authentication_key, "auth_token");
        assert_eq!(
            c.api_enabled_methods,
            [Mechanism::Session, Mechanism::Token]
        );
        assert_eq!(
            c.csrf_protect_mechanisms,
            [Mechanism::Basic, Mechanism::Session, Mechanism::Token]
        );
        assert_eq!(c.freshness, 24 * 3600);
        assert_eq!(c.freshness_grace_period, 3600);
        assert_eq!(c.remember_salt, "remember-salt");
        assert_eq!(c.zxcvbn_minimum_score, 3);
        assert_eq!(c.password_check_breached, BreachedCheck::Off);
        assert_eq!(c.permanent_session_lifetime, 31 * 24 * 3600);
        assert!(c.session_cookie_httponly && c.remember_cookie_httponly);
        assert!(
            c.secret_key.is_none() && c.password_salt.is_none(),
            "no built-in secrets"
        );
        assert!(c.csrf_cookie.secure && !c.csrf_cookie.httponly);
        assert_eq!(c.identity_attributes(), ["email"]);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn keys_are_flask_security_names_and_enums() {
        let fig = Figment::new()
            .merge(("security.password_check_breached", "strict"))
            .merge(("security.secret_key", "k"))
            .merge(("security.url_prefix", "/auth"))
            .merge(("security.username_enable", true))
            .merge(("security.redirect_behavior", "spa"))
            .merge(("security.session_cookie_samesite", "lax"))
            .merge(("security.api_enabled_methods", ["basic"]));
        let c: SecurityConfig = extract(&fig).expect("config");
        assert_eq!(c.password_check_breached, BreachedCheck::Strict);
        assert_eq!(c.url("/login"), "/auth/login");
        assert_eq!(c.identity_attributes(), ["email", "username"]);
        assert!(c.spa());
        assert_eq!(c.session_cookie_samesite, Some(SameSite::Lax));
        assert_eq!(c.api_enabled_methods, [Mechanism::Basic]);
        assert_eq!(format!("{:?}", c.secret_key), "Some(Secret(<redacted>))");
    }

    #[test]
    fn trusted_hosts_match_names_ports_and_subdomains() {
        let c = SecurityConfig {
            trusted_hosts: Some(vec![
                "app.example".into(),
                ".corp.example".into(),
                "local:8000".into(),
            ]),
            ..Default::default()
        };
        assert!(c.host_trusted("app.example") && c.host_trusted("APP.example:8443"));
        assert!(c.host_trusted("corp.example") && c.host_trusted("a.b.corp.example"));
        assert!(c.host_trusted("local:8000") && !c.host_trusted("local:9000"));
        assert!(!c.host_trusted("evil.example") && !c.host_trusted("app.example.evil"));
        assert!(!c.host_trusted("xcorp.example"));
        assert!(SecurityConfig::default().host_trusted("anything"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let bad = Figment::new().merge(("security.password_check_breached", "maybe"));
        let e = extract::<SecurityConfig>(&bad).expect_err("bad value");
        assert_eq!(e.key(), "password_check_breached");
        let bad = Figment::new().merge(("security.redirect_behavior", "spaa"));
        assert_eq!(
            extract::<SecurityConfig>(&bad).expect_err("enum").key(),
            "redirect_behavior"
        );
        let bad = Figment::new().merge(("security.api_enabled_methods", ["tokens"]));
        assert_eq!(
            extract::<SecurityConfig>(&bad).expect_err("enum").key(),
            "api_enabled_methods"
        );
        let c = SecurityConfig {
            zxcvbn_minimum_score: 5,
            ..Default::default()
        };
        assert_eq!(
            c.validate().expect_err("range").key(),
            "zxcvbn_minimum_score"
        );
        let c = SecurityConfig {
            email_sender: "not an address".into(),
            ..Default::default()
        };
        assert_eq!(c.validate().expect_err("sender").key(), "email_sender");
    }
}
