//! Throttling of failed authentications (the `throttle` feature): counts per
//! account and per client address in the database, exponential backoff,
//! 429 + `Retry-After`, reset on sign-in.
//!
//! Every test uses accounts of its own and client addresses of its own, so
//! the tests also hold when they share one PostgreSQL database.

use std::net::SocketAddr;

use flask_security_rs::{Admin, NewUser};
use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::{Value, json};

use crate::common::*;

const WRONG: &str = "not-the-password";

/// The test app's settings plus `keys` (`security.<key>`).
fn with_keys(s: &mut Setup, keys: &[(&str, Value)]) {
    // On, unless `keys` say otherwise (the test app has it off).
    let mut fig = Figment::new().merge(("security.throttle_enabled", true));
    for (k, v) in keys {
        fig = fig.merge((format!("security.{k}"), v.clone()));
    }
    s.opts.extra = Some(fig);
}

async fn throttled_app(keys: &[(&str, Value)]) -> App {
    let mut s = setup().await;
    with_keys(&mut s, keys);
    app_with(s, |r| r).await
}

/// A confirmed account of this test's own: (email, password).
async fn account(app: &App) -> (String, String) {
    let admin = Admin::of(app.client.rocket()).expect("state");
    let email = unique_email();
    let pw = "right-password".to_string();
    admin
        .create_user(NewUser::new(email.clone()), &pw)
        .await
        .expect("create user");
    (email, pw)
}

/// A client address of this test's own.
fn address() -> SocketAddr {
    let b = uuid().into_bytes();
    format!("10.{}.{}.{}:4000", b[0], b[1], b[2])
        .parse()
        .expect("address")
}

/// POST /login as JSON, from `from` when given.
async fn login_from<'c>(
    app: &'c App,
    from: Option<SocketAddr>,
    email: &str,
    password: &str,
) -> LocalResponse<'c> {
    let mut req = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({"email": email, "password": password}).to_string());
    if let Some(a) = from {
        req = req.remote(a);
    }
    req.dispatch().await
}

/// The status of a login, logged out again after a success.
async fn attempt(app: &App, from: Option<SocketAddr>, email: &str, password: &str) -> Status {
    let status = login_from(app, from, email, password).await.status();
    if status == Status::Ok {
        app.logout().await;
    }
    status
}

/// Asserts a 429 with `Retry-After` of about `secs` (a second boundary may
/// pass in between) and the JSON envelope; returns the `Retry-After`.
async fn assert_throttled(r: LocalResponse<'_>, secs: u64) -> u64 {
    assert_eq!(r.status(), Status::TooManyRequests);
    let retry: u64 = r
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!(
        retry >= 1 && retry <= secs && retry + 1 >= secs,
        "Retry-After {retry}, expected about {secs}"
    );
    let (status, body) = json_of(r).await;
    assert_eq!(status, Status::TooManyRequests);
    assert_eq!(
        body,
        json!({
            "errors": [format!("Too many failed attempts. Try again in {retry} seconds.")],
            "retry_after": retry,
        })
    );
    retry
}

async fn fail_times(app: &App, from: Option<SocketAddr>, email: &str, n: usize) {
    for i in 0..n {
        let (s, b) = json_of(login_from(app, from, email, WRONG).await).await;
        assert_eq!(s, Status::BadRequest, "failure {i}: {b}");
    }
}

#[rocket::async_test]
async fn failures_then_429_with_retry_after_in_the_envelope() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(3)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, _) = account(&app).await;
    fail_times(&app, None, &email, 3).await;
    // The attempt after 3 failures is throttled, wrong password or not.
    assert_throttled(login_from(&app, None, &email, WRONG).await, 10).await;
    // Throttled attempts do not count: still the first lock.
    assert_throttled(login_from(&app, None, &email, WRONG).await, 10).await;
}

#[rocket::async_test]
async fn correct_password_is_refused_while_locked() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(2)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, pw) = account(&app).await;
    fail_times(&app, None, &email, 2).await;
    assert_throttled(login_from(&app, None, &email, &pw).await, 10).await;
    // No session was issued.
    assert_eq!(app.get_json("/change").await.0, Status::Unauthorized);
    app.clock.advance(11);
    assert_eq!(attempt(&app, None, &email, &pw).await, Status::Ok);
}

#[rocket::async_test]
async fn backoff_doubles_up_to_the_cap() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(2)),
        ("throttle_base_delay", json!(10)),
        ("throttle_max_delay", json!(35)),
    ])
    .await;
    let (email, _) = account(&app).await;
    fail_times(&app, None, &email, 2).await;
    for lock in [10, 20, 35, 35] {
        assert_throttled(login_from(&app, None, &email, WRONG).await, lock).await;
        app.clock.advance(lock as i64 + 1);
        // One more failure once the lock is over: the next lock doubles.
        fail_times(&app, None, &email, 1).await;
    }
}

