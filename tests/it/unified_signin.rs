//! Unified sign-in: setup, codes by mail and authenticator, single use,
//! the magic link, setup expiry, `/us-verify` freshness, and the password
//! passcode with `us_mfa_required`.

use std::sync::Arc;

use flask_security_rs::{Lookup, UserDatastore, UserUpdate};
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use serde_json::{Value, json};

use crate::common::*;

const SUBJECT: &str = "Verification Code";

/// The configuration of these tests (two-factor off unless added).
fn us_config() -> Figment {
    Figment::new()
        .merge(("security.unified_signin", true))
        .merge(("security.us_enabled_methods", ["email", "authenticator"]))
        .merge(("security.totp_issuer", "FS Tests"))
        .merge(("security.totp_secrets", json!({"1": "test-totp-secret"})))
}

async fn us_app(extra: Figment) -> App {
    let mut s = setup().await;
    s.opts.extra = Some(extra);
    app_with(s, |r| r).await
}

/// Another instance on `app`'s database and clock, configured by `extra`.
async fn instance_with(app: &App, extra: Figment) -> App {
    let sink = fs_tests::SmtpSink::start().await;
    let mut opts = app.options.clone();
    opts.mailer = Arc::new(flask_security_rs::SmtpMailer::plain(
        "127.0.0.1",
        sink.port(),
    ));
    opts.outbox_queue = uuid();
    opts.extra = Some(extra);
    app_with(Setup { opts, sink }, |r| r).await
}

impl App {
    /// Sets up the email method for the signed-in `email`.
    async fn us_setup_email(&self, email: &str) {
        self.sink.clear().await;
        let (status, body) = self
            .post_json("/us-setup", json!({"chosen_method": "email"}))
            .await;
        assert_eq!(status, Status::Ok, "{body}");
        let state = body["state"].as_str().expect("state").to_string();
        let code = code_in(&self.mail(email, SUBJECT).await.text);
        let (status, body) = self
            .post_json(&format!("/us-setup/{state}"), json!({"passcode": code}))
            .await;
        assert_eq!(status, Status::Ok, "{body}");
        assert_eq!(body["chosen_method"], "email");
    }

    /// Asks for a sign-in code by mail; returns the mail's text.
    async fn us_send_code(&self, email: &str) -> String {
        self.sink.clear().await;
        let (status, body) = self
            .post_json(
                "/us-signin/send-code",
                json!({"identity": email, "chosen_method": "email"}),
            )
            .await;
        assert_eq!(status, Status::Ok, "{body}");
        assert_eq!(keys(&body), vec!["csrf_token"]);
        self.mail(email, SUBJECT).await.text
    }

    async fn us_signin(&self, identity: &str, passcode: &str) -> (Status, Value) {
        self.post_json(
            "/us-signin",
            json!({"identity": identity, "passcode": passcode}),
        )
        .await
    }

    async fn html(&self, path: &str) -> (Status, String) {
        let r = self
            .client
            .get(path.to_string())
            .header(Header::new("Accept", "text/html"))
            .dispatch()
            .await;
        (r.status(), r.into_string().await.unwrap_or_default())
    }

    async fn signed_in(&self) -> bool {
        self.text("/").await.0 == Status::Ok
    }
}

#[rocket::async_test]
async fn email_setup_then_sign_in_with_the_mailed_code() {
    let app = us_app(us_config()).await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    let (status, body) = app.get_json("/us-setup").await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["active_methods"], json!(["password"]));
    app.us_setup_email(&email).await;
    let (_, body) = app.get_json("/us-setup").await;
    assert_eq!(body["active_methods"], json!(["password", "email"]));
    app.logout().await;

    let text = app.us_send_code(&email).await;
    assert!(text.contains("/us-verify-link?id="), "{text}");
    let code = code_in(&text);
    let (status, body) = app.us_signin(&email, &code).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], json!(false));
    assert_eq!(body["user"], json!({}));
    assert!(app.signed_in().await);

    // A wrong code, and the password (not an enabled method here).
    app.logout().await;
    let bad = if code == "000000" { "111111" } else { "000000" };
    let (status, body) = app.us_signin(&email, bad).await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"passcode": ["Password or code submitted is not valid"]})
    );
    let (status, _) = app.us_signin(&email, &pw).await;
    assert_eq!(status, Status::BadRequest);
    // A code may come as a JSON integer (checked, not an API error).
    let (status, body) = app
        .post_json("/us-signin", json!({"identity": email, "passcode": 123}))
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"passcode": ["Password or code submitted is not valid"]})
    );
    assert!(!app.signed_in().await);
}

