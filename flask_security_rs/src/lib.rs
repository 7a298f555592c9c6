//! Flask-Security for Rocket.
//!
//! Attach the [`Security`] fairing with a datastore, derive
//! [`SecurityUser`]/[`SecurityRole`] on your SeaORM models (or use the
//! reference [`entity`] models), and protect routes with the attribute macros,
//! placed above the route attribute:
//!
//! ```
//! use flask_security_rs::{CurrentUser, auth_required, roles_required};
//! use rocket::get;
//!
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
//! * The `session` cookie is encrypted and authenticated (AES-256-GCM) under
//!   a key derived from `secret_key`; `secret_key_fallbacks` still open it.
//!   Cookies Rocket sealed as private cookies are still read.
//! * Changing or resetting a password rotates `fs_uniquifier`, which ends every
//!   session, remember cookie and (unless the model has `fs_token_uniquifier`)
//!   auth token; deactivating a user ends them at once.
//! * Password hashing and verification run on the blocking thread pool;
//!   signatures, CSRF tokens and remember cookies are compared in constant time.
//! * Failed authentications are throttled per account (and, when
//!   configured, per client address) in the database, with an exponential
//!   backoff answered by 429 + `Retry-After` (the `throttle_*` keys); a
//!   [`LoginHook`] (`allow` / `failed`) sees every attempt too.
//! * State that must outlive a request is in the database, so any number of
//!   instances can serve one user: session records (logout and
//!   [`Admin::revoke_session`] end copies of the cookies at once), the
//!   identity index (one account per address, up to case and Unicode form),
//!   the throttle counts and the mail outbox.
//! * Single-use links are consumed by conditional updates: of N concurrent
//!   uses, one succeeds. A database failure is a generic 503, never a 401 or
//!   a 400.
//!
//! # Architecture
//!
//! ```text
//! lib.rs          this map; the public surface; __private (paths for the macros)
//! fairing.rs      Security: config → state → features → routes, catchers, seed
//! state.rs        the managed state and the hooks features plug into
//! config/         the kernel's configuration section, enums, unknown-key check
//! messages/       Msg keys (Flask-Security's catalogue), rendered only in replies
//! http/           negotiation, FormInput/FormErrors, Reply, Ctx, redirects,
//!                 templates, catchers, 405/OPTIONS
//! authn/          mechanisms: session + remember cookie, auth token, HTTP basic,
//!                 CSRF, freshness
//! login/          the login pipeline and the LoginHook trait
//! guards/         CurrentUser, MaybeUser and the guards behind the macros
//! tokens/         itsdangerous Serializer, SignedLink<P> (every mailed link)
//! passwords/      hashing (off the executor), the new-password policy
//! totp/           one-time codes: TOTP keys and codes, otpauth URI + QR (SVG),
//!                 passlib's encrypted key JSON (tf_totp_secret)
//! datastore/      UserDatastore, SeaOrmDatastore, entities, migrations, Admin;
//!                 the SessionStore and OutboxStore extensions; seaorm/ keeps
//!                 the identity index, session records and outbox tables
//! mail/           Mailer, SMTP and console transports, render() with mail
//!                 hooks, the outbox and its background sender
//! sms/            SmsSender, console and capturing senders, normalize_phone
//! identity.rs     email/username rules and keys, finding the account a form names
//! features/       one folder per feature + REGISTRY
//!   login/ register/ confirm/ recover/ change_password/ change_email/
//!   change_username/ recover_username/ throttle/
//! ```
//!
//! Every way of signing in ends in the login pipeline ([`login`](LoginHook)):
//! credentials under the throttling hook → account checks → second-factor
//! hook → session/token issuance, trackable columns → `signed_in` events.
//!
//! A feature is a folder under `features/` with a `FEATURE` descriptor: its
//! configuration keys (a serde struct of flat `security.*` keys), its
//! templates, and an `install` function that reads its section and, when
//! enabled, mounts routes and plugs hooks: account checks, additions to other
//! features' mails, the `reauth_options` of `/verify`, a [`LoginHook`]. Adding
//! one is a new folder plus a line in `features::REGISTRY`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate self as flask_security_rs;

/// Not API; for the benchmarks (`benches/micro.rs`).
#[doc(hidden)]
#[path = "bench_api.rs"]
pub mod __bench;
mod authn;
mod ceremony;
mod clock;
mod config;
mod datastore;
mod fairing;
mod features;
#[cfg(test)]
mod fuzz_tests;
mod guards;
mod http;
pub mod identity;
mod login;
mod mail;
mod messages;
mod passwords;
pub mod sms;
mod state;
mod tokens;
// Used by the two-factor feature; until it lands, only by its own tests.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) mod totp;
mod util;