#[rocket::async_test]
async fn sign_in_resets_the_account() {
    let app = throttled_app(&[("throttle_free_attempts", json!(3))]).await;
    let (email, pw) = account(&app).await;
    fail_times(&app, None, &email, 2).await;
    assert_eq!(attempt(&app, None, &email, &pw).await, Status::Ok);
    // Counting starts again: two more failures are not three in a row.
    fail_times(&app, None, &email, 2).await;
    assert_eq!(attempt(&app, None, &email, &pw).await, Status::Ok);
    fail_times(&app, None, &email, 3).await;
    assert_throttled(login_from(&app, None, &email, &pw).await, 30).await;
}

#[rocket::async_test]
async fn old_failures_are_forgotten() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(3)),
        ("throttle_base_delay", json!(10)),
        ("throttle_max_delay", json!(60)),
        ("throttle_reset_after", json!(100)),
    ])
    .await;
    let (email, _) = account(&app).await;
    fail_times(&app, None, &email, 2).await;
    app.clock.advance(101);
    fail_times(&app, None, &email, 2).await;
    // 2 + 2 failures, but only 2 within `throttle_reset_after`.
    fail_times(&app, None, &email, 1).await;
    assert_throttled(login_from(&app, None, &email, WRONG).await, 10).await;
}

#[rocket::async_test]
async fn address_counts_across_accounts_and_unknown_identities() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(5)),
        ("throttle_ip_free_attempts", json!(3)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (a, _) = account(&app).await;
    let (b, _) = account(&app).await;
    let (c, c_pw) = account(&app).await;
    let here = address();
    fail_times(&app, Some(here), &a, 1).await;
    fail_times(&app, Some(here), &b, 1).await;
    fail_times(&app, Some(here), &unique_email(), 1).await;
    // A third account, with its right password, from the same address.
    assert_throttled(login_from(&app, Some(here), &c, &c_pw).await, 10).await;
    // From elsewhere it is fine: the accounts themselves are not locked.
    assert_eq!(attempt(&app, Some(address()), &c, &c_pw).await, Status::Ok);
    // Without an address (none known) only the account counts.
    assert_eq!(attempt(&app, None, &c, &c_pw).await, Status::Ok);
}

#[rocket::async_test]
async fn addresses_are_not_counted_by_default_and_unknown_identities_not_locked() {
    let app = throttled_app(&[("throttle_free_attempts", json!(2))]).await;
    let here = address();
    let nobody = unique_email();
    // An unknown identity counts by address only, and addresses are off.
    fail_times(&app, Some(here), &nobody, 5).await;
    let (s, b) = json_of(login_from(&app, Some(here), &nobody, WRONG).await).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(b, field_error("email", "Specified user does not exist"));
    let (email, pw) = account(&app).await;
    assert_eq!(attempt(&app, Some(here), &email, &pw).await, Status::Ok);
}

#[rocket::async_test]
async fn with_generic_responses_unknown_identities_lock_like_accounts() {
    let mut s = setup().await;
    s.opts.generic_responses = true;
    with_keys(
        &mut s,
        &[
            ("throttle_free_attempts", json!(2)),
            ("throttle_base_delay", json!(10)),
        ],
    );
    let app = app_with(s, |r| r).await;
    let (email, _) = account(&app).await;
    let nobody = unique_email();
    for who in [&email, &nobody] {
        fail_times(&app, None, who, 2).await;
        assert_throttled(login_from(&app, None, who, WRONG).await, 10).await;
    }
    // Another case does not make another identity.
    let shouted = nobody.to_uppercase();
    assert_throttled(login_from(&app, None, &shouted, WRONG).await, 10).await;
}

#[rocket::async_test]
async fn concurrent_failures_all_count() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(25)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, _) = account(&app).await;
    let burst = (0..20).map(|_| login_from(&app, None, &email, WRONG));
    for r in futures::future::join_all(burst).await {
        assert_eq!(r.status(), Status::BadRequest);
    }
    // 20 + 4 = 24 failures: not locked yet.
    fail_times(&app, None, &email, 4).await;
    // The 25th locks (it would not if a concurrent one had been lost).
    fail_times(&app, None, &email, 1).await;
    assert_throttled(login_from(&app, None, &email, WRONG).await, 10).await;
}

#[rocket::async_test]
async fn http_basic_is_throttled_with_429() {
    use base64::Engine as _;
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(2)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, pw) = account(&app).await;
    let basic = |password: &str| {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
        app.client
            .get("/api/basic")
            .header(Header::new("Accept", "application/json"))
            .header(Header::new("Authorization", format!("Basic {creds}")))
            .dispatch()
    };
    for _ in 0..2 {
        assert_eq!(basic(WRONG).await.status(), Status::Unauthorized);
    }
    assert_throttled(basic(&pw).await, 10).await;
    // The lock is the account's, whatever the mechanism.
    assert_throttled(login_from(&app, None, &email, &pw).await, 10).await;
    app.clock.advance(11);
    assert_eq!(basic(&pw).await.status(), Status::Ok);
}

