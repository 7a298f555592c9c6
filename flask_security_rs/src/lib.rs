//! Flask-Security for Rocket.
//!
//! Attach the [`Security`] fairing with a datastore, derive
//! [`SecurityUser`]/[`SecurityRole`] on your SeaORM models (or use the
//! reference [`entity`] models), and protect routes with the attribute macros,
//! placed above the route attribute:
//!
//! ```ignore
//! #[auth_required("token", "session")]
//! #[roles_required("admin")]
//! #[get("/admin")]
//! fn admin(user: CurrentUser) -> String { format!("Hello admin {}!", user.email) }
//! ```
//!
//! Endpoints, JSON shapes, status codes, messages, token and password-hash
//! formats follow Flask-Security 5.9, so a Flask-Security single-page app and
//! user database keep working.
//!
//! # Configuration
//!
//! [`SecurityConfig`] is read from Rocket's figment under `security`; every key
//! is Flask-Security's `SECURITY_<NAME>` lower-cased (`token_max_age`,
//! `password_salt`, ...), durations in seconds, with Flask-Security's defaults.
//!
//! # Security notes
//!
//! * `secret_key` signs auth tokens, email links and the remember cookie;
//!   rotating it (keep the old one in `secret_key_fallbacks` for a while)
//!   invalidates them. Outside Rocket's debug profile the fairing refuses to
//!   start without `secret_key` and `password_salt`.
//! * The `session` cookie is a Rocket private cookie: encrypted and
//!   authenticated with Rocket's own `secret_key` ([`derive_cookie_key`] makes
//!   one from Flask's).
//! * Changing or resetting a password rotates `fs_uniquifier`, which ends every
//!   session, remember cookie and (unless the model has `fs_token_uniquifier`)
//!   auth token; deactivating a user ends them at once.
//! * Password hashing and verification run on the blocking thread pool;
//!   signatures, CSRF tokens and remember cookies are compared in constant time.
//! * There is no built-in rate limiting or lockout, as in Flask-Security: put
//!   one in front of `/login`, `/reset` and the other anonymous endpoints.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate self as flask_security_rs;

pub mod auth;
pub mod catchers;
pub mod clock;
pub mod config;
pub mod csrf;
pub mod datastore;
pub mod entity;
pub mod guard;
pub mod mail;
pub mod messages;
pub mod migration;
pub mod model;
pub mod password;
pub mod policy;
pub mod reply;
pub mod session;
mod templates;
pub mod token;
mod util;
mod views;

use std::sync::Arc;

use rocket::data::Data;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::{Build, Request, Rocket};

pub use clock::Clock;
pub use config::SecurityConfig;
pub use datastore::{SeaOrmDatastore, User, UserDatastore};
pub use flask_security_rs_macros::{
    SecurityRole, SecurityUser, anonymous_user_required, auth_required, permissions_accepted,
    permissions_required, roles_accepted, roles_required,
};
pub use guard::{CurrentUser, MaybeUser};
pub use mail::{ConsoleMailer, Email, Mailer, SmtpMailer};
pub use model::{
    RoleField, SecurityRole as SecurityRoleModel, SecurityUser as SecurityUserModel, UserField,
};
pub use password::PasswordUtil;
pub use reply::Reply;
pub use sea_orm;
pub use serde_json;

/// Computes an auth token's `exp` for a user (`SECURITY_TOKEN_EXPIRE_TIMESTAMP`):
/// a unix time, or 0 for none.
pub type TokenExpiry = Arc<dyn Fn(&User) -> i64 + Send + Sync>;

/// Answers a refused request (Flask-Security's `unauthn_handler` /
/// `unauthz_handler`). Read why with [`guard::failure`].
pub type FailureHandler = Arc<dyn for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync>;

/// Everything the library's routes and guards share; managed by the fairing.
pub struct SecurityState {
    /// The configuration in force.
    pub config: SecurityConfig,
    /// Users and roles.
    pub datastore: Arc<dyn UserDatastore>,
    /// Password hashing.
    pub passwords: Arc<PasswordUtil>,
    /// Password rules for new passwords.
    pub policy: policy::PasswordPolicy,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Time source.
    pub clock: Clock,
    pub(crate) token_expiry: Option<TokenExpiry>,
    pub(crate) unauthn_handler: Option<FailureHandler>,
    pub(crate) unauthz_handler: Option<FailureHandler>,
    pub(crate) templates: templates::Templates,
    keys: Vec<Vec<u8>>,
}

impl std::fmt::Debug for SecurityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SecurityState {
    /// A token serializer for `salt` with the configured keys.
    pub fn serializer(&self, salt: &str) -> token::Serializer {
        token::Serializer::new(&self.keys, salt)
    }

