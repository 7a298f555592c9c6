//! The login pipeline's hooks (throttling, second factor, events), checked
//! configuration, message overrides and the Flask cookie/session keys.

use std::sync::{Arc, Mutex};

use flask_security_rs::entity::{role, user};
use flask_security_rs::{
    Attempt, AuthnMethod, Category, LoginHook, Message, Reply, SeaOrmDatastore, SecondFactor,
    Security, User, Verdict,
};
use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

/// Refuses an identity after three failures; a second factor for the admin;
/// records every sign-in with its method and `nickname` field.
#[derive(Default)]
struct Recorder {
    failures: Mutex<Vec<(String, AuthnMethod)>>,
    signed_in: Mutex<Vec<(String, AuthnMethod, Option<String>)>>,
}

#[rocket::async_trait]
impl LoginHook for Recorder {
    async fn allow(&self, attempt: &Attempt<'_>, _user: Option<&User>) -> Verdict {
        let who = attempt.given_identity().unwrap_or_default().to_string();
        let n = self
            .failures
            .lock()
            .unwrap()
            .iter()
            .filter(|(w, _)| *w == who)
            .count();
        if n >= 3 {
            return Verdict::Refuse(Message::text("Too many attempts", Category::Error));
        }
        Verdict::Allow
    }

    async fn failed(&self, attempt: &Attempt<'_>, _user: Option<&User>) {
        let who = attempt.given_identity().unwrap_or_default().to_string();
        self.failures.lock().unwrap().push((who, attempt.method()));
    }

    async fn second_factor(&self, _attempt: &Attempt<'_>, user: &User) -> SecondFactor {
        if user.email == ADMIN.0 {
            let body = json!({"tf_required": true}).as_object().cloned().unwrap();
            return SecondFactor::Required(Reply::ok(body));
        }
        SecondFactor::NotRequired
    }

    async fn signed_in(&self, attempt: &Attempt<'_>, user: &User) {
        let nick = attempt.field("nickname");
        self.signed_in
            .lock()
            .unwrap()
            .push((user.email.clone(), attempt.method(), nick));
    }
}

async fn app_with_hook() -> (App, Arc<Recorder>) {
    let mut s = setup().await;
    let rec = Arc::new(Recorder::default());
    s.opts.login_hooks.push(rec.clone());
    (app_with(s, |r| r).await, rec)
}

