//! Flask-Security's quickstart ("Basic SQLAlchemy Application with session")
//! with the customisations: extra user columns in the JSON payload, seeded
//! roles and admin, a profile template, role/permission/token routes, a
//! custom 403 body, per-role token expiry and an extra login form field.

pub mod model;

use std::sync::{Arc, Mutex};

use flask_security_rs::entity::role;
use flask_security_rs::{
    Admin, Attempt, Clock, ConsoleMailer, CurrentUser, DatastoreError, LoginHook, NewUser, Reply,
    SeaOrmDatastore, Security, User, UserDatastoreExt, auth_required, permissions_required,
    roles_required,
};
use rocket::figment::providers::Serialized;
use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{Build, Rocket, get, routes};
use rocket_dyn_templates::{Template, context};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, DbErr};
use serde_json::{Value, json};

/// Example values only: set `SECRET_KEY` / `SECURITY_PASSWORD_SALT` in production.
const SECRET_KEY: &str = "pf9Wkove4IKEAXvy-cQkeDPhv9Cb3Ag-wyJILbq_dFw";
const PASSWORD_SALT: &str = "146585145368132386173505678016728509634";

/// The seeded roles and their permissions.
pub const ROLES: &[(&str, &[&str])] = &[
    (
        "admin",
        &["admin-read", "admin-write", "user-read", "user-write"],
    ),
    ("user", &["user-read", "user-write"]),
];

/// The `nickname` login field of every sign-in, as the login hook saw it.
#[derive(Clone, Default)]
pub struct Nicknames(pub Arc<Mutex<Vec<String>>>);

#[rocket::async_trait]
impl LoginHook for Nicknames {
    async fn signed_in(&self, attempt: &Attempt<'_>, _user: &User) {
        if let (Some(nick), Ok(mut seen)) = (attempt.field("nickname"), self.0.lock()) {
            seen.push(nick);
        }
    }
}

#[auth_required]
#[get("/")]
fn home(user: CurrentUser) -> Template {
    let name = user.security_payload().get("first_name").cloned();
    Template::render(
        "index",
        context! { email: &user.email, name, login_url: "/login" },
    )
}

#[roles_required("admin")]
#[get("/admin")]
fn admin(user: CurrentUser) -> String {
    format!("Hello admin {}!", user.email)
}

#[permissions_required("user-read")]
#[get("/user-data")]
fn user_data(user: CurrentUser) -> String {
    format!("Hello {} you are a user!", user.email)
}

#[auth_required("token", "session")]
#[get("/api/data")]
fn api_data(user: CurrentUser) -> Json<Value> {
    Json(json!({"message": "API data", "user": user.email}))
}

#[auth_required("token")]
#[get("/api/protected")]
fn api_protected(user: CurrentUser) -> Json<Value> {
    Json(json!({"message": "Token authenticated", "user": user.email}))
}

/// Roles, and the admin user (admin@me.com / "password") when missing.
async fn seed(admin: Admin, db: sea_orm::DatabaseConnection) -> Result<(), DatastoreError> {
    for (name, perms) in ROLES {
        admin.datastore().find_or_create_role(name, perms).await?;
    }
    if admin.find_user("admin@me.com").await?.is_none() {
        let new = NewUser::new("admin@me.com").roles(["admin"]);
        let user = admin.create_user(new, "password").await?;
        let name = model::ActiveModel {
            id: Set(user.id as i32),
            first_name: Set(Some("Admin".into())),
            ..Default::default()
        };
        name.update(&db)
            .await
            .map_err(|e| DatastoreError::Backend(e.into()))?;
    }
    Ok(())
}

/// The app on the SQLite file (or URL) `db_url`, telling time by `clock`.
pub async fn build(db_url: &str, clock: Clock) -> Result<Rocket<Build>, DbErr> {
    let db = Database::connect(flask_security_rs::connect_options(db_url)).await?;
    flask_security_rs::migration::create_tables::<model::Entity>(&db).await?;
    let env = |k: &str, default: &str| std::env::var(k).unwrap_or_else(|_| default.into());
    let secret_key = env("SECRET_KEY", SECRET_KEY);
    let config = json!({
        "secret_key": flask_security_rs::derive_cookie_key(&secret_key),
        "template_dir": concat!(env!("CARGO_MANIFEST_DIR"), "/templates"),
        "security": {
            "secret_key": secret_key,
            "password_salt": env("SECURITY_PASSWORD_SALT", PASSWORD_SALT),
            "token_max_age": 0, // no global limit: token_expiry decides
        },
    });
    let figment = rocket::Config::figment().merge(Serialized::defaults(config));
    let nicknames = Nicknames::default();
    let store = SeaOrmDatastore::<model::Model, role::Model>::new(db.clone());
    let security = Security::new(store)
        .mailer(ConsoleMailer)
        .clock(clock)
        .seed(move |admin| seed(admin, db.clone()))
        .token_expiry(|user, now| {
            let hours = if user.has_role("admin") { 24 } else { 1 };
            now + hours * 3600
        })
        .unauthz_handler(|_| {
            Reply::custom(
                Status::Forbidden,
                json!({"status": 403, "msgs": ["Not permitted"]}),
            )
        })
        .login_hook(nicknames.clone());
    Ok(rocket::custom(figment)
        .manage(nicknames)
        .attach(security)
        .attach(Template::fairing())
        .mount(
            "/",
            routes![home, admin, user_data, api_data, api_protected],
        ))
}
