//! Configuration, read from Rocket's figment under `security`.
//!
//! Keys are Flask-Security's `SECURITY_*` names lower-cased without the prefix
//! (`SECURITY_PASSWORD_SALT` -> `password_salt`), with the same defaults. Flask's
//! own `SECRET_KEY` / `SECRET_KEY_FALLBACKS` are `secret_key` / `secret_key_fallbacks`.
//! Durations are whole seconds.

use serde::Deserialize;

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

/// Attributes of the CSRF cookie (`SECURITY_CSRF_COOKIE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CsrfCookie {
    /// `SameSite` value: "Strict", "Lax" or "None".
    pub samesite: String,
    /// `HttpOnly` flag (false so JavaScript can read it).
    pub httponly: bool,
    /// `Secure` flag.
    pub secure: bool,
}

impl Default for CsrfCookie {
    fn default() -> Self {
        CsrfCookie {
            samesite: "Strict".into(),
            httponly: false,
            secure: true,
        }
    }
}

/// Outgoing mail settings (Flask-Mail's `MAIL_*` keys, lower-cased).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct MailConfig {
    /// SMTP host; when unset mails are written to the console.
    pub mail_server: Option<String>,
    /// SMTP port (25 when unset, 465 with `mail_use_ssl`, 587 with `mail_use_tls`).
    pub mail_port: Option<u16>,
    /// STARTTLS.
    pub mail_use_tls: bool,
    /// Implicit TLS.
    pub mail_use_ssl: bool,
    /// SMTP user name.
    pub mail_username: Option<String>,
    /// SMTP password.
    pub mail_password: Option<Secret>,
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
                        "password_check_breached: unknown value {other:?}"
                    )));
                }
            },
        })
    }
}

