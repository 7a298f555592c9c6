//! Changeable (`/change`), and the password policy (complexity, breached
//! list) as the app applies it to `/register`, `/change` and `/reset/<token>`.

use rocket::figment::Figment;
use rocket::http::{ContentType, Header, Status};
use rocket::tokio;
use serde_json::{Value, json};

use crate::common::*;

const NEW_PW: &str = "changed-pw-77";
const UNAUTHN: &str = "You must sign in to view this resource.";

fn change_body(old: &str, new: &str, confirm: &str) -> Value {
    json!({"password": old, "new_password": new, "new_password_confirm": confirm})
}

#[rocket::async_test]
async fn get_change_json() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app.get_json("/change").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["active_password", "csrf_token", "user"]);
    assert_eq!(b["active_password"], json!(true));
    assert_eq!(b["user"], json!({}));
    let html = app
        .client
        .get("/change")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(html.status(), Status::Ok);
    let html = html.into_string().await.unwrap_or_default();
    assert!(html.contains("name=\"new_password_confirm\""), "{html}");
}

#[rocket::async_test]
async fn change_password_success_ends_other_sessions_and_tokens() {
    let (other, app) = twin_apps(setup().await).await;
    let (email, pw) = app.confirmed_user().await;
    // Another browser holds a session and an auth token.
    let old_token = other.token(&email, &pw).await;
    assert_eq!(other.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(other.token_status(&old_token).await, Status::Ok);

    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app
        .post_json(
            "/change?include_auth_token",
            change_body(&pw, NEW_PW, NEW_PW),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token", "user"]);
    assert_eq!(keys(&b["user"]), ["authentication_token"]);
    let new_token = b["user"]["authentication_token"]
        .as_str()
        .expect("token")
        .to_string();
    assert_ne!(new_token, old_token);

    // The changing session stays logged in; everything else ends (on the
    // other instance once it has heard of the change).
    settle_changes().await;
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {email}!")));
    assert_eq!(
        other.text("/").await.0,
        Status::Unauthorized,
        "other session ended"
    );
    assert_eq!(
        other.token_status(&old_token).await,
        Status::Unauthorized,
        "old token ended"
    );
    assert_eq!(
        other.token_status(&new_token).await,
        Status::Ok,
        "new token works"
    );

    let mail = app.mail(&email, "Your password has been changed").await;
    assert_eq!(mail.to, vec![email.clone()]);
    assert_eq!(app.all_mail().await.len(), 1);

    assert_eq!(
        other.login(&email, &pw).await.1,
        field_error("password", "Invalid password")
    );
    assert_eq!(other.login(&email, NEW_PW).await.0, Status::Ok);
    // The session of the changing browser keeps working for unsafe requests too.
    let (s, _) = app
        .post_json(
            "/change",
            change_body(NEW_PW, "third-pass-3", "third-pass-3"),
        )
        .await;
    assert_eq!(s, Status::Ok);
}

#[rocket::async_test]
async fn change_password_without_token_request_has_empty_user() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json("/change", change_body(&pw, NEW_PW, NEW_PW))
        .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["user"], json!({}));
    assert!(b["csrf_token"].is_string());
}

#[rocket::async_test]
async fn change_password_validation_errors() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let cases = [
        (
            change_body("not-my-password", NEW_PW, NEW_PW),
            "password",
            "Invalid password",
        ),
        (
            change_body(&pw, &pw, &pw),
            "password",
            "Your new password must be different than your previous password.",
        ),
        (
            change_body(&pw, "abc", "abc"),
            "new_password",
            "Password must be at least 6 characters",
        ),
        (
            change_body(&pw, NEW_PW, "other-pw-1"),
            "new_password_confirm",
            "Passwords do not match",
        ),
        (
            json!({"new_password": NEW_PW, "new_password_confirm": NEW_PW}),
            "password",
            "Password not provided",
        ),
        (
            json!({"password": pw, "new_password": NEW_PW}),
            "new_password_confirm",
            "Password not provided",
        ),
        (
            json!({"password": pw, "new_password": [NEW_PW], "new_password_confirm": NEW_PW}),
            "new_password",
            "Input not appropriate for requested API",
        ),
    ];
    for (body, field, msg) in cases {
        let (s, b) = app.post_json("/change", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error(field, msg), "{body}");
    }
    // A missing new password also fails the confirmation (WTForms' EqualTo).
    let (s, b) = app
        .post_json(
            "/change",
            json!({"password": pw, "new_password_confirm": NEW_PW}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"new_password": ["Password not provided"], "new_password_confirm": ["Passwords do not match"]})
    );
    assert!(
        app.all_mail().await.is_empty(),
        "no notice for failed changes"
    );
    assert_eq!(app.text("/").await.0, Status::Ok, "still logged in");
    app.logout().await;
    assert_eq!(
        app.login(&email, &pw).await.0,
        Status::Ok,
        "password unchanged"
    );
}

