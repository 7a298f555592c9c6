//! Flask-Security's quickstart, on Rocket with `flask_security_rs`.
//!
//! Roles `admin` and `user`, three seeded users, and the routes of the
//! conformance contract (`/`, `/admin`, `/user-data`, `/api/data`,
//! `/api/protected`), protected the way the Flask decorators protect them.

pub mod model;

use flask_security_rs::entity::role;
use flask_security_rs::sea_orm::{Database, DatabaseConnection, DbErr};
use flask_security_rs::{
    Admin, ConsoleMailer, CurrentUser, DatastoreError, Mailer, NewUser, SeaOrmDatastore, Security,
    SmtpMailer, UserDatastoreExt, auth_required, permissions_required, roles_required,
};
use rocket::figment::Figment;
use rocket::response::content::RawHtml;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, post, routes};
use serde_json::{Value, json};
use std::sync::Arc;

/// The seeded roles and their permissions.
pub const SEED_ROLES: &[(&str, &[&str])] = &[
    (
        "admin",
        &["admin-read", "admin-write", "user-read", "user-write"],
    ),
    ("user", &["user-read", "user-write"]),
];

/// The seeded users: email, username, password, role, active.
pub const SEED_USERS: &[(&str, &str, &str, &str, bool)] = &[
    ("admin@example.com", "admin", "admin123", "admin", true),
    ("user@example.com", "user", "user123", "user", true),
    (
        "disabled@example.com",
        "disabled",
        "disabled123",
        "user",
        false,
    ),
];

/// Defaults shared with the conformance reference app.
pub const DEFAULT_SECRET_KEY: &str = "conformance-secret-key-not-for-production";
/// Default HMAC salt of the password hash.
pub const DEFAULT_PASSWORD_SALT: &str = "conformance-password-salt";

#[auth_required]
#[get("/")]
fn home(user: CurrentUser) -> RawHtml<String> {
    RawHtml(format!("Hello {}!", user.email))
}

#[auth_required]
#[roles_required("admin")]
#[get("/admin")]
fn admin(user: CurrentUser) -> RawHtml<String> {
    RawHtml(format!("Hello admin {}!", user.email))
}

#[auth_required]
#[permissions_required("user-read")]
#[get("/user-data")]
fn user_data(user: CurrentUser) -> RawHtml<String> {
    RawHtml(format!("User data for {}", user.email))
}

#[auth_required("token", "session")]
#[get("/api/data")]
fn api_data(user: CurrentUser) -> Json<Value> {
    Json(json!({"message": "API data", "user": user.email}))
}

#[auth_required("token", "session")]
#[post("/api/data")]
fn api_data_post(user: CurrentUser) -> Json<Value> {
    Json(json!({"message": "API data", "user": user.email}))
}

#[auth_required("token")]
#[get("/api/protected")]
fn api_protected(user: CurrentUser) -> Json<Value> {
    let permissions: Vec<String> = user.permissions().into_iter().collect();
    Json(json!({"message": "Token authenticated", "user_id": user.id, "permissions": permissions}))
}

/// Settings of one quickstart instance.
#[derive(Clone)]
pub struct Options {
    /// `DATABASE_URL`: SQLite path/URL or PostgreSQL URL.
    pub database_url: String,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Flask `SECRET_KEY`.
    pub secret_key: String,
    /// `SECURITY_PASSWORD_SALT`.
    pub password_salt: String,
    /// `FS_GENERIC_RESPONSES=1`.
    pub generic_responses: bool,
    /// Cheap argon2 parameters (tests).
    pub fast_hash: bool,
    /// SPA redirects for email links (`FS_SPA=0`: server-rendered pages instead).
    pub spa: bool,
    /// `TRUSTED_HOSTS` (comma-separated `host[:port]`): the hosts the library
    /// answers and builds mailed links for; unset means any host.
    pub trusted_hosts: Option<Vec<String>>,
    /// `FS_LOCKOUT_ATTEMPTS=N`: the attempt after N consecutive failed
    /// authentications on one account gets 429, from any client address
    /// (`security.throttle_free_attempts`); unset: the library's default.
    pub lockout_attempts: Option<u32>,
    /// `SECURITY_TOTP_SECRETS` (JSON `{tag: secret}`): encrypt the stored
    /// TOTP keys.
    pub totp_secrets: std::collections::BTreeMap<String, String>,
    /// Sends SMS codes (tests capture them); none: the console.
    pub sms: Option<flask_security_rs::sms::CapturingSmsSender>,
    /// More configuration merged last (e.g. `security.password_complexity_checker`).
    pub extra: Option<Figment>,
    /// Time source.
    pub clock: flask_security_rs::Clock,
}