#[rocket::async_test]
async fn a_code_signs_in_once_even_concurrently() {
    let app = us_app(us_config()).await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    app.us_setup_email(&email).await;
    app.logout().await;
    let code = code_in(&app.us_send_code(&email).await);

    // Browsers of their own on the same database, racing with one code.
    let mut browsers = Vec::new();
    for _ in 0..4 {
        browsers.push(Arc::new(another_instance(&app).await));
    }
    let tasks: Vec<_> = browsers
        .iter()
        .map(|b| {
            let b = b.clone();
            let (email, code) = (email.clone(), code.clone());
            tokio::spawn(async move { b.us_signin(&email, &code).await.0 })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Status::Ok => ok += 1,
            Status::BadRequest => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1, "exactly one use of the code signs in");

    // Used: not again, and a new code is sent.
    let (status, _) = app.us_signin(&email, &code).await;
    assert_eq!(status, Status::BadRequest);
    let again = code_in(&app.us_send_code(&email).await);
    assert_ne!(again, code, "a used code is not sent again");
    let (status, body) = app.us_signin(&email, &again).await;
    assert_eq!(status, Status::Ok, "{body}");
}

#[rocket::async_test]
async fn authenticator_setup_then_codes_within_the_window() {
    let app = us_app(us_config()).await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    let (status, body) = app
        .post_json("/us-setup", json!({"chosen_method": "authenticator"}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["authr_issuer"], "FS Tests");
    assert_eq!(body["authr_username"], json!(email));
    assert!(
        body["authr_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let b32 = body["authr_b32key"].as_str().expect("key").to_string();
    assert_eq!(body["authr_key"].as_str().unwrap().replace('-', ""), b32);
    let state = body["state"].as_str().expect("state").to_string();
    let now = app.clock.now_secs();
    let (status, body) = app
        .post_json(
            &format!("/us-setup/{state}"),
            json!({"passcode": totp(&b32, now)}),
        )
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["chosen_method"], "authenticator");
    app.logout().await;

    // The setup's code signs in (setting up claims nothing).
    let (status, body) = app.us_signin(&email, &totp(&b32, now)).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], json!(false));
    app.logout().await;

    // us_token_validity = 120: the steps of now-120 ..= now+120 are accepted.
    let now = app.clock.now_secs();
    let first = (now - 120).div_euclid(30);
    let last = (now + 120).div_euclid(30);
    for (step, accepted) in [
        (first - 1, false),
        (last + 1, false),
        (first, true),
        (last, true),
    ] {
        let (status, body) = app.us_signin(&email, &totp(&b32, step * 30)).await;
        let want = if accepted {
            Status::Ok
        } else {
            Status::BadRequest
        };
        assert_eq!(status, want, "step {step} (now {now}): {body}");
        if accepted {
            app.logout().await;
        }
    }

    // A code goes stale as the clock moves on.
    let later = app.clock.now_secs() + 5;
    let code = totp(&b32, later);
    app.clock.advance(5 + 121 + 30);
    let (status, _) = app.us_signin(&email, &code).await;
    assert_eq!(status, Status::BadRequest);
    assert!(!app.signed_in().await);
}

#[rocket::async_test]
async fn the_magic_link_signs_in_once() {
    let app = us_app(us_config()).await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    app.us_setup_email(&email).await;
    app.logout().await;
    let text = app.us_send_code(&email).await;
    let at = text.find("/us-verify-link?").expect("a magic link");
    assert!(text[..at].ends_with("http://localhost"), "absolute: {text}");
    let path = text[at..]
        .split(char::is_whitespace)
        .next()
        .expect("link")
        .to_string();
    let path = path.as_str();
    let r = app.client.get(path.to_string()).dispatch().await;
    assert_eq!(r.status(), Status::Found);
    let (to, q) = location(&r);
    assert_eq!(to, "/");
    assert_eq!(
        q,
        vec![
            ("email".to_string(), email.clone()),
            ("identity".to_string(), email.clone())
        ]
    );
    drop(r);
    assert!(app.signed_in().await);
    app.logout().await;

    let r = app.client.get(path.to_string()).dispatch().await;
    let (to, q) = location(&r);
    assert_eq!(to, "/login-error");
    assert!(
        q.contains(&("error".to_string(), "Invalid code".to_string())),
        "{q:?}"
    );
    drop(r);
    assert!(!app.signed_in().await);

    // Missing parameters.
    let r = app.client.get("/us-verify-link?id=x").dispatch().await;
    let (to, q) = location(&r);
    assert_eq!(to, "/login-error");
    assert_eq!(
        q,
        vec![(
            "error".to_string(),
            "Input not appropriate for requested API".to_string()
        )]
    );
}

#[rocket::async_test]
async fn a_setup_state_expires() {
    let app = us_app(us_config()).await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    app.sink.clear().await;
    let (status, body) = app
        .post_json("/us-setup", json!({"chosen_method": "email"}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    let state = body["state"].as_str().expect("state").to_string();
    let code = code_in(&app.mail(&email, SUBJECT).await.text);
    app.clock.advance(30 * 60 + 1);
    let (status, body) = app
        .post_json(&format!("/us-setup/{state}"), json!({"passcode": code}))
        .await;
    assert_eq!(status, Status::BadRequest, "{body}");
    assert_eq!(
        body["field_errors"][""],
        json!(["Setup must be completed within 30 minutes. Please start over."])
    );
    // An unknown state.
    let (status, body) = app
        .post_json("/us-setup/nonsense", json!({"passcode": code}))
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"][""],
        json!(["Input not appropriate for requested API"])
    );
}

#[rocket::async_test]
async fn us_verify_marks_the_session_fresh() {
    let app = us_app(
        us_config()
            .merge(("security.freshness", 300))
            .merge(("security.freshness_grace_period", 0)),
    )
    .await;
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    app.us_setup_email(&email).await;
    app.clock.advance(301);
    let (status, body) = app.get_json("/us-setup").await;
    assert_eq!(status, Status::Unauthorized, "{body}");
    assert_eq!(body["reauth_required"], json!(true));
    assert_eq!(body["unified_signin_enabled"], json!(true));

    let (status, body) = app.get_json("/us-verify").await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["code_methods"], json!(["email"]));
    app.sink.clear().await;
    let (status, body) = app
        .post_json("/us-verify/send-code", json!({"chosen_method": "email"}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    let text = app.mail(&email, SUBJECT).await.text;
    assert!(!text.contains("/us-verify-link"), "no magic link: {text}");
    let code = code_in(&text);
    let (status, _) = app
        .post_json("/us-verify", json!({"passcode": "000000x"}))
        .await;
    assert_eq!(status, Status::BadRequest);
    let (status, body) = app.post_json("/us-verify", json!({"passcode": code})).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["user"], json!({}));
    let (status, body) = app.get_json("/us-setup").await;
    assert_eq!(status, Status::Ok, "fresh again: {body}");
}

#[rocket::async_test]
async fn password_passcode_and_us_mfa_required() {
    let with_password = || {
        us_config().merge((
            "security.us_enabled_methods",
            ["password", "email", "authenticator"],
        ))
    };
    let app = us_app(with_password()).await;
    let (email, pw) = app.confirmed_user().await;
    let (status, body) = app.us_signin(&email, &pw).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], json!(false));
    assert!(app.signed_in().await);
    app.us_setup_email(&email).await;
    app.logout().await;

    // Two-factor required for everyone; only the password needs it here.
    let tf = instance_with(
        &app,
        with_password()
            .merge(("security.two_factor", true))
            .merge(("security.two_factor_required", true))
            .merge(("security.two_factor_enabled_methods", ["email"]))
            .merge(("security.us_mfa_required", ["password"])),
    )
    .await;
    let (status, body) = tf.us_signin(&email, &pw).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], json!(true), "{body}");
    assert_eq!(body["tf_state"], "setup_from_login");
    assert!(!tf.signed_in().await);

    tf.sink.clear().await;
    let (status, _) = tf
        .post_json(
            "/us-signin/send-code",
            json!({"identity": email, "chosen_method": "email"}),
        )
        .await;
    assert_eq!(status, Status::Ok);
    let code = code_in(&tf.mail(&email, SUBJECT).await.text);
    let (status, body) = tf.us_signin(&email, &code).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], json!(false));
    assert!(tf.signed_in().await);
}