#[rocket::async_test]
async fn blank_passwords_are_not_provided() {
    // WTForms' DataRequired strips, and ChangePasswordForm checks
    // `not password.strip()`: whitespace-only counts as missing.
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let blank = "        ";
    let (s, b) = app
        .post_json("/change", change_body(&pw, blank, blank))
        .await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(
        b["field_errors"],
        json!({"new_password": ["Password not provided"], "new_password_confirm": ["Password not provided"]}),
        "a whitespace-only new password must not be accepted"
    );
    let (s, b) = app
        .post_json("/change", change_body("   ", NEW_PW, NEW_PW))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password not provided")
        )
    );
    app.logout().await;
    assert_eq!(
        app.try_login(&email, &pw).await,
        Status::Ok,
        "password unchanged"
    );
}

#[rocket::async_test]
async fn change_password_renews_the_remember_cookie() {
    let (app, other) = twin_apps(setup().await).await;
    let (email, pw) = app.confirmed_user().await;
    let (s, _) = app
        .post_json(
            "/login",
            json!({"email": email, "password": pw, "remember": true}),
        )
        .await;
    assert_eq!(s, Status::Ok);
    let old = app
        .client
        .cookies()
        .get("remember_token")
        .expect("remember cookie")
        .clone();
    let r = app
        .client
        .post("/change")
        .header(ContentType::JSON)
        .header(Header::new(
            "X-XSRF-Token",
            app.csrf_cookie().expect("csrf cookie"),
        ))
        .body(change_body(&pw, NEW_PW, NEW_PW).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let new = r
        .cookies()
        .get("remember_token")
        .expect("a new remember cookie")
        .clone();
    assert_ne!(new.value(), old.value());
    let remembered = |c: rocket::http::Cookie<'static>| {
        other
            .client
            .get("/")
            .header(Header::new("Accept", "application/json"))
            .cookie(c)
            .dispatch()
    };
    assert_eq!(
        remembered(old).await.status(),
        Status::Unauthorized,
        "old remember cookie ended"
    );
    assert_eq!(
        remembered(new).await.status(),
        Status::Ok,
        "new remember cookie works alone"
    );
}

#[rocket::async_test]
async fn change_password_requires_authentication() {
    let app = app().await;
    let (s, b) = app
        .post_json("/change", change_body("whatever1", NEW_PW, NEW_PW))
        .await;
    assert_eq!((s, b), (Status::Unauthorized, json!({"errors": [UNAUTHN]})));
    let (s, b) = app.get_json("/change").await;
    assert_eq!((s, b), (Status::Unauthorized, json!({"errors": [UNAUTHN]})));
    let r = app
        .client
        .get("/change")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(r.headers().get_one("Location"), Some("/login?next=/change"));
}

#[rocket::async_test]
async fn change_password_needs_csrf_with_a_session() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app
        .post_json_no_csrf("/change", change_body(&pw, NEW_PW, NEW_PW))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
    assert!(app.all_mail().await.is_empty());
    assert_eq!(app.text("/").await.0, Status::Ok, "still logged in");
    app.logout().await;
    assert_eq!(app.try_login(&email, NEW_PW).await, Status::BadRequest);
    assert_eq!(
        app.try_login(&email, &pw).await,
        Status::Ok,
        "password unchanged"
    );
}

