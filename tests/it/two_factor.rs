//! Two-factor sign-in (`/tf-setup`, `/tf-validate`, `/tf-rescue`) and
//! recovery codes (`/mf-recovery-codes`, `/mf-recovery`): each flow, code
//! windows and expiry on the movable clock, single use under concurrency,
//! clients without cookies, and a sign-in finished on another instance.
//! Codes are computed here with HMAC-SHA1 directly, independently of the
//! library.

use std::sync::Arc;

use flask_security_rs::sms::CapturingSmsSender;
use futures::future::join_all;
use rocket::figment::Figment;
use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};

use crate::common::*;

const N: usize = 12;

/// A six-digit code that is none of `valid`.
fn wrong_code(valid: &[String]) -> String {
    ["000000", "111111", "123456", "999999", "424242"]
        .iter()
        .find(|c| !valid.iter().any(|v| v == *c))
        .unwrap()
        .to_string()
}

fn tf_figment() -> Figment {
    Figment::new()
        .merge(("security.two_factor", true))
        .merge((
            "security.two_factor_enabled_methods",
            ["email", "authenticator", "sms"],
        ))
        .merge(("security.totp_issuer", "Test Issuer"))
        .merge(("security.totp_secrets", json!({"1": "test-totp-secret"})))
        .merge(("security.multi_factor_recovery_codes", true))
}

async fn tf_setup_with(extra: Figment) -> Setup {
    let mut s = setup().await;
    s.opts.extra = Some(tf_figment().merge(extra));
    s
}

async fn tf_app() -> App {
    app_with(tf_setup_with(Figment::new()).await, |r| r).await
}

impl App {
    /// Sets up the authenticator for the signed-in user; its base32 key.
    async fn setup_authenticator(&self) -> String {
        let (s, b) = self
            .post_json("/tf-setup", json!({"setup": "authenticator"}))
            .await;
        assert_eq!(s, Status::Ok, "{b}");
        let key = b["tf_authr_b32key"].as_str().unwrap().to_string();
        let state = b["tf_state_token"].as_str().unwrap().to_string();
        let code = totp(&key, self.clock.now_secs());
        let (s, b) = self
            .post_json(&format!("/tf-setup/{state}"), json!({"code": code}))
            .await;
        assert_eq!(s, Status::Ok, "{b}");
        key
    }

    /// A confirmed user with the authenticator set up, signed out: (email,
    /// password, key).
    async fn tf_user(&self) -> (String, String, String) {
        let (email, pw) = self.confirmed_user().await;
        assert_eq!(self.login(&email, &pw).await.0, Status::Ok);
        let key = self.setup_authenticator().await;
        self.logout().await;
        (email, pw, key)
    }

    async fn home_status(&self) -> Status {
        self.client
            .get("/")
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await
            .status()
    }
}