#[rocket::async_test]
async fn find_user_by_us_phone() {
    let app = us_app(us_config()).await;
    let (email, _) = app.confirmed_user().await;
    let admin = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds: &dyn UserDatastore = admin.datastore();
    let user = ds
        .find_user(Lookup::Email(&email))
        .await
        .expect("db")
        .expect("user");
    let phone = format!("+1650555{:04}", rand::random::<u16>() % 10_000);
    assert!(
        ds.find_user(Lookup::UsPhone(&phone))
            .await
            .expect("db")
            .is_none()
    );
    let update = UserUpdate::new().us_phone_number(Some(phone.clone()));
    assert!(ds.update_user(user.id, update).await.expect("update"));
    let found = ds
        .find_user(Lookup::UsPhone(&phone))
        .await
        .expect("db")
        .expect("found by phone");
    assert_eq!(found.id, user.id);
    assert_eq!(found.us_phone_number.as_deref(), Some(phone.as_str()));
    assert!(
        ds.find_user(Lookup::UsPhone("+10000000000"))
            .await
            .expect("db")
            .is_none()
    );
    assert!(
        ds.find_user(Lookup::UsPhone("+1\0"))
            .await
            .expect("db")
            .is_none()
    );
}

#[rocket::async_test]
async fn get_us_signin_describes_the_methods() {
    let app = us_app(us_config()).await;
    let r = app
        .client
        .get("/us-signin")
        .header(ContentType::JSON)
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    let (status, body) = json_of(r).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["available_methods"], json!(["email", "authenticator"]));
    assert_eq!(body["code_methods"], json!(["email"]));
    assert_eq!(body["identity_attributes"], json!(["email", "username"]));
}