#[rocket::async_test]
async fn verify_and_change_count_and_are_throttled() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(2)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, pw) = account(&app).await;
    let (s, _) = app.login(&email, &pw).await;
    assert_eq!(s, Status::Ok);
    let (s, _) = app.post_json("/verify", json!({"password": WRONG})).await;
    assert_eq!(s, Status::BadRequest);
    let change = json!({"password": WRONG, "new_password": "another-pass", "new_password_confirm": "another-pass"});
    let (s, _) = app.post_json("/change", change).await;
    assert_eq!(s, Status::BadRequest);
    // Two failures (one at each): both endpoints now answer 429, even to the
    // right password.
    let csrf = app.csrf_cookie().expect("csrf cookie");
    let r = app
        .post_with_header("/verify", "X-XSRF-Token", &csrf, json!({"password": pw}))
        .await;
    assert_throttled(r, 10).await;
    let change = json!({"password": pw, "new_password": "another-pass", "new_password_confirm": "another-pass"});
    let r = app
        .post_with_header("/change", "X-XSRF-Token", &csrf, change)
        .await;
    assert_throttled(r, 10).await;
}

#[rocket::async_test]
async fn html_form_is_shown_again_with_429() {
    let app = throttled_app(&[
        ("throttle_free_attempts", json!(1)),
        ("throttle_base_delay", json!(10)),
    ])
    .await;
    let (email, pw) = account(&app).await;
    let form = |password: &str| {
        app.client
            .post("/login")
            .header(ContentType::Form)
            .body(format!(
                "email={}&password={password}",
                email.replace('@', "%40")
            ))
            .dispatch()
    };
    assert_eq!(form(WRONG).await.status(), Status::Ok, "the form again");
    let r = form(&pw).await;
    assert_eq!(r.status(), Status::TooManyRequests);
    let retry = r
        .headers()
        .get_one("Retry-After")
        .expect("Retry-After")
        .to_string();
    assert!(retry == "10" || retry == "9", "{retry}");
    assert!(r.content_type().is_some_and(|c| c.is_html()));
    let html = r.into_string().await.unwrap_or_default();
    assert!(html.contains("<form"), "{html}");
    assert!(
        html.contains(&format!(
            "Too many failed attempts. Try again in {retry} seconds."
        )),
        "{html}"
    );
}

#[rocket::async_test]
async fn two_instances_share_the_counts() {
    let mut s = setup().await;
    with_keys(
        &mut s,
        &[
            ("throttle_free_attempts", json!(3)),
            ("throttle_base_delay", json!(10)),
        ],
    );
    let (a, b) = twin_apps(s).await;
    let (email, pw) = account(&a).await;
    fail_times(&a, None, &email, 2).await;
    fail_times(&b, None, &email, 1).await;
    assert_throttled(login_from(&a, None, &email, &pw).await, 10).await;
    assert_throttled(login_from(&b, None, &email, &pw).await, 10).await;
    // A sign-in on one resets the count for both.
    a.clock.advance(11);
    assert_eq!(attempt(&b, None, &email, &pw).await, Status::Ok);
    fail_times(&a, None, &email, 2).await;
    assert_eq!(attempt(&a, None, &email, &pw).await, Status::Ok);
}

#[rocket::async_test]
async fn off_switch_and_message_override() {
    let app = throttled_app(&[
        ("throttle_enabled", json!(false)),
        ("throttle_free_attempts", json!(1)),
    ])
    .await;
    let (email, pw) = account(&app).await;
    fail_times(&app, None, &email, 5).await;
    assert_eq!(attempt(&app, None, &email, &pw).await, Status::Ok);

    let app = throttled_app(&[
        ("throttle_free_attempts", json!(1)),
        ("msg_too_many_attempts", json!("Slow down (%(seconds)s s)")),
    ])
    .await;
    let (email, _) = account(&app).await;
    fail_times(&app, None, &email, 1).await;
    let r = login_from(&app, None, &email, WRONG).await;
    let retry = r
        .headers()
        .get_one("Retry-After")
        .unwrap_or_default()
        .to_string();
    let (s, b) = json_of(r).await;
    assert_eq!(s, Status::TooManyRequests);
    assert_eq!(b["errors"], json!([format!("Slow down ({retry} s)")]));
}

#[rocket::async_test]
async fn nonsense_settings_stop_launch() {
    for (key, value) in [
        ("throttle_base_delay", json!(0)),
        ("throttle_free_attempts", json!(0)),
        ("throttle_max_delay", json!(5)),
        ("throttle_reset_after", json!(60)),
        ("throttle_free_attempts", json!(-1)),
    ] {
        let mut s = setup().await;
        with_keys(&mut s, &[(key, value.clone())]);
        let ignited = rocket_for(s.opts).await.ignite().await;
        let ignited = ignited.map(|_| ()).map_err(|e| format!("{e:?}"));
        assert!(ignited.is_err(), "{key} = {value} launched");
    }
    // Addresses off is fine, and so is a bad value while throttling is off.
    let mut s = setup().await;
    with_keys(
        &mut s,
        &[
            ("throttle_ip_free_attempts", json!(0)),
            ("throttle_enabled", json!(false)),
            ("throttle_base_delay", json!(0)),
        ],
    );
    let ignited = rocket_for(s.opts).await.ignite().await;
    assert_eq!(ignited.map(|_| ()).map_err(|e| format!("{e:?}")), Ok(()));
}