/// Every setting the library reads. See the crate docs for the mapping to
/// Flask-Security's `SECURITY_*` keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Flask `SECRET_KEY`: signs tokens, links and the remember cookie.
    pub secret_key: Option<Secret>,
    /// Flask `SECRET_KEY_FALLBACKS`: accepted when verifying.
    pub secret_key_fallbacks: Vec<Secret>,
    /// HMAC key of the double password hash.
    pub password_salt: Option<Secret>,
    /// Default password scheme (only "argon2" is produced).
    pub password_hash: String,
    /// passlib-style options, e.g. `{"argon2__memory_cost": 65536, "argon2__rounds": 3, "argon2__parallelism": 4}`.
    pub password_hash_passlib_options: std::collections::BTreeMap<String, u32>,
    /// Minimum password length (after NFKD).
    pub password_length_min: usize,
    /// Maximum password length (after NFKD).
    pub password_length_max: usize,
    /// `PASSWORD_CONFIRM_REQUIRED`.
    pub password_confirm_required: bool,
    /// `SECURITY_PASSWORD_COMPLEXITY_CHECKER`: `None` or `"zxcvbn"`.
    pub password_complexity_checker: Option<String>,
    /// `SECURITY_ZXCVBN_MINIMUM_SCORE` (0-4).
    pub zxcvbn_minimum_score: u8,
    /// `SECURITY_PASSWORD_CHECK_BREACHED`.
    pub password_check_breached: BreachedCheck,
    /// `SECURITY_PASSWORD_BREACHED_COUNT`: counts at or above this are breached.
    pub password_breached_count: u64,
    /// Base URL of the k-anonymity range API (the 5-hex-digit prefix is appended).
    pub password_breached_url: String,
    /// `SECURITY_RECOVERABLE`.
    pub recoverable: bool,
    /// `SECURITY_RESET_PASSWORD_WITHIN`, seconds.
    pub reset_password_within: i64,
    /// `SECURITY_SEND_PASSWORD_RESET_EMAIL`.
    pub send_password_reset_email: bool,
    /// `SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL`.
    pub send_password_reset_notice_email: bool,
    /// `SECURITY_AUTO_LOGIN_AFTER_RESET`.
    pub auto_login_after_reset: bool,
    /// `SECURITY_RESET_VIEW` (SPA).
    pub reset_view: Option<String>,
    /// `SECURITY_RESET_ERROR_VIEW` (SPA).
    pub reset_error_view: Option<String>,
    /// `SECURITY_POST_RESET_VIEW`.
    pub post_reset_view: Option<String>,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_RESET`.
    pub email_subject_password_reset: String,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_NOTICE`.
    pub email_subject_password_notice: String,
    /// Salt of reset links.
    pub reset_salt: String,
    /// `SECURITY_CHANGEABLE`.
    pub changeable: bool,
    /// `SECURITY_POST_CHANGE_VIEW`.
    pub post_change_view: Option<String>,
    /// `SECURITY_SEND_PASSWORD_CHANGE_EMAIL`.
    pub send_password_change_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_CHANGE_NOTICE`.
    pub email_subject_password_change_notice: String,
    /// `SECURITY_CHANGE_EMAIL`.
    pub change_email: bool,
    /// `SECURITY_CHANGE_EMAIL_WITHIN`, seconds.
    pub change_email_within: i64,
    /// `SECURITY_CHANGE_EMAIL_SUBJECT`.
    pub change_email_subject: String,
    /// `SECURITY_POST_CHANGE_EMAIL_VIEW`.
    pub post_change_email_view: Option<String>,
    /// `SECURITY_CHANGE_EMAIL_ERROR_VIEW`.
    pub change_email_error_view: Option<String>,
    /// Salt of change-email links.
    pub change_email_salt: String,
    /// `SECURITY_CHANGE_USERNAME`.
    pub change_username: bool,
    /// `SECURITY_POST_CHANGE_USERNAME_VIEW`.
    pub post_change_username_view: Option<String>,
    /// `SECURITY_SEND_USERNAME_CHANGE_EMAIL`.
    pub send_username_change_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_USERNAME_CHANGE_NOTICE`.
    pub email_subject_username_change_notice: String,
    /// `SECURITY_USERNAME_RECOVERY`.
    pub username_recovery: bool,
    /// `SECURITY_EMAIL_SUBJECT_USERNAME_RECOVERY`.
    pub email_subject_username_recovery: String,
    /// `SECURITY_FLASH_MESSAGES`: HTML pages show what happened.
    pub flash_messages: bool,
    /// Blueprint URL prefix.
    pub url_prefix: Option<String>,
    /// Query-string key of the auth token.
    pub token_authentication_key: String,
    /// Header carrying the auth token.
    pub token_authentication_header: String,
    /// Auth token lifetime in seconds.
    pub token_max_age: i64,
    /// Default methods of `#[auth_required]` without arguments.
    pub api_enabled_methods: Vec<String>,
    /// Default of `remember` at login.
    pub default_remember_me: bool,
    /// Anti-enumeration mode.
    pub return_generic_responses: bool,
    /// Freshness window for sensitive endpoints, seconds (negative: off).
    pub freshness: i64,
    /// Grace period after a successful freshness check, seconds.
    pub freshness_grace_period: i64,
    /// Whether the auth token's `fs_paa` satisfies freshness.
    pub freshness_allow_auth_token: bool,
    /// `SECURITY_REGISTERABLE`.
    pub registerable: bool,
    /// `SECURITY_CONFIRMABLE`.
    pub confirmable: bool,
    /// `SECURITY_TRACKABLE`.
    pub trackable: bool,
    /// `SECURITY_USERNAME_ENABLE`.
    pub username_enable: bool,
    /// `SECURITY_USERNAME_REQUIRED`.
    pub username_required: bool,
    /// `SECURITY_USERNAME_MIN_LENGTH`.
    pub username_min_length: usize,
    /// `SECURITY_USERNAME_MAX_LENGTH`.
    pub username_max_length: usize,
    /// `SECURITY_LOGIN_WITHOUT_CONFIRMATION`.
    pub login_without_confirmation: bool,
    /// `SECURITY_AUTO_LOGIN_AFTER_CONFIRM`.
    pub auto_login_after_confirm: bool,
    /// Confirmation link lifetime, seconds.
    pub confirm_email_within: i64,
    /// `SECURITY_SEND_REGISTER_EMAIL`.
    pub send_register_email: bool,
    /// Sender of every mail.
    pub email_sender: String,
    /// Subject of the welcome mail.
    pub email_subject_register: String,
    /// Subject of the confirmation-instructions mail.
    pub email_subject_confirm: String,
    /// `None` or "spa".
    pub redirect_behavior: Option<String>,
    /// `SECURITY_REDIRECT_HOST`.
    pub redirect_host: Option<String>,
    /// `SECURITY_POST_LOGIN_VIEW`.
    pub post_login_view: String,
    /// `SECURITY_POST_LOGOUT_VIEW`.
    pub post_logout_view: String,
    /// `SECURITY_POST_REGISTER_VIEW`.
    pub post_register_view: Option<String>,
    /// `SECURITY_POST_CONFIRM_VIEW`.
    pub post_confirm_view: Option<String>,
    /// `SECURITY_CONFIRM_ERROR_VIEW`.
    pub confirm_error_view: Option<String>,
    /// `SECURITY_LOGIN_ERROR_VIEW`.
    pub login_error_view: Option<String>,
    /// `SECURITY_POST_VERIFY_VIEW`.
    pub post_verify_view: Option<String>,
    /// Mechanisms whose requests must carry a CSRF token.
    pub csrf_protect_mechanisms: Vec<String>,
    /// Skip CSRF for anonymous callers of the library's endpoints.
    pub csrf_ignore_unauth_endpoints: bool,
    /// Name of the JavaScript-readable CSRF cookie (`None`: no cookie).
    pub csrf_cookie_name: Option<String>,
    /// Attributes of that cookie.
    pub csrf_cookie: CsrfCookie,
    /// Extra header accepted for the CSRF token (`X-CSRFToken` and `X-CSRF-Token` always are).
    pub csrf_header: String,
    /// CSRF token lifetime in seconds (`WTF_CSRF_TIME_LIMIT`; `None`: no limit).
    pub csrf_time_limit: Option<i64>,
    /// `SECURITY_LOGOUT_CSRF`.
    pub logout_csrf: bool,
    /// `SameSite` of the session cookie.
    pub session_cookie_samesite: String,
    /// `Secure` flag of the session and remember cookies.
    pub session_cookie_secure: bool,
    /// Lifetime of the remember cookie, seconds (Flask-Login: 365 days).
    pub remember_cookie_duration: i64,
    /// Realm of the HTTP basic challenge.
    pub default_http_auth_realm: String,
    /// `Cache-Control` sent on the library's endpoints.
    pub cache_control: String,
    /// Salt of auth tokens.
    pub remember_salt: String,
    /// Salt of confirmation links.
    pub confirm_salt: String,
    /// Directory with template overrides (`security/*.html.tera`, `security/email/*`).
    pub templates_dir: Option<String>,
    /// Outgoing mail.
    #[serde(flatten)]
    pub mail: MailConfig,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            secret_key: None,
            secret_key_fallbacks: Vec::new(),
            password_salt: None,
            password_hash: "argon2".into(),
            password_hash_passlib_options: Default::default(),
            password_length_min: 8,
            password_length_max: 128,
            password_confirm_required: true,
            password_complexity_checker: None,
            zxcvbn_minimum_score: 3,
            password_check_breached: BreachedCheck::Off,
            password_breached_count: 1,
            password_breached_url: "https://api.pwnedpasswords.com/range/".into(),
            recoverable: false,
            reset_password_within: 24 * 3600,
            send_password_reset_email: true,
            send_password_reset_notice_email: true,
            auto_login_after_reset: false,
            reset_view: None,
            reset_error_view: None,
            post_reset_view: None,
            email_subject_password_reset: "Password reset instructions".into(),
            email_subject_password_notice: "Your password has been reset".into(),
            reset_salt: "reset-salt".into(),
            changeable: false,
            post_change_view: None,
            send_password_change_email: true,
            email_subject_password_change_notice: "Your password has been changed".into(),
            change_email: false,
            change_email_within: 2 * 3600,
            change_email_subject: "Confirm your new email address".into(),
            post_change_email_view: None,
            change_email_error_view: None,
            change_email_salt: "change-email-salt".into(),
            change_username: false,
            post_change_username_view: None,
            send_username_change_email: true,
            email_subject_username_change_notice: "Your username has been changed".into(),
            username_recovery: false,
            email_subject_username_recovery: "Your requested username".into(),
            flash_messages: true,
            url_prefix: None,
            token_authentication_key: "auth_token".into(),
            token_authentication_header: "Authentication-Token".into(),
            token_max_age: 15 * 60,
            api_enabled_methods: vec!["session".into(), "token".into()],
            default_remember_me: false,
            return_generic_responses: false,
            freshness: 24 * 3600,
            freshness_grace_period: 3600,
            freshness_allow_auth_token: true,
            registerable: false,
            confirmable: false,
            trackable: false,
            username_enable: false,
            username_required: false,
            username_min_length: 4,
            username_max_length: 32,
            login_without_confirmation: false,
            auto_login_after_confirm: false,
            confirm_email_within: 2 * 24 * 3600,
            send_register_email: true,
            email_sender: "no-reply@localhost".into(),
            email_subject_register: "Welcome".into(),
            email_subject_confirm: "Please confirm your email".into(),
            redirect_behavior: None,
            redirect_host: None,
            post_login_view: "/".into(),
            post_logout_view: "/".into(),
            post_register_view: None,
            post_confirm_view: None,
            confirm_error_view: None,
            login_error_view: None,
            post_verify_view: None,
            csrf_protect_mechanisms: vec!["basic".into(), "session".into(), "token".into()],
            csrf_ignore_unauth_endpoints: false,
            csrf_cookie_name: None,
            csrf_cookie: CsrfCookie::default(),
            csrf_header: "X-XSRF-Token".into(),
            csrf_time_limit: Some(3600),
            logout_csrf: false,
            session_cookie_samesite: "Strict".into(),
            session_cookie_secure: false,
            remember_cookie_duration: 365 * 24 * 3600,
            default_http_auth_realm: "Login Required".into(),
            cache_control: "private, no-store".into(),
            remember_salt: "remember-salt".into(),
            confirm_salt: "confirm-salt".into(),
            templates_dir: None,
            mail: MailConfig::default(),
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
        self.redirect_behavior.as_deref() == Some("spa")
    }

    /// `path` under `url_prefix`.
    pub fn url(&self, path: &str) -> String {
        match self.url_prefix.as_deref() {
            Some(p) if !p.is_empty() && p != "/" => format!("{}{}", p.trim_end_matches('/'), path),
            _ => path.to_string(),
        }
    }

    /// All signing keys: `secret_key` first, then the fallbacks.
    pub fn signing_keys(&self) -> Vec<Vec<u8>> {
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
    pub fn csrf_protects(&self, mechanism: &str) -> bool {
        self.csrf_protect_mechanisms.iter().any(|m| m == mechanism)
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
        assert_eq!(c.api_enabled_methods, ["session", "token"]);
        assert_eq!(c.csrf_protect_mechanisms, ["basic", "session", "token"]);
        assert_eq!(c.freshness, 24 * 3600);
        assert_eq!(c.freshness_grace_period, 3600);
        assert_eq!(c.confirm_email_within, 2 * 24 * 3600);
        assert_eq!(c.reset_password_within, 24 * 3600);
        assert_eq!(c.change_email_within, 2 * 3600);
        assert_eq!(c.remember_salt, "remember-salt");
        assert_eq!(c.zxcvbn_minimum_score, 3);
        assert_eq!(c.password_check_breached, BreachedCheck::Off);
        // Every feature beyond login is opt-in, as in Flask-Security.
        assert!(
            !c.registerable && !c.confirmable && !c.recoverable && !c.changeable && !c.change_email
        );
        assert!(
            c.secret_key.is_none() && c.password_salt.is_none(),
            "no built-in secrets"
        );
        assert!(c.csrf_cookie.secure && !c.csrf_cookie.httponly);
        assert_eq!(c.identity_attributes(), ["email"]);
    }

    #[test]
    fn keys_are_flask_security_names() {
        let fig = rocket::figment::Figment::new()
            .merge(("security.password_check_breached", "strict"))
            .merge(("security.secret_key", "k"))
            .merge(("security.url_prefix", "/auth"))
            .merge(("security.username_enable", true));
        let c: SecurityConfig = fig.extract_inner("security").expect("config");
        assert_eq!(c.password_check_breached, BreachedCheck::Strict);
        assert_eq!(c.url("/login"), "/auth/login");
        assert_eq!(c.identity_attributes(), ["email", "username"]);
        assert_eq!(format!("{:?}", c.secret_key), "Some(Secret(<redacted>))");
        let bad =
            rocket::figment::Figment::new().merge(("security.password_check_breached", "maybe"));
        assert!(bad.extract_inner::<SecurityConfig>("security").is_err());
    }
}