#[rocket::async_test]
async fn change_password_with_an_auth_token_needs_no_csrf() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    let r = app
        .client
        .post("/change")
        .header(ContentType::JSON)
        .header(Header::new("X-Auth-Token", token))
        .body(change_body(&pw, NEW_PW, NEW_PW).to_string())
        .dispatch()
        .await;
    let (s, b) = json_of(r).await;
    assert_eq!(s, Status::Ok, "{b}");
    app.logout().await;
    assert_eq!(app.login(&email, NEW_PW).await.0, Status::Ok);
}

// ---- Password policy through the app ------------------------------------

async fn app_with_config(extra: Figment) -> App {
    let mut s = setup().await;
    s.opts.extra = Some(extra);
    app_with(s, |r| r).await
}

async fn register_with(app: &App, pw: &str) -> (Status, Value) {
    app.post_json(
        "/register",
        json!({"email": unique_email(), "password": pw, "password_confirm": pw}),
    )
    .await
}

#[rocket::async_test]
async fn zxcvbn_complexity_checker() {
    let app =
        app_with_config(Figment::new().merge(("security.password_complexity_checker", "zxcvbn")))
            .await;
    // zxcvbn's own warning is returned when it has one (as Flask-Security does)...
    let (s, b) = register_with(&app, "password").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "This is a top-10 common password.")
        )
    );
    let (s, b) = register_with(&app, "password1").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "This is a very common password.")
        )
    );
    // ...else Flask-Security's PASSWORD_TOO_SIMPLE.
    let (s, b) = register_with(&app, "kq8vz3").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password not complex enough")
        )
    );
    // The length check comes first.
    assert_eq!(
        register_with(&app, "abc").await.1,
        field_error("password", "Password must be at least 6 characters")
    );
    // The user's own email counts against the password.
    let email = unique_email();
    let local = email.split('@').next().unwrap_or_default().to_string();
    let (s, _) = app
        .post_json(
            "/register",
            json!({"email": email, "password": local, "password_confirm": local}),
        )
        .await;
    assert_eq!(s, Status::BadRequest, "password = the email's local part");
    let (s, b) = register_with(&app, "correct horse battery staple 93").await;
    assert_eq!(s, Status::Ok, "{b}");

    // /change applies it to new_password.
    let (email, pw) = (unique_email(), "correct horse battery staple 93");
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": pw, "password_confirm": pw}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let token = link_token(&app.mail(&email, "Welcome").await.text, "/confirm");
    assert_eq!(
        location(&app.client.get(format!("/confirm/{token}")).dispatch().await).0,
        "/confirmed"
    );
    assert_eq!(app.login(&email, pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json("/change", change_body(pw, "password", "password"))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("new_password", "This is a top-10 common password.")
        )
    );
    let strong = "violet-Tractor-anchor-59";
    assert_eq!(
        app.post_json("/change", change_body(pw, strong, strong))
            .await
            .0,
        Status::Ok
    );
}

/// SHA-1 (hex, uppercase) of the test passwords, precomputed.
const BREACHED_PW: (&str, &str) = (
    "breached-pass-1",
    "2F2796C78D7BD7C229A823416C11EDC8092E84F8",
);
const CLEAN_PW: (&str, &str) = ("clean-pass-42", "3BD5ABD826BD43A578F0985C44070527B37E16EF");
const COUNTED_PW: (&str, &str) = ("counted-pass-3", "C86BA87B50A3FFFF461C82478042977F5BCA968A");

/// What the fake range API was asked: (path, `Add-Padding` header).
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(String, Option<String>)>>>;

/// A tiny k-anonymity range API on 127.0.0.1: `/range/<PREFIX>` answers the
/// suffixes of the breached and counted passwords (with counts 7 and 3) when
/// their prefix is asked for, plus padding lines with count 0.
async fn range_server() -> (String, Seen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Seen::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or_default()
                    .to_string();
                let padding = head.lines().find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.eq_ignore_ascii_case("add-padding"))
                        .map(|(_, v)| v.trim().to_string())
                });
                let prefix = path.rsplit('/').next().unwrap_or_default().to_string();
                let mut body = String::from("0000000000000000000000000000000000A:0\r\n");
                for (hash, count) in [(BREACHED_PW.1, 7), (COUNTED_PW.1, 3)] {
                    if hash.starts_with(&prefix) {
                        body.push_str(&format!("{}:{count}\r\n", &hash[5..]));
                    }
                }
                body.push_str("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:0\r\n");
                if let Ok(mut v) = log.lock() {
                    v.push((path, padding));
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/range/"), seen)
}