#[rocket::async_test]
async fn throttling_hook_sees_failures_and_refuses_before_the_password() {
    let (app, rec) = app_with_hook().await;
    for _ in 0..3 {
        let (s, b) = app.login(USER.0, "wrong-password").await;
        assert_eq!(s, Status::BadRequest);
        assert_eq!(b, field_error("password", "Invalid password"));
    }
    // The right password no longer helps: the hook refuses first.
    let (s, b) = app.login(USER.0, USER.1).await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(b["errors"], json!(["Too many attempts"]));
    assert!(rec.signed_in.lock().unwrap().is_empty());
    // HTTP basic goes through the same step.
    use base64::Engine as _;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", DISABLED.0));
    let r = app
        .client
        .get("/api/basic")
        .header(Header::new("Accept", "application/json"))
        .header(Header::new("Authorization", format!("Basic {creds}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
    let failures = rec.failures.lock().unwrap().clone();
    assert_eq!(failures.len(), 4, "{failures:?}");
    assert!(failures.contains(&(DISABLED.0.to_string(), AuthnMethod::Basic)));
}

#[rocket::async_test]
async fn second_factor_hook_holds_back_the_session() {
    let (app, rec) = app_with_hook().await;
    let (s, b) = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b, json!({"tf_required": true}));
    // No session was issued.
    let (s, _) = app.get_json("/change").await;
    assert_eq!(s, Status::Unauthorized);
    assert!(rec.signed_in.lock().unwrap().is_empty());
}

#[rocket::async_test]
async fn signed_in_event_reads_extra_login_fields() {
    let (app, rec) = app_with_hook().await;
    let (s, b) = app
        .post_json(
            "/login",
            json!({"email": USER.0, "password": USER.1, "nickname": "ace"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["tf_required"], json!(false));
    let seen = rec.signed_in.lock().unwrap().clone();
    assert_eq!(
        seen,
        [(
            USER.0.to_string(),
            AuthnMethod::Password,
            Some("ace".to_string())
        )]
    );
}

#[rocket::async_test]
async fn message_overrides_reach_the_wire() {
    let mut s = setup().await;
    s.opts.extra = Some(
        rocket::figment::Figment::new()
            .merge(("security.msg_invalid_password", "Nope, %(x)s stays"))
            .merge(("security.msg_user_does_not_exist", ["Who?", "info"])),
    );
    let app = app_with(s, |r| r).await;
    let (_, b) = app.login(USER.0, "wrong-password").await;
    assert_eq!(b, field_error("password", "Nope, %(x)s stays"));
    let (_, b) = app.login("nobody@example.com", "whatever").await;
    assert_eq!(b, field_error("email", "Who?"));
}

async fn ignite_with(key: &str, value: impl serde::Serialize) -> Result<(), String> {
    let url = flask_security_rs::database_url(&database_url());
    let db = flask_security_rs::sea_orm::Database::connect(url)
        .await
        .expect("db");
    let fig = rocket::Config::figment()
        .merge(("security.secret_key", "k"))
        .merge(("security.password_salt", "s"))
        .merge((format!("security.{key}"), value));
    rocket::custom(fig)
        .attach(Security::new(
            SeaOrmDatastore::<user::Model, role::Model>::new(db),
        ))
        .ignite()
        .await
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
}

#[rocket::async_test]
async fn unknown_and_bad_keys_stop_launch() {
    assert!(ignite_with("token_max_agee", 5).await.is_err(), "typo");
    assert!(ignite_with("token_max_age", 5).await.is_ok());
    // Keys of a feature's section and message keys are known.
    assert!(ignite_with("reset_password_within", 60).await.is_ok());
    assert!(ignite_with("msg_invalid_password", "x").await.is_ok());
    assert!(ignite_with("msg_no_such_message", "x").await.is_err());
    // Values are checked too.
    assert!(ignite_with("zxcvbn_minimum_score", 9).await.is_err());
    assert!(ignite_with("redirect_behavior", "spaa").await.is_err());
    assert!(ignite_with("session_cookie_samesite", "lax").await.is_ok());
    assert!(
        ignite_with("reset_password_within", -1).await.is_ok(),
        "recoverable is off"
    );
    assert!(ignite_with("email_sender", "not an address").await.is_err());
}

fn set_cookie<'a>(headers: &'a [String], name: &str) -> Option<&'a String> {
    headers.iter().find(|h| h.starts_with(&format!("{name}=")))
}

#[rocket::async_test]
async fn flask_cookie_keys_shape_the_cookies() {
    let mut s = setup().await;
    s.opts.extra = Some(
        rocket::figment::Figment::new()
            .merge(("security.session_cookie_httponly", false))
            .merge(("security.remember_cookie_samesite", "Lax"))
            .merge(("security.remember_cookie_secure", true))
            .merge(("security.remember_cookie_httponly", false)),
    );
    let app = app_with(s, |r| r).await;
    let token = {
        let r = app
            .client
            .get("/login")
            .header(ContentType::JSON)
            .dispatch()
            .await;
        let (_, b) = json_of(r).await;
        b["csrf_token"].as_str().unwrap().to_string()
    };
    let r = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .header(Header::new("X-XSRF-Token", token))
        .body(json!({"email": USER.0, "password": USER.1, "remember": true}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let cookies: Vec<String> = r.headers().get("Set-Cookie").map(String::from).collect();
    let session = set_cookie(&cookies, "session").expect("session cookie");
    assert!(!session.contains("HttpOnly"), "{session}");
    let remember = set_cookie(&cookies, "remember_token").expect("remember cookie");
    assert!(remember.contains("SameSite=Lax"), "{remember}");
    assert!(remember.contains("Secure"), "{remember}");
    assert!(!remember.contains("HttpOnly"), "{remember}");
}

#[rocket::async_test]
async fn session_older_than_its_lifetime_is_ignored() {
    let mut s = setup().await;
    s.opts.extra =
        Some(rocket::figment::Figment::new().merge(("security.permanent_session_lifetime", 600)));
    let app = app_with(s, |r| r).await;
    let (st, _) = app.login(USER.0, USER.1).await;
    assert_eq!(st, Status::Ok);
    let (st, _) = app.get_json("/change").await;
    assert_eq!(st, Status::Ok);
    app.clock.advance(601);
    let (st, _) = app.get_json("/change").await;
    assert_eq!(st, Status::Unauthorized);
}