impl Options {
    /// The settings the environment gives (see README).
    pub fn from_env() -> Self {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let mailer: Arc<dyn Mailer> = match env("SMTP_HOST") {
            Some(host) => {
                let port = env("SMTP_PORT").and_then(|p| p.parse().ok()).unwrap_or(25);
                Arc::new(SmtpMailer::plain(&host, port))
            }
            None => Arc::new(ConsoleMailer),
        };
        Options {
            database_url: env("DATABASE_URL").unwrap_or_else(|| "quickstart.db".into()),
            mailer,
            secret_key: env("SECRET_KEY").unwrap_or_else(|| DEFAULT_SECRET_KEY.into()),
            password_salt: env("SECURITY_PASSWORD_SALT")
                .unwrap_or_else(|| DEFAULT_PASSWORD_SALT.into()),
            generic_responses: env("FS_GENERIC_RESPONSES").as_deref() == Some("1"),
            fast_hash: env("FS_FAST_HASH").as_deref() == Some("1"),
            spa: env("FS_SPA").as_deref() != Some("0"),
            trusted_hosts: env("TRUSTED_HOSTS").map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(String::from)
                    .collect()
            }),
            lockout_attempts: env("FS_LOCKOUT_ATTEMPTS").and_then(|v| match v.trim().parse() {
                Ok(n) => Some(n),
                Err(_) => {
                    eprintln!("FS_LOCKOUT_ATTEMPTS={v:?} is not a number: ignored");
                    None
                }
            }),
            totp_secrets: match env("SECURITY_TOTP_SECRETS") {
                Some(v) => match serde_json::from_str(&v) {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!(
                            "SECURITY_TOTP_SECRETS is not a JSON object of strings ({e}): the default is used"
                        );
                        default_totp_secrets()
                    }
                },
                None => default_totp_secrets(),
            },
            sms: None,
            extra: None,
            clock: flask_security_rs::Clock::new(),
        }
    }
}

/// `{"1": "conformance-totp-secret-1"}`, as the conformance contract says.
pub fn default_totp_secrets() -> std::collections::BTreeMap<String, String> {
    [("1".to_string(), "conformance-totp-secret-1".to_string())].into()
}

/// Opens the database, creates missing tables and seeds missing roles/users.
pub async fn open_database(opts: &Options) -> Result<DatabaseConnection, DbErr> {
    // WAL, a busy timeout and foreign keys on every pooled connection.
    let db = Database::connect(flask_security_rs::connect_options(&opts.database_url)).await?;
    // The library's tables, plus the model's own columns (first_name, last_name).
    flask_security_rs::migration::create_tables::<model::Entity>(&db).await?;
    Ok(db)
}

type Store = SeaOrmDatastore<model::Model, role::Model>;

/// Creates the seeded roles and users that are missing.
pub async fn seed(admin: Admin) -> Result<(), DatastoreError> {
    for (name, perms) in SEED_ROLES {
        admin.datastore().find_or_create_role(name, perms).await?;
    }
    for (email, username, password, role, active) in SEED_USERS {
        if admin.find_user(email).await?.is_none() {
            let new = NewUser::new(*email)
                .username(*username)
                .active(*active)
                .roles([*role]);
            admin.create_user(new, password).await?;
        }
    }
    Ok(())
}