pub use ceremony::{CeremonyRecord, CeremonyStore};
pub use clock::Clock;
pub use config::{
    BreachedCheck, CacheConfig, ComplexityChecker, ConfigError, CsrfCookie, MailConfig, Mechanism,
    PasswordHash, RedirectBehavior, SameSite, Secret, SecurityConfig,
};
pub use datastore::{
    Admin, BoxError, Change, ChangeFeed, ChangeSink, DatastoreError, Extensions, Lookup, NewUser,
    OutboxStore, QueuedMail, Role, SeaOrmDatastore, SessionInfo, SessionStore, User, UserDatastore,
    UserDatastoreExt, UserUpdate, entity, migration,
};
pub use fairing::Security;
pub use features::throttle::{Backoff, ThrottleEntry, ThrottleStore};
pub use flask_security_rs_macros::{
    SecurityRole, SecurityUser, anonymous_user_required, auth_required, permissions_accepted,
    permissions_required, roles_accepted, roles_required,
};
pub use guards::{CurrentUser, MaybeUser, Refusal, SessionId, TokenJson, refusal};
pub use http::{Reply, catchers, want_json};
pub use login::{Attempt, AuthnMethod, LoginHook, SecondFactor, Verdict};
pub use mail::{ConsoleMailer, Email, MailError, Mailer, SmtpMailer};
pub use messages::{Catalogue, Category, Message, Msg};
pub use sea_orm;
pub use serde_json;
pub use sms::{
    CapturingSmsSender, ConsoleSmsSender, SentSms, SmsError, SmsSender, normalize_phone,
};
pub use state::{FailureHandler, TokenExpiry};

/// Paths the macros' generated code uses. Not API: anything here may change
/// in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::datastore::{ColumnOf, RoleField, SecurityRole, SecurityUser, UserField};
    pub use crate::guards::{AnonymousUserRequired, AuthRequired, NameList};
    pub use crate::guards::{
        PermissionsAccepted, PermissionsRequired, RolesAccepted, RolesRequired,
    };
    pub use serde_json;

    /// Bit of `"token"` in an `AuthRequired` mechanism set.
    pub const TOKEN: u8 = crate::Mechanism::Token.bit();
    /// Bit of `"session"`.
    pub const SESSION: u8 = crate::Mechanism::Session.bit();
    /// Bit of `"basic"`.
    pub const BASIC: u8 = crate::Mechanism::Basic.bit();
}

/// A value for Rocket's `secret_key` derived from Flask's `SECRET_KEY`, so
/// one secret configures both. Its encryption half is the key the library
/// seals the `session` cookie with, so cookies Rocket sealed under it open.
pub fn derive_cookie_key(secret_key: &str) -> String {
    use base64::Engine;
    tokens::cookie_key_material(secret_key.as_bytes())
        .map(|m| base64::engine::general_purpose::STANDARD.encode(m))
        .unwrap_or_default()
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
    let (path, query) = path.split_once('?').unwrap_or((&path, ""));
    if path == ":memory:" || path.is_empty() {
        return "sqlite::memory:".into();
    }
    // Options given (`mode=ro`, say) are kept; else the file is created.
    let query = if query.is_empty() { "mode=rwc" } else { query };
    format!("sqlite://{path}?{query}")
}

/// Connection options for `url` (as [`database_url`] reads it) with the
/// settings the library relies on. On SQLite, on every pooled connection (not
/// just the first): write-ahead logging (readers do not wait for writers),
/// `synchronous = NORMAL` (a commit does not wait for the disk, so timing
/// does not tell whether a request wrote, for example a mail to the outbox),
/// a 5 s busy timeout and foreign keys. On both databases, a pool sized for
/// the machine: at most twice the cores plus one connections (the identity
/// cache keeps authenticated requests off the database, so the pool serves
/// sign-ins and writes), waiting at most 5 s for one. SQL logging is off.
///
/// ```
/// # async fn open() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect(flask_security_rs::connect_options("app.db")).await?;
/// # let _ = db; Ok(()) }
/// ```
pub fn connect_options(url: &str) -> sea_orm::ConnectOptions {
    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
    let mut o = sea_orm::ConnectOptions::new(database_url(url));
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    let cores = u32::try_from(cores).unwrap_or(u32::MAX);
    o.sqlx_logging(false)
        .max_connections(cores.saturating_mul(2).saturating_add(1))
        .min_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(5));
    o.map_sqlx_sqlite_opts(|opts| {
        opts.journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(5))
            .foreign_keys(true)
    });
    o
}

/// The kernel configuration in force on a Rocket with the `Security` fairing.
pub fn config_of<P: rocket::Phase>(rocket: &rocket::Rocket<P>) -> Option<&SecurityConfig> {
    rocket.state::<state::SecurityState>().map(|s| &s.config)
}
