//! Passwordless sign-in (`/login` mails a link, `GET /login/<token>`): the
//! link signs in once (also under concurrency), expires and is re-sent,
//! and the second factor still applies.

use futures::future::join_all;
use rocket::figment::Figment;
use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::Client;
use serde_json::json;

use crate::common::*;

async fn pl_app(extra: Figment) -> App {
    let mut s = setup().await;
    s.opts.extra = Some(
        Figment::new()
            .merge(("security.passwordless", true))
            .merge(extra),
    );
    app_with(s, |r| r).await
}

async fn link(app: &App, email: &str) -> String {
    app.sink.clear().await;
    let (s, b) = app
        .post_json_no_csrf("/login", json!({"email": email}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(b["user"], json!({}));
    let mail = app.mail(email, "Login instructions").await;
    link_token(&mail.text, "/login")
}

#[rocket::async_test]
async fn a_mailed_link_signs_in_once() {
    let app = pl_app(Figment::new()).await;
    let (email, _) = app.confirmed_user().await;
    let (s, b) = app
        .post_json_no_csrf("/login", json!({"email": unique_email()}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Specified user does not exist"]})
    );

    let token = link(&app, &email).await;
    let r = app.client.get(format!("/login/{token}")).dispatch().await;
    assert_eq!(r.status(), Status::Found);
    let (path, q) = location(&r);
    assert_eq!(path, "/");
    assert!(q.contains(&("email".into(), email.clone())), "{q:?}");
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {email}!")));
    app.logout().await;
    let r = app.client.get(format!("/login/{token}")).dispatch().await;
    let (path, q) = location(&r);
    assert_eq!(path, "/login-error");
    assert_eq!(
        q,
        [("error".to_string(), "Invalid login token.".to_string())]
    );
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn concurrent_uses_of_one_link_sign_in_once() {
    let app = pl_app(Figment::new()).await;
    let (email, _) = app.confirmed_user().await;
    let token = link(&app, &email).await;
    let bare = Client::untracked(rocket_for(app.options.clone()).await)
        .await
        .unwrap();
    let path = format!("/login/{token}");
    let results = join_all((0..12).map(|_| bare.get(path.as_str()).dispatch())).await;
    let targets: Vec<String> = results.iter().map(|r| location(r).0).collect();
    let ok = targets.iter().filter(|p| p.as_str() == "/").count();
    assert_eq!(ok, 1, "{targets:?}");
    assert!(
        targets.iter().all(|p| p == "/" || p == "/login-error"),
        "{targets:?}"
    );
}

#[rocket::async_test]
async fn an_expired_link_sends_a_new_one() {
    let app = pl_app(Figment::new()).await;
    let (email, _) = app.confirmed_user().await;
    let token = link(&app, &email).await;
    app.clock.advance(24 * 3600 + 1);
    app.sink.clear().await;
    let r = app.client.get(format!("/login/{token}")).dispatch().await;
    let (path, q) = location(&r);
    assert_eq!(path, "/login-error");
    assert!(
        q.iter()
            .any(|(k, v)| k == "error" && v.starts_with("You did not login within 1 day.")),
        "{q:?}"
    );
    let fresh = link_token(&app.mail(&email, "Login instructions").await.text, "/login");
    let r = app.client.get(format!("/login/{fresh}")).dispatch().await;
    assert_eq!(location(&r).0, "/");
}

#[rocket::async_test]
async fn the_second_factor_still_applies() {
    let extra = Figment::new()
        .merge(("security.two_factor", true))
        .merge(("security.totp_issuer", "Test"))
        .merge(("security.totp_secrets", json!({"1": "s"})));
    let app = pl_app(extra).await;
    let (email, _) = app.confirmed_user().await;
    let r = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({"email": email}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let token = link_token(&app.mail(&email, "Login instructions").await.text, "/login");
    // Without a method and not required: signs in.
    let r = app.client.get(format!("/login/{token}")).dispatch().await;
    assert_eq!(location(&r).0, "/");
    let (s, b) = app.post_json("/tf-setup", json!({"setup": "email"})).await;
    assert_eq!(s, Status::Ok, "{b}");
    let code = code_in(&app.mail(&email, "Two-Factor Login").await.text);
    assert_eq!(
        app.post_json("/tf-validate", json!({"code": code})).await.0,
        Status::Ok
    );
    app.logout().await;
    // A link is its signed text: one asked for within the same second as
    // the used one would be that same, used, link.
    app.clock.advance(1);
    let token = link(&app, &email).await;
    let r = app.client.get(format!("/login/{token}")).dispatch().await;
    assert_eq!(location(&r).0, "/tf-validate");
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}