/// A URL nothing listens on.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    format!("http://{addr}/range/")
}

fn breached_config(mode: &str, url: &str) -> Figment {
    Figment::new()
        .merge(("security.password_check_breached", mode))
        .merge(("security.password_breached_url", url))
}

#[rocket::async_test]
async fn breached_passwords_are_rejected() {
    let (url, seen) = range_server().await;
    let app = app_with_config(breached_config("strict", &url)).await;
    let (s, b) = register_with(&app, BREACHED_PW.0).await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password on breached list")
        )
    );
    // Only the first five hex digits of the SHA-1 leave the app, padded.
    let asked = seen.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(
        asked,
        vec![(
            format!("/range/{}", &BREACHED_PW.1[..5]),
            Some("true".to_string())
        )]
    );
    // Any count at or above the default threshold (1) is breached.
    assert_eq!(
        register_with(&app, COUNTED_PW.0).await.1,
        field_error("password", "Password on breached list")
    );
    let (s, b) = register_with(&app, CLEAN_PW.0).await;
    assert_eq!(s, Status::Ok, "{b}");

    // /change and /reset check new passwords too.
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json("/change", change_body(&pw, BREACHED_PW.0, BREACHED_PW.0))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("new_password", "Password on breached list")
        )
    );
    app.logout().await;
    assert_eq!(
        app.post_json("/reset", json!({"email": email})).await.0,
        Status::Ok
    );
    let token = link_token(
        &app.mail(&email, "Password reset instructions").await.text,
        "/reset",
    );
    let (s, b) = app
        .post_json(
            &format!("/reset/{token}"),
            json!({"password": BREACHED_PW.0, "password_confirm": BREACHED_PW.0}),
        )
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password on breached list")
        )
    );
}

#[rocket::async_test]
async fn breached_count_threshold_is_configurable() {
    let (url, _) = range_server().await;
    let app = app_with_config(
        breached_config("strict", &url).merge(("security.password_breached_count", 5)),
    )
    .await;
    assert_eq!(
        register_with(&app, COUNTED_PW.0).await.0,
        Status::Ok,
        "seen 3 times, threshold 5"
    );
    assert_eq!(
        register_with(&app, BREACHED_PW.0).await.1,
        field_error("password", "Password on breached list")
    );
}

#[rocket::async_test]
async fn breached_site_unreachable_strict_rejects() {
    let url = dead_url().await;
    let app = app_with_config(breached_config("strict", &url)).await;
    let (s, b) = register_with(&app, CLEAN_PW.0).await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Failed to contact breached passwords site")
        )
    );
}

#[rocket::async_test]
async fn breached_site_unreachable_best_effort_accepts() {
    let url = dead_url().await;
    let app = app_with_config(
        Figment::new()
            .merge(("security.password_check_breached", true))
            .merge(("security.password_breached_url", url.as_str())),
    )
    .await;
    let (s, b) = register_with(&app, CLEAN_PW.0).await;
    assert_eq!(s, Status::Ok, "{b}");
    // Best effort still rejects what the site does list.
    let (listing, _) = range_server().await;
    let app = app_with_config(breached_config("true", &listing)).await;
    assert_eq!(
        register_with(&app, BREACHED_PW.0).await.1,
        field_error("password", "Password on breached list")
    );
}

#[rocket::async_test]
async fn change_notice_mail_offers_the_forgot_password_link() {
    // Flask-Security's change_notice template: with RECOVERABLE on, "If you did
    // not change your password, click the link below to reset it." and the
    // absolute URL of the forgot-password page.
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(
        app.post_json("/change", change_body(&pw, NEW_PW, NEW_PW))
            .await
            .0,
        Status::Ok
    );
    let mail = app.mail(&email, "Your password has been changed").await;
    assert!(
        mail.text.contains("Your password has been changed."),
        "{}",
        mail.text
    );
    assert!(
        mail.text
            .contains("If you did not change your password, click the link below to reset it."),
        "{}",
        mail.text
    );
    assert!(
        mail.text.contains("http://localhost/reset"),
        "{}",
        mail.text
    );
}