#[rocket::async_test]
async fn authenticator_setup_then_sign_in_needs_the_code() {
    let app = tf_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app.get_json("/tf-setup").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["tf_method"], Value::Null);
    assert_eq!(
        b["tf_available_methods"],
        json!(["email", "authenticator", "sms"])
    );

    let (s, b) = app
        .post_json("/tf-setup", json!({"setup": "authenticator"}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let key = b["tf_authr_b32key"].as_str().unwrap().to_string();
    assert_eq!(b["tf_authr_key"].as_str().unwrap().replace('-', ""), key);
    assert_eq!(b["tf_authr_issuer"], "Test Issuer");
    assert!(
        b["tf_authr_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Test%20Issuer:")
    );
    let state = b["tf_state_token"].as_str().unwrap().to_string();
    let now = app.clock.now_secs();
    let wrong = wrong_code(
        &(-5..=5)
            .map(|d| totp(&key, now + d * 30))
            .collect::<Vec<_>>(),
    );
    let (s, b) = app
        .post_json(&format!("/tf-setup/{state}"), json!({"code": wrong}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(b["field_errors"], json!({"code": ["Invalid code"]}));
    let (s, b) = app
        .post_json(
            &format!("/tf-setup/{state}"),
            json!({"code": totp(&key, now)}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["tf_method"], "authenticator");
    // The state token is single use.
    let (s, b) = app
        .post_json(
            &format!("/tf-setup/{state}"),
            json!({"code": totp(&key, now)}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"": ["Input not appropriate for requested API"]})
    );
    let (_, b) = app.get_json("/tf-setup").await;
    assert_eq!(
        b["tf_available_methods"],
        json!(["disable", "email", "authenticator", "sms"])
    );
    app.logout().await;

    let (s, b) = app.login(&email, &pw).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(
        b,
        json!({"csrf_token": b["csrf_token"], "tf_required": true, "tf_state": "ready",
               "tf_method": "authenticator", "tf_primary_method": "authenticator"})
    );
    assert_eq!(app.home_status().await, Status::Unauthorized);
    let (s, b) = app.post_json("/tf-validate", json!({"code": wrong})).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(b["field_errors"], json!({"code": ["Invalid code"]}));
    let (s, b) = app
        .post_json("/tf-validate", json!({"code": totp(&key, now)}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token", "user"]);
    assert_eq!(app.home_status().await, Status::Ok);
}

#[rocket::async_test]
async fn a_code_signs_in_once_and_the_next_step_works() {
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    let code = totp(&key, app.clock.now_secs());
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": code})).await.0,
        Status::Ok
    );
    app.logout().await;
    // The same code again, within its window: refused.
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app.post_json("/tf-validate", json!({"code": code})).await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(b["field_errors"], json!({"code": ["Invalid code"]}));
    // The next step's code: accepted, on the same waiting sign-in.
    app.clock.advance(30);
    let next = totp(&key, app.clock.now_secs());
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": next})).await.0,
        Status::Ok
    );
}

#[rocket::async_test]
async fn codes_are_accepted_within_the_window_only() {
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let now = app.clock.now_secs();
    // authenticator window: 120 s either side.
    for d in [-150, 150] {
        let (s, _) = app
            .post_json("/tf-validate", json!({"code": totp(&key, now + d)}))
            .await;
        assert_eq!(s, Status::BadRequest, "offset {d}");
    }
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": totp(&key, now - 120)}))
            .await
            .0,
        Status::Ok
    );
}

#[rocket::async_test]
async fn concurrent_uses_of_one_code_sign_in_once() {
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let code = totp(&key, app.clock.now_secs());
    let results =
        join_all((0..N).map(|_| app.post_json("/tf-validate", json!({"code": code})))).await;
    let ok = results.iter().filter(|(s, _)| *s == Status::Ok).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, b) in &results {
        assert!(*s == Status::Ok || *s == Status::BadRequest, "{s} {b}");
    }
}

#[rocket::async_test]
async fn a_copied_cookie_cannot_finish_a_second_sign_in() {
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let copied: Vec<Cookie<'static>> = app
        .client
        .cookies()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let code = totp(&key, app.clock.now_secs());
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": code})).await.0,
        Status::Ok
    );
    // Another client replays the cookie of the waiting sign-in with a fresh code.
    app.clock.advance(30);
    let other = Client::untracked(rocket_for(app.options.clone()).await)
        .await
        .unwrap();
    let mut req = other
        .post("/tf-validate")
        .header(ContentType::JSON)
        .body(json!({"code": totp(&key, app.clock.now_secs())}).to_string());
    for c in copied {
        req = req.cookie(c);
    }
    let (s, b) = json_of(req.dispatch().await).await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(
        b["field_errors"],
        json!({"": ["You currently do not have permissions to access this page"]})
    );
}

#[rocket::async_test]
async fn without_a_sign_in_in_progress_validate_is_denied() {
    let app = tf_app().await;
    let (s, b) = app
        .post_json("/tf-validate", json!({"code": "123456"}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"": ["You currently do not have permissions to access this page"]})
    );
    let (s, _) = app.get_json("/tf-setup").await;
    assert_eq!(s, Status::BadRequest);
}