#[rocket::async_test]
async fn pages_render() {
    let app = us_app(us_config()).await;
    let (status, html) = app.html("/us-signin").await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("us_signin_form") && html.contains("Via email"),
        "{html}"
    );
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;
    let (status, html) = app.html("/us-setup").await;
    assert_eq!(status, Status::Ok);
    assert!(
        html.contains("us_setup_form")
            && html.contains("Currently active sign in options: password."),
        "{html}"
    );
    let (status, html) = app.html("/us-verify").await;
    assert_eq!(status, Status::Ok);
    assert!(html.contains("us_verify_form"), "{html}");
}

#[rocket::async_test]
async fn generic_responses_hide_unknown_identities() {
    let mut s = setup().await;
    s.opts.extra = Some(us_config());
    s.opts.generic_responses = true;
    let app = app_with(s, |r| r).await;
    let unknown = unique_email();
    let (status, body) = app.us_signin(&unknown, "123456").await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"": ["Authentication failed - identity or password/passcode invalid"]})
    );
    let (status, body) = app
        .post_json(
            "/us-signin/send-code",
            json!({"identity": unknown, "chosen_method": "email"}),
        )
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["code_methods"], json!(["email"]));
    // A known user with a wrong code: the same answer.
    let (email, _) = app.confirmed_user().await;
    let (status, body) = app.us_signin(&email, "123456").await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"": ["Authentication failed - identity or password/passcode invalid"]})
    );
}

#[rocket::async_test]
async fn bad_configuration_is_refused_at_ignition() {
    for (extra, what) in [
        (
            us_config().merge(("security.us_enabled_methods", ["email", "carrier-pigeon"])),
            "us_enabled_methods",
        ),
        (
            us_config().merge(("security.us_mfa_required", ["webauthn"])),
            "us_mfa_required",
        ),
        (
            Figment::new()
                .merge(("security.unified_signin", true))
                .merge(("security.totp_issuer", "FS Tests")),
            "totp_secrets",
        ),
    ] {
        let mut s = setup().await;
        s.opts.extra = Some(extra);
        let rocket = rocket_for(s.opts).await;
        // The reason is logged; the fairing fails.
        let err = rocket.ignite().await.expect_err(what);
        assert!(
            matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{what}: {err:?}"
        );
    }
}

#[rocket::async_test]
async fn sms_setup_checks_the_phone() {
    let app = us_app(us_config().merge((
        "security.us_enabled_methods",
        ["email", "authenticator", "sms"],
    )))
    .await;
    let admin = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds: &dyn UserDatastore = admin.datastore();
    let (other, _) = app.confirmed_user().await;
    let other = ds.find_user(Lookup::Email(&other)).await.unwrap().unwrap();
    let taken = format!("+1650555{:04}", rand::random::<u16>() % 10_000);
    ds.update_user(
        other.id,
        UserUpdate::new().us_phone_number(Some(taken.clone())),
    )
    .await
    .unwrap();
    let (email, pw) = app.confirmed_user().await;
    app.login(&email, &pw).await;

    let (status, body) = app
        .post_json("/us-setup", json!({"chosen_method": "sms", "phone": "12"}))
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"phone": ["Phone number not valid e.g. missing country code"]})
    );
    // The same number in another notation is the same number.
    let national = format!("({}) {}-{}", &taken[2..5], &taken[5..8], &taken[8..]);
    let (status, body) = app
        .post_json(
            "/us-setup",
            json!({"chosen_method": "sms", "phone": national}),
        )
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"]["phone"],
        json!([format!(
            "Identity attribute 'us_phone_number' with value '{taken}' is already associated with an account."
        )])
    );
    // No SMS sender in this app: the code cannot be sent.
    let (status, body) = app
        .post_json(
            "/us-setup",
            json!({"chosen_method": "sms", "phone": "+1 650 555 0100"}),
        )
        .await;
    assert_eq!(status, Status::InternalServerError, "{body}");
    // The phone is an identity once set: a sign-in by it is looked up.
    app.logout().await;
    let (status, body) = app.us_signin(&taken, "123456").await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"passcode": ["Password or code submitted is not valid"]}),
        "{taken} names a user"
    );
}

