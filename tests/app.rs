//! The app the integration tests drive: the routes and configuration of the
//! conformance contract (`/`, `/admin`, `/user-data`, `/api/data`,
//! `/api/protected`, plus `/api/basic` for HTTP basic), on the library's reference entities, built here rather
//! than borrowed from an example.

use std::sync::Arc;

use flask_security_rs::entity::{role, user};
use flask_security_rs::sea_orm::{Database, DatabaseConnection, DbErr};
use flask_security_rs::{
    Admin, Clock, CurrentUser, DatastoreError, LoginHook, Mailer, NewUser, SeaOrmDatastore,
    Security, SessionId, TokenJson, UserDatastoreExt, auth_required, permissions_required,
    roles_required,
};
use rocket::figment::Figment;
use rocket::response::content::RawHtml;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, post, routes};
use serde_json::{Value, json};

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

#[auth_required("basic")]
#[get("/api/basic")]
fn api_basic(user: CurrentUser) -> Json<Value> {
    Json(json!({"user": user.email}))
}

/// A JSON body whose `auth_token` may sit anywhere in it.
#[post("/api/echo", data = "<body>")]
fn api_echo(body: TokenJson<Value>) -> Json<Value> {
    Json(json!({"user": body.user.email, "note": body.body["note"]}))
}

/// "Your devices": the caller's sessions, the current one marked.
#[auth_required("session")]
#[get("/api/sessions")]
async fn my_sessions(
    user: CurrentUser,
    this: SessionId,
    admin: Admin,
) -> Result<Json<Value>, rocket::http::Status> {
    let sessions = admin
        .sessions(user.id)
        .await
        .map_err(|_| rocket::http::Status::ServiceUnavailable)?;
    let list: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "current": this.0.as_deref() == Some(s.id.as_str()),
                "user_agent": s.user_agent,
                "remembered": s.remember_until.is_some(),
            })
        })
        .collect();
    Ok(Json(json!({ "sessions": list })))
}

/// Signs the caller out everywhere else.
#[auth_required("session")]
#[post("/api/sessions/revoke-others")]
async fn revoke_others(
    user: CurrentUser,
    this: SessionId,
    admin: Admin,
) -> Result<Json<Value>, rocket::http::Status> {
    let n = admin
        .revoke_sessions(user.id, this.0.as_deref())
        .await
        .map_err(|_| rocket::http::Status::ServiceUnavailable)?;
    Ok(Json(json!({ "revoked": n })))
}

/// How often a test app looks for writes by other instances (SQLite).
pub const CHANGE_POLL_SECS: f64 = 0.05;

/// Who must use two-factor.
pub type TfRule = Arc<dyn Fn(&flask_security_rs::User) -> bool + Send + Sync>;

/// Settings of one test app.
#[derive(Clone)]
pub struct Options {
    /// SQLite path/URL or PostgreSQL URL.
    pub database_url: String,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Flask `SECRET_KEY`.
    pub secret_key: String,
    /// `SECURITY_PASSWORD_SALT`.
    pub password_salt: String,
    /// `return_generic_responses`.
    pub generic_responses: bool,
    /// Cheap argon2 parameters.
    pub fast_hash: bool,
    /// SPA redirects for email links (else server-rendered pages).
    pub spa: bool,
    /// More configuration merged last.
    pub extra: Option<Figment>,
    /// Time source.
    pub clock: Clock,
    /// Login pipeline hooks.
    pub login_hooks: Vec<Arc<dyn LoginHook>>,
    /// Where SMS codes go.
    pub sms: Option<flask_security_rs::sms::CapturingSmsSender>,
    /// Who must use two-factor (`Security::two_factor_required_if`).
    pub tf_rule: Option<TfRule>,
    /// Create missing tables first (off for an instance on a read-only
    /// database).
    pub migrate: bool,
    /// The outbox queue (tests sharing one PostgreSQL database each use
    /// their own, so each app delivers its own mails to its own sink).
    pub outbox_queue: String,
}

/// Opens the database and creates missing tables.
pub async fn open_database(url: &str) -> Result<DatabaseConnection, DbErr> {
    open_database_with(url, true).await
}

/// Opens the database, creating missing tables when `migrate`.
pub async fn open_database_with(url: &str, migrate: bool) -> Result<DatabaseConnection, DbErr> {
    let db = Database::connect(flask_security_rs::connect_options(url)).await?;
    if migrate {
        flask_security_rs::migration::create_tables::<user::Entity>(&db).await?;
    }
    Ok(db)
}

/// Roles `admin` and `user` and the [`SEED_USERS`] that are missing.
pub async fn seed(admin: Admin) -> Result<(), DatastoreError> {
    let ds = admin.datastore();
    ds.find_or_create_role(
        "admin",
        &["admin-read", "admin-write", "user-read", "user-write"],
    )
    .await?;
    ds.find_or_create_role("user", &["user-read", "user-write"])
        .await?;
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

/// The Flask-Security configuration of the conformance contract.
pub fn figment(opts: &Options) -> Figment {
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
        // The seeded accounts are shared by every test on one PostgreSQL
        // database: their failures must not add up to a lockout. The
        // throttling tests turn it on, on accounts of their own.
        .merge(("security.throttle_enabled", false))
        // Instances on one SQLite file hear of each other's writes this often.
        .merge(("security.identity_cache_poll_interval", CHANGE_POLL_SECS));
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
    if let Some(extra) = &opts.extra {
        // Merging a figment adopts its profile: keep this one's.
        let profile = fig.profile().clone();
        fig = fig.merge(extra.clone()).select(profile);
    }
    if opts.fast_hash {
        let o = "security.password_hash_passlib_options";
        fig = fig
            .merge((format!("{o}.argon2__memory_cost"), 1024))
            .merge((format!("{o}.argon2__rounds"), 1))
            .merge((format!("{o}.argon2__parallelism"), 1));
    }
    fig
}

/// The whole test app.
pub async fn build(opts: Options) -> Result<Rocket<Build>, String> {
    let db = open_database_with(&opts.database_url, opts.migrate)
        .await
        .map_err(|e| format!("database: {e}"))?;
    let datastore = SeaOrmDatastore::<user::Model, role::Model>::new(db.clone())
        .with_outbox_queue(opts.outbox_queue.clone());
    let mut security = Security::new(datastore)
        .shared_mailer(opts.mailer.clone())
        .clock(opts.clock.clone())
        .seed(seed);
    for hook in &opts.login_hooks {
        security = security.login_hook(hook.clone());
    }
    if let Some(sms) = &opts.sms {
        security = security.sms_sender(sms.clone());
    }
    if let Some(rule) = &opts.tf_rule {
        let rule = rule.clone();
        security = security.two_factor_required_if(move |u| rule(u));
    }
    Ok(rocket::custom(figment(&opts))
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
                api_protected,
                api_basic,
                my_sessions,
                revoke_others,
                api_echo
            ],
        ))
}