/// The Flask-Security configuration the conformance contract asks for.
pub fn security_figment(opts: &Options) -> Figment {
    let mut fig = rocket::Config::figment()
        .merge((
            "secret_key",
            flask_security_rs::derive_cookie_key(&opts.secret_key),
        ))
        .merge(("security.secret_key", opts.secret_key.clone()))
        .merge(("security.password_salt", opts.password_salt.clone()))
        .merge(("security.password_length_min", 6))
        .merge(("security.token_authentication_header", "X-Auth-Token"))
        .merge(("security.registerable", true))
        .merge(("security.confirmable", true))
        .merge(("security.trackable", true))
        .merge(("security.username_enable", true))
        .merge(("security.email_sender", "no-reply@example.com"))
        .merge(("security.recoverable", true))
        .merge(("security.changeable", true))
        .merge(("security.change_email", true))
        .merge(("security.change_username", true))
        .merge(("security.username_recovery", true))
        .merge(("security.return_generic_responses", opts.generic_responses))
        .merge(("security.csrf_protect_mechanisms", ["session", "basic"]))
        .merge(("security.csrf_ignore_unauth_endpoints", true))
        .merge(("security.csrf_cookie_name", "XSRF-TOKEN"))
        .merge(("security.csrf_time_limit", Option::<i64>::None))
        .merge(("security.session_cookie_samesite", "Strict"))
        .merge(("security.two_factor", true))
        .merge((
            "security.two_factor_enabled_methods",
            ["email", "authenticator"],
        ))
        .merge(("security.totp_issuer", "FS Conformance"))
        .merge(("security.totp_secrets", opts.totp_secrets.clone()))
        .merge(("security.multi_factor_recovery_codes", true))
        .merge(("security.unified_signin", true))
        .merge(("security.us_enabled_methods", ["email", "authenticator"]));
    if opts.spa {
        fig = fig
            .merge(("security.flash_messages", false))
            .merge(("security.redirect_behavior", "spa"))
            .merge(("security.post_confirm_view", "/confirmed"))
            .merge(("security.confirm_error_view", "/confirm-error"))
            .merge(("security.reset_view", "/reset-password"))
            .merge(("security.reset_error_view", "/reset-password-error"))
            .merge(("security.login_error_view", "/login-error"))
            .merge(("security.post_change_email_view", "/change-email-confirmed"))
            .merge(("security.change_email_error_view", "/change-email-error"));
    }
    if let Some(hosts) = &opts.trusted_hosts {
        fig = fig.merge(("security.trusted_hosts", hosts.clone()));
    }
    if let Some(n) = opts.lockout_attempts {
        fig = fig
            .merge(("security.throttle_enabled", true))
            .merge(("security.throttle_free_attempts", n));
    }
    if let Some(extra) = &opts.extra {
        // Merging a figment adopts its profile: keep this one's.
        let profile = fig.profile().clone();
        fig = fig.merge(extra.clone()).select(profile);
    }
    if opts.fast_hash {
        fig = fig
            .merge((
                "security.password_hash_passlib_options.argon2__memory_cost",
                1024,
            ))
            .merge(("security.password_hash_passlib_options.argon2__rounds", 1))
            .merge((
                "security.password_hash_passlib_options.argon2__parallelism",
                1,
            ));
    }
    fig
}

/// The whole app on an opened database.
pub async fn build(opts: Options) -> Result<Rocket<Build>, String> {
    let db = open_database(&opts)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let security = Security::new(Store::new(db.clone()))
        .shared_mailer(opts.mailer.clone())
        .clock(opts.clock.clone())
        .seed(seed);
    let security = match opts.sms.clone() {
        Some(sms) => security.sms_sender(sms),
        None => security.sms_sender(flask_security_rs::sms::ConsoleSmsSender::new()),
    };
    Ok(rocket::custom(security_figment(&opts))
        .manage(db)
        .attach(security)
        .mount(
            "/",
            routes![
                home,
                admin,
                user_data,
                api_data,
                api_data_post,
                api_protected
            ],
        ))
}