#[rocket::async_test]
async fn email_method_sends_a_new_code_after_one_was_used() {
    let app = tf_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app.post_json("/tf-setup", json!({"setup": "email"})).await;
    assert_eq!(s, Status::Ok, "{b}");
    let mail = app.mail(&email, "Two-Factor Login").await;
    let setup_code = code_in(&mail.text);
    assert!(
        mail.text.contains("This code will expire in 5 minutes."),
        "{}",
        mail.text
    );
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": setup_code}))
            .await
            .0,
        Status::Ok
    );
    app.logout().await;

    let mut used = Vec::new();
    for _ in 0..2 {
        app.sink.clear().await;
        let (s, b) = app.login(&email, &pw).await;
        assert_eq!((s, b["tf_method"].clone()), (Status::Ok, json!("email")));
        let code = code_in(&app.mail(&email, "Two-Factor Login").await.text);
        assert!(!used.contains(&code), "a used code was sent again: {code}");
        assert_eq!(
            app.post_json("/tf-validate", json!({"code": code})).await.0,
            Status::Ok
        );
        used.push(code);
        app.logout().await;
    }
}

#[rocket::async_test]
async fn sms_method_texts_the_code_to_the_normalised_number() {
    let mut s = tf_setup_with(Figment::new()).await;
    let sms = CapturingSmsSender::new();
    s.opts.sms = Some(sms.clone());
    let app = app_with(s, |r| r).await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json("/tf-setup", json!({"setup": "sms", "phone": "123"}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"phone": ["Phone number not valid e.g. missing country code"]})
    );
    let (s, b) = app
        .post_json(
            "/tf-setup",
            json!({"setup": "sms", "phone": "650-555-1212"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let text = sms.last_to("+16505551212").expect("an SMS to the number");
    let code = text.rsplit(' ').next().unwrap().to_string();
    assert_eq!(code.len(), 6, "{text}");
    let (s, b) = app.post_json("/tf-validate", json!({"code": code})).await;
    assert_eq!(s, Status::Ok, "{b}");
    let (_, b) = app.get_json("/tf-setup").await;
    assert_eq!(
        (b["tf_method"].clone(), b["tf_phone_number"].clone()),
        (json!("sms"), json!("+16505551212"))
    );
    // A failing sender: the sign-in answers 500, not a 4xx.
    app.logout().await;
    sms.fail(true);
    let (s, b) = app.login(&email, &pw).await;
    assert_eq!(s, Status::InternalServerError, "{b}");
    assert_eq!(
        b["errors"],
        json!(["Failed to send code. Please try again later"])
    );
}

#[rocket::async_test]
async fn a_setup_state_expires() {
    let app = tf_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (_, b) = app
        .post_json("/tf-setup", json!({"setup": "authenticator"}))
        .await;
    let key = b["tf_authr_b32key"].as_str().unwrap().to_string();
    let state = b["tf_state_token"].as_str().unwrap().to_string();
    app.clock.advance(30 * 60 + 1);
    let code = totp(&key, app.clock.now_secs());
    let (s, b) = app
        .post_json(&format!("/tf-setup/{state}"), json!({"code": code}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"": ["Input not appropriate for requested API"]})
    );
}

#[rocket::async_test]
async fn disable_turns_two_factor_off() {
    let app = tf_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.setup_authenticator().await;
    let (s, b) = app
        .post_json("/tf-setup", json!({"setup": "disable"}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["user"], json!({}));
    let (_, b) = app.get_json("/tf-setup").await;
    assert_eq!(b["tf_method"], Value::Null);
    app.logout().await;
    let (s, b) = app.login(&email, &pw).await;
    assert_eq!((s, b["tf_required"].clone()), (Status::Ok, json!(false)));
}

#[rocket::async_test]
async fn recovery_codes_work_once_even_concurrently() {
    let (a, b) = twin_apps(tf_setup_with(Figment::new()).await).await;
    let (email, pw) = a.confirmed_user().await;
    assert_eq!(a.login(&email, &pw).await.0, Status::Ok);
    a.setup_authenticator().await;
    let (_, r) = a.get_json("/mf-recovery-codes").await;
    assert_eq!(r["recovery_codes"], json!([]));
    let (s, r) = a.post_json("/mf-recovery-codes", json!({})).await;
    assert_eq!(s, Status::Ok, "{r}");
    let codes: Vec<String> = serde_json::from_value(r["recovery_codes"].clone()).unwrap();
    assert_eq!(codes.len(), 5);
    a.logout().await;

    // Two browsers wait for their second factor; each sends the same code N times.
    for app in [&a, &b] {
        let (s, r) = app.login(&email, &pw).await;
        assert_eq!((s, r["tf_required"].clone()), (Status::Ok, json!(true)));
        let (_, r) = app.get_json("/tf-validate").await;
        assert_eq!(r["recovery_options"]["recovery_code"], "/mf-recovery");
    }
    let body = json!({"code": codes[0]});
    let results = join_all(
        (0..N)
            .map(|i| if i % 2 == 0 { &a } else { &b })
            .map(|app| app.post_json("/mf-recovery", body.clone())),
    )
    .await;
    let ok = results.iter().filter(|(s, _)| *s == Status::Ok).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, r) in &results {
        assert!(
            *s == Status::Ok
                || (*s == Status::BadRequest
                    && (r["field_errors"] == json!({"code": ["Recovery code invalid"]})
                        // The winner's browser: its sign-in is no longer waiting.
                        || r["errors"]
                            == json!(["You currently do not have permissions to access this page"])
                        || r["errors"]
                            == json!(["You can only access this endpoint when not logged in."]))),
            "{s} {r}"
        );
    }
    // The loser (the browser whose requests all failed) can still use
    // another code. Which browser won is told by the answers: the
    // winner's cookie jar may since hold the cookie of one of its own
    // losing requests.
    let won = results.iter().position(|(s, _)| *s == Status::Ok).unwrap();
    let loser = if won % 2 == 0 { &b } else { &a };
    assert_eq!(loser.home_status().await, Status::Unauthorized);
    let (s, r) = loser
        .post_json("/mf-recovery", json!({"code": codes[1]}))
        .await;
    assert_eq!(s, Status::Ok, "{r}");
    assert_eq!(keys(&r), ["csrf_token", "user"]);
    assert_eq!(loser.home_status().await, Status::Ok);
    let (_, r) = loser.get_json("/mf-recovery-codes").await;
    assert_eq!(r["recovery_codes"], json!(codes[2..]));
}

#[rocket::async_test]
async fn clients_without_cookies_use_the_state_token_when_allowed() {
    // Off (the default): no state token in the answer, none accepted.
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    let bare = Client::untracked(rocket_for(app.options.clone()).await)
        .await
        .unwrap();
    let login = json!({"email": email, "password": pw}).to_string();
    let (s, b) = json_of(
        bare.post("/login")
            .header(ContentType::JSON)
            .body(&login)
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(s, Status::Ok);
    assert!(b.get("tf_state_token").is_none(), "{b}");

    let mut s =
        tf_setup_with(Figment::new().merge(("security.two_factor_state_token", true))).await;
    s.opts.database_url = app.options.database_url.clone();
    s.opts.outbox_queue = app.options.outbox_queue.clone();
    let on = Client::untracked(rocket_for(s.opts).await).await.unwrap();
    let (s, b) = json_of(
        on.post("/login")
            .header(ContentType::JSON)
            .body(&login)
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(s, Status::Ok, "{b}");
    let state = b["tf_state_token"]
        .as_str()
        .expect("a state token")
        .to_string();
    let code = totp(&key, app.clock.now_secs());
    let body = json!({"code": code, "tf_state_token": state}).to_string();
    let (s, b) = json_of(
        on.post("/tf-validate?include_auth_token")
            .header(ContentType::JSON)
            .body(&body)
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(s, Status::Ok, "{b}");
    let token = b["user"]["authentication_token"]
        .as_str()
        .expect("a token")
        .to_string();
    let r = on
        .get("/api/protected")
        .header(Header::new("X-Auth-Token", token))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    // Used up.
    let (s, _) = json_of(
        on.post("/tf-validate")
            .header(ContentType::JSON)
            .body(&body)
            .dispatch()
            .await,
    )
    .await;
    assert_eq!(s, Status::BadRequest);
}

#[rocket::async_test]
async fn a_sign_in_started_on_one_instance_finishes_on_another() {
    let app = tf_app().await;
    let (email, pw, key) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let cookies: Vec<Cookie<'static>> = app
        .client
        .cookies()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect();
    let other = another_instance(&app).await;
    let mut req = other
        .client
        .post("/tf-validate")
        .header(ContentType::JSON)
        .body(json!({"code": totp(&key, app.clock.now_secs())}).to_string());
    for c in cookies {
        req = req.cookie(c);
    }
    let (s, b) = json_of(req.dispatch().await).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(other.home_status().await, Status::Ok);
}

#[rocket::async_test]
async fn remembered_devices_skip_the_code_when_allowed() {
    let app = app_with(
        tf_setup_with(Figment::new().merge(("security.two_factor_always_validate", false))).await,
        |r| r,
    )
    .await;
    let (email, pw, key) = app.tf_user().await;
    let login = json!({"email": email, "password": pw, "remember": true});
    let (_, b) = app.post_json("/login", login.clone()).await;
    assert_eq!(b["tf_required"], true);
    let resp = app
        .client
        .post("/tf-validate")
        .header(ContentType::JSON)
        .body(json!({"code": totp(&key, app.clock.now_secs())}).to_string())
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Ok);
    let set: Vec<String> = resp.headers().get("Set-Cookie").map(String::from).collect();
    let validity = set
        .iter()
        .find(|c| c.starts_with("tf_validity="))
        .expect("a tf_validity cookie");
    assert!(
        validity.contains("Max-Age=2592000") && validity.contains("HttpOnly"),
        "{validity}"
    );
    app.logout().await;
    let (_, b) = app.post_json("/login", login).await;
    assert_eq!(b["tf_required"], false, "{b}");
}

#[rocket::async_test]
async fn the_rule_makes_some_users_set_up_at_sign_in() {
    // The rule names users of one domain (seeded users, shared by every
    // test on one PostgreSQL database, are left alone).
    let mut s = tf_setup_with(Figment::new()).await;
    s.opts.tf_rule = Some(Arc::new(|u: &flask_security_rs::User| {
        u.email.ends_with("@required.example.com")
    }));
    let app = app_with(s, |r| r).await;
    let (_, b) = app.login(USER.0, USER.1).await;
    assert_eq!(b["tf_required"], false);
    app.logout().await;
    let email = format!("t-{}@required.example.com", uuid());
    let pw = "s3cret-pass";
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": pw, "password_confirm": pw}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    follow_confirmation(&app.client, &app.mail(&email, "Welcome").await).await;
    let (s, b) = app.login(&email, pw).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(
        (b["tf_required"].clone(), b["tf_state"].clone()),
        (json!(true), json!("setup_from_login"))
    );
    let (s, b) = app.get_json("/tf-setup").await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["tf_required"], true);
    assert_eq!(
        b["tf_available_methods"],
        json!(["email", "authenticator", "sms"])
    );
    let (s, b) = app
        .post_json("/tf-setup", json!({"setup": "disable"}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"setup": ["Marked method is not valid"]})
    );
    let (s, b) = app
        .post_json("/tf-setup", json!({"setup": "authenticator"}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["tf_state_token"], Value::Null);
    let key = b["tf_authr_b32key"].as_str().unwrap().to_string();
    assert_eq!(app.home_status().await, Status::Unauthorized);
    let (s, b) = app
        .post_json(
            "/tf-validate",
            json!({"code": totp(&key, app.clock.now_secs())}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(app.home_status().await, Status::Ok);
    // Stored: the next sign-in asks for that method's code.
    app.logout().await;
    let (_, b) = app.login(&email, pw).await;
    assert_eq!(
        (b["tf_state"].clone(), b["tf_method"].clone()),
        (json!("ready"), json!("authenticator"))
    );
}

#[rocket::async_test]
async fn rescue_mails_a_code() {
    let app = tf_app().await;
    let (email, pw, _) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app
        .post_json("/tf-rescue", json!({"help_setup": "email"}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(
        b["recovery_options"],
        json!({"email": "/tf-rescue", "help": "/tf-rescue"})
    );
    let code = code_in(&app.mail(&email, "Two-Factor Login").await.text);
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": code})).await.0,
        Status::Ok
    );
    let (s, _) = app
        .post_json("/tf-rescue", json!({"help_setup": "email"}))
        .await;
    assert_eq!(s, Status::BadRequest, "signed in: anonymous only");
}

#[rocket::async_test]
async fn passlib_secrets_of_flask_security_decrypt() {
    // A TOTP key passlib encrypted under tag "2" of these secrets.
    let secrets = json!({"1": "flask-security-rs test secret one", "2": "second test secret"});
    let app = app_with(
        tf_setup_with(Figment::new().merge(("security.totp_secrets", secrets))).await,
        |r| r,
    )
    .await;
    let (email, pw) = app.confirmed_user().await;
    let db = flask_security_rs::sea_orm::Database::connect(flask_security_rs::connect_options(
        &app.options.database_url,
    ))
    .await
    .unwrap();
    use flask_security_rs::sea_orm::{ConnectionTrait, Statement};
    let stored = r#"{"enckey":{"c":14,"k":"S3ICK33XXNYTBRSN7ZPD6PQGWSSV6EZU","s":"LNV426OPLGFVDCSRBLQQ","t":"2","v":1},"type":"totp","v":1}"#;
    let sql = format!(
        "UPDATE \"user\" SET tf_primary_method = 'authenticator', tf_totp_secret = '{stored}' WHERE email = '{email}'"
    );
    db.execute_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap();
    settle_changes().await;
    let (_, b) = app.login(&email, &pw).await;
    assert_eq!(b["tf_method"], "authenticator", "{b}");
    let code = totp("EQCCBJEUOIXML6D7V7234V7KTXJVUC5B", app.clock.now_secs());
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": code})).await.0,
        Status::Ok
    );
}

#[rocket::async_test]
async fn wrong_codes_and_recovery_codes_are_throttled() {
    let extra = Figment::new()
        .merge(("security.throttle_enabled", true))
        .merge(("security.throttle_free_attempts", 3));
    let app = app_with(tf_setup_with(extra).await, |r| r).await;
    let (email, pw, key) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let now = app.clock.now_secs();
    let wrong = wrong_code(
        &(-5..=5)
            .map(|d| totp(&key, now + d * 30))
            .collect::<Vec<_>>(),
    );
    for _ in 0..3 {
        let (s, _) = app.post_json("/tf-validate", json!({"code": wrong})).await;
        assert_eq!(s, Status::BadRequest);
    }
    // Locked: even the right code is held back, with Retry-After.
    let (s, b) = app
        .post_json("/tf-validate", json!({"code": totp(&key, now)}))
        .await;
    assert_eq!(s, Status::TooManyRequests, "{b}");
    let (s, _) = app
        .post_json("/mf-recovery", json!({"code": "dead-beef-0000"}))
        .await;
    assert_eq!(s, Status::TooManyRequests);
}

#[rocket::async_test]
async fn select_without_a_choice_to_make_is_denied() {
    let app = tf_app().await;
    let (email, pw, _) = app.tf_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    // One method (no passkeys): the sign-in waits at `ready`, not `select`.
    for (s, b) in [
        app.get_json("/tf-select").await,
        app.post_json("/tf-select", json!({"which": "authenticator"}))
            .await,
    ] {
        assert_eq!(s, Status::BadRequest);
        assert_eq!(
            b["field_errors"],
            json!({"": ["You currently do not have permissions to access this page"]})
        );
    }
}