#[rocket::async_test]
async fn sms_codes_are_texted_and_sign_in_by_phone() {
    let mut s = setup().await;
    s.opts.extra = Some(us_config().merge((
        "security.us_enabled_methods",
        ["email", "authenticator", "sms"],
    )));
    let sms = flask_security_rs::sms::CapturingSmsSender::new();
    s.opts.sms = Some(sms.clone());
    let app = app_with(s, |r| r).await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    // A number of its own (tests share one PostgreSQL database).
    let n = rand::random::<u32>() % 10_000;
    let phone = format!("+1650555{n:04}");
    let (status, body) = app
        .post_json(
            "/us-setup",
            json!({"chosen_method": "sms", "phone": format!("650-555-{n:04}")}),
        )
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["phone"], json!(phone));
    let text = sms.last_to(&phone).expect("a text to the number");
    let code = text.rsplit(' ').next().unwrap().to_string();
    let state = body["state"].as_str().unwrap().to_string();
    let (status, body) = app
        .post_json(&format!("/us-setup/{state}"), json!({"passcode": code}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    app.logout().await;

    sms.take();
    let (status, body) = app
        .post_json_no_csrf(
            "/us-signin/send-code",
            json!({"identity": email, "chosen_method": "sms"}),
        )
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    let text = sms.last_to(&phone).expect("a sign-in code by text");
    let code = text.rsplit(' ').next().unwrap().to_string();
    let (status, body) = app.us_signin(&phone, &code).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], false);
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {email}!")));
}

#[rocket::async_test]
async fn accounts_without_a_password_sign_in_with_codes() {
    let app = us_app(us_config().merge(("security.password_required", false))).await;
    let email = unique_email();
    let (status, body) = app
        .post_json_no_csrf("/register", json!({"email": email}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    follow_confirmation(&app.client, &app.mail(&email, "Welcome").await).await;
    // A password sign-in fails (there is none), after the usual work.
    let (status, body) = app.login(&email, "anything-at-all").await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"password": ["Invalid password"]})
    );
    app.sink.clear().await;
    let (status, body) = app
        .post_json_no_csrf(
            "/us-signin/send-code",
            json!({"identity": email, "chosen_method": "email"}),
        )
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    let code = code_in(&app.mail(&email, "Verification Code").await.text);
    let (status, body) = app.us_signin(&email, &code).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {email}!")));
}

#[rocket::async_test]
async fn a_password_is_still_required_by_default() {
    let app = us_app(us_config()).await;
    let (status, body) = app
        .post_json_no_csrf("/register", json!({"email": unique_email()}))
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"]["password"],
        json!(["Password not provided"])
    );
}

#[rocket::async_test]
async fn us_signin_can_replace_login() {
    let extra = us_config()
        .merge(("security.us_signin_replaces_login", true))
        .merge(("security.us_enabled_methods", ["password", "email"]));
    let app = us_app(extra).await;
    let (status, body) = app.get_json("/login").await;
    assert_eq!(status, Status::Ok);
    assert_eq!(
        body["available_methods"],
        json!(["password", "email"]),
        "{body}"
    );
    let (email, pw) = app.confirmed_user().await;
    // `/login` reads unified sign-in's form: identity and passcode.
    let (status, body) = app
        .post_json(
            "/login",
            json!({"identity": email, "passcode": "wrong-one"}),
        )
        .await;
    assert_eq!(status, Status::BadRequest);
    assert_eq!(
        body["field_errors"],
        json!({"passcode": ["Password or code submitted is not valid"]})
    );
    let (status, body) = app
        .post_json("/login", json!({"identity": email, "passcode": pw}))
        .await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["tf_required"], false);
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {email}!")));
}