    /// Hashes a password on the blocking pool.
    pub async fn hash_password(&self, password: &str) -> Option<String> {
        let util = self.passwords.clone();
        let pw = password.to_string();
        match rocket::tokio::task::spawn_blocking(move || util.hash_password(&pw)).await {
            Ok(Ok(h)) => Some(h),
            Ok(Err(e)) => {
                log::error!("password hashing failed: {e}");
                None
            }
            Err(e) => {
                log::error!("password hashing task failed: {e}");
                None
            }
        }
    }

    /// Verifies `password` for `user` on the blocking pool, re-hashing it to
    /// the default scheme when it was stored in another one.
    pub async fn verify_password(&self, user: &User, password: &str) -> bool {
        let Some(stored) = user.password.clone().filter(|p| !p.is_empty()) else {
            self.dummy_verify().await;
            return false;
        };
        let util = self.passwords.clone();
        let pw = password.to_string();
        let verdict = rocket::tokio::task::spawn_blocking(move || util.verify(&pw, &stored)).await;
        match verdict {
            Ok(password::Verified::Yes) => true,
            Ok(password::Verified::YesNeedsRehash) => {
                if let Some(h) = self.hash_password(password).await {
                    let change = vec![(UserField::Password, sea_orm::Value::String(Some(h)))];
                    if let Err(e) = self.datastore.update_user(user.id, change).await {
                        log::error!("storing re-hashed password failed: {e}");
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Burns one hash so that unknown identities take as long as known ones.
    pub async fn dummy_verify(&self) {
        let util = self.passwords.clone();
        let _ = rocket::tokio::task::spawn_blocking(move || util.dummy_verify()).await;
    }

    /// Sends a mail rendered from `security/email/<template>.{txt,html}.tera`.
    pub async fn send_mail(
        &self,
        to: &str,
        subject: &str,
        template: &str,
        ctx: &rocket_dyn_templates::tera::Context,
    ) -> Result<(), mail::MailError> {
        let (text, html) = self
            .templates
            .render_email(template, ctx)
            .map_err(mail::MailError::Build)?;
        let email = Email {
            from: self.config.email_sender.clone(),
            to: to.to_string(),
            subject: subject.to_string(),
            text,
            html,
        };
        self.mailer.send(email).await
    }
}

/// The fairing that installs Flask-Security: state, routes, catchers.
pub struct Security {
    datastore: Arc<dyn UserDatastore>,
    mailer: Option<Arc<dyn Mailer>>,
    clock: Clock,
    config: Option<SecurityConfig>,
    token_expiry: Option<TokenExpiry>,
    unauthn_handler: Option<FailureHandler>,
    unauthz_handler: Option<FailureHandler>,
    register_catchers: bool,
}

impl Security {
    /// Flask-Security on `datastore`; configuration comes from Rocket's
    /// figment (`[default.security]`).
    pub fn new(datastore: impl UserDatastore) -> Self {
        Self::with_datastore(Arc::new(datastore))
    }

    /// Like [`Security::new`] with a shared datastore.
    pub fn with_datastore(datastore: Arc<dyn UserDatastore>) -> Self {
        Security {
            datastore,
            mailer: None,
            clock: Clock::new(),
            config: None,
            token_expiry: None,
            unauthn_handler: None,
            unauthz_handler: None,
            register_catchers: true,
        }
    }

    /// Uses `mailer` instead of the one the configuration implies.
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Uses `clock` (tests move it to check expiry).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `config` instead of reading the figment.
    pub fn config(mut self, config: SecurityConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Per-user auth token expiry (`SECURITY_TOKEN_EXPIRE_TIMESTAMP`).
    pub fn token_expiry(mut self, f: impl Fn(&User) -> i64 + Send + Sync + 'static) -> Self {
        self.token_expiry = Some(Arc::new(f));
        self
    }

    /// Replaces the answer to unauthenticated requests (401 / redirect to login).
    pub fn unauthn_handler(
        mut self,
        f: impl for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.unauthn_handler = Some(Arc::new(f));
        self
    }

    /// Replaces the answer to unauthorized requests (403).
    pub fn unauthz_handler(
        mut self,
        f: impl for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.unauthz_handler = Some(Arc::new(f));
        self
    }

    /// Leaves catcher registration to the application
    /// (register [`catchers::catchers()`] yourself, possibly under a base).
    pub fn without_catchers(mut self) -> Self {
        self.register_catchers = false;
        self
    }
}

fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn argon2_params(cfg: &SecurityConfig) -> (u32, u32, u32) {
    let o = &cfg.password_hash_passlib_options;
    (
        o.get("argon2__memory_cost").copied().unwrap_or(65536),
        o.get("argon2__rounds")
            .or_else(|| o.get("argon2__time_cost"))
            .copied()
            .unwrap_or(3),
        o.get("argon2__parallelism").copied().unwrap_or(4),
    )
}

#[rocket::async_trait]
impl Fairing for Security {
    fn info(&self) -> Info {
        Info {
            name: "Flask-Security",
            kind: Kind::Ignite | Kind::Request | Kind::Singleton,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let mut config = match &self.config {
            Some(c) => c.clone(),
            None => match rocket.figment().extract_inner::<SecurityConfig>("security") {
                Ok(c) => c,
                Err(e) if e.missing() => SecurityConfig::default(),
                Err(e) => {
                    log::error!("invalid `security` configuration: {e}");
                    return Err(rocket);
                }
            },
        };
        let debug = rocket.figment().profile() == rocket::Config::DEBUG_PROFILE;
        for (name, value) in [
            ("secret_key", &mut config.secret_key),
            ("password_salt", &mut config.password_salt),
        ] {
            if value.as_ref().is_none_or(|v| v.expose().is_empty()) {
                if !debug {
                    log::error!("`security.{name}` must be set outside the debug profile");
                    return Err(rocket);
                }
                log::warn!("`security.{name}` is not set: using a random one (debug profile only)");
                *value = Some(config::Secret::new(random_secret()));
            }
        }
        let templates = match templates::Templates::load(config.templates_dir.as_deref()) {
            Ok(t) => t,
            Err(e) => {
                log::error!("loading security templates failed: {e}");
                return Err(rocket);
            }
        };
        let mailer: Arc<dyn Mailer> = match (&self.mailer, &config.mail.mail_server) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => match SmtpMailer::from_config(&config.mail) {
                Ok(m) => Arc::new(m),
                Err(e) => {
                    log::error!("mail configuration: {e}");
                    return Err(rocket);
                }
            },
            (None, None) => Arc::new(ConsoleMailer),
        };
        let (m, t, p) = argon2_params(&config);
        let salt = config
            .password_salt
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let passwords = Arc::new(PasswordUtil::new(&salt).with_argon2_params(m, t, p));
        let keys = config.signing_keys();
        let base = config
            .url_prefix
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let routes = views::routes(&config);
        let policy = policy::PasswordPolicy::new(&config);
        let state = SecurityState {
            policy,
            config,
            datastore: self.datastore.clone(),
            passwords,
            mailer,
            clock: self.clock.clone(),
            token_expiry: self.token_expiry.clone(),
            unauthn_handler: self.unauthn_handler.clone(),
            unauthz_handler: self.unauthz_handler.clone(),
            templates,
            keys,
        };
        let mut rocket = rocket.manage(state).mount(base, routes);
        if self.register_catchers {
            rocket = rocket.register("/", catchers::catchers());
        }
        Ok(rocket)
    }

    async fn on_request(&self, req: &mut Request<'_>, data: &mut Data<'_>) {
        let json = reply::is_json_body(req);
        let form = req.content_type().is_some_and(|ct| ct.is_form());
        if !json && !form {
            return;
        }
        let peeked = data.peek(512).await;
        let (mut auth_token, mut csrf_token) = (None, None);
        if json {
            if let Ok(serde_json::Value::Object(m)) =
                serde_json::from_slice::<serde_json::Value>(peeked)
            {
                auth_token = m
                    .get("auth_token")
                    .and_then(|v| v.as_str())
                    .map(String::from);
            }
        } else {
            // Tokens come from a JSON body, the query or the header; forms carry CSRF only.
            for (k, v) in url::form_urlencoded::parse(peeked) {
                if k == "csrf_token" && csrf_token.is_none() {
                    csrf_token = Some(v.into_owned());
                }
            }
        }
        req.local_cache(|| auth::BodyFields {
            auth_token,
            csrf_token,
        });
    }
}

/// A value for Rocket's `secret_key` (which encrypts the `session` cookie)
/// derived from Flask's `SECRET_KEY`, so one secret configures both.
pub fn derive_cookie_key(secret_key: &str) -> String {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let mut mac = match <Hmac<sha2::Sha512> as Mac>::new_from_slice(secret_key.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(b"flask_security_rs session cookie key");
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Opens `url` (SQLite path or URL, or PostgreSQL URL) and runs `migrations`
/// plus nothing else; a plain path becomes `sqlite://<path>?mode=rwc`.
pub fn database_url(url: &str) -> String {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return url.to_string();
    }
    let path = url
        .strip_prefix("sqlite:///")
        .map(|p| format!("/{p}"))
        .or_else(|| url.strip_prefix("sqlite://").map(String::from));
    let path = path.unwrap_or_else(|| url.to_string());
    let path = path.split('?').next().unwrap_or("").to_string();
    if path == ":memory:" || path.is_empty() {
        return "sqlite::memory:".into();
    }
    format!("sqlite://{path}?mode=rwc")
}
