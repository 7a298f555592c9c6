//! Protected routes: mechanisms, roles, permissions, tokens, deactivation.

use flask_security_rs::UserDatastoreExt;
use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

const UNAUTHN: &str = "You must sign in to view this resource.";
const UNAUTHZ: &str = "You do not have permission to view this resource.";

#[rocket::async_test]
async fn unauthenticated_json_is_401_html_redirects() {
    let app = app().await;
    for path in ["/", "/admin", "/user-data", "/api/data", "/api/protected"] {
        let (s, b) = app.get_json(path).await;
        assert_eq!(s, Status::Unauthorized, "{path}");
        assert_eq!(b, json!({"errors": [UNAUTHN]}), "{path}");
    }
    let r = app
        .client
        .get("/api/data?x=1&y=2")
        .header(Header::new("Accept", "text/html,*/*;q=0.8"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        r.headers().get_one("Location"),
        Some("/login?next=/api/data?x%3D1%26y%3D2")
    );
    // `*/*` alone counts as HTML.
    let r = app
        .client
        .get("/admin")
        .header(Header::new("Accept", "*/*"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
}

#[rocket::async_test]
async fn roles_and_permissions() {
    let app = app().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    assert_eq!(
        app.get_json("/admin").await,
        (Status::Forbidden, json!({"errors": [UNAUTHZ]}))
    );
    assert_eq!(
        app.text("/user-data").await,
        (Status::Ok, "User data for user@example.com".into())
    );
    let r = app
        .client
        .get("/admin")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Forbidden);

    let admin = app_with(setup().await, |r| r).await;
    assert_eq!(admin.login(ADMIN.0, ADMIN.1).await.0, Status::Ok);
    assert_eq!(
        admin.text("/admin").await,
        (Status::Ok, "Hello admin admin@example.com!".into())
    );

    // Registered users have no roles, hence no permissions.
    let fresh = app_with(setup().await, |r| r).await;
    let (email, pw) = fresh.confirmed_user().await;
    assert_eq!(fresh.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(fresh.get_json("/user-data").await.0, Status::Forbidden);
    assert_eq!(fresh.text("/").await.0, Status::Ok);
}

#[rocket::async_test]
async fn token_auth_header_query_and_body() {
    let app = app().await;
    let token = app.token(ADMIN.0, ADMIN.1).await;
    assert_eq!(
        app.text("/").await.0,
        Status::Unauthorized,
        "logout ended the session"
    );
    let r = app
        .client
        .get("/api/protected")
        .header(Header::new("X-Auth-Token", token.clone()))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let v: serde_json::Value =
        serde_json::from_str(&r.into_string().await.unwrap_or_default()).expect("json");
    assert_eq!(
        v["permissions"],
        json!(["admin-read", "admin-write", "user-read", "user-write"])
    );
    assert!(v["user_id"].is_i64());
    let r = app
        .client
        .get(format!("/api/data?auth_token={token}"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let r = app
        .client
        .post("/api/data")
        .header(rocket::http::ContentType::JSON)
        .body(json!({"auth_token": token}).to_string())
        .dispatch()
        .await;
    assert_eq!(
        r.status(),
        Status::Ok,
        "token in the JSON body, no CSRF needed for tokens"
    );
    // A tampered token is refused.
    let mut bad = token.clone();
    bad.pop();
    let r = app
        .client
        .get("/api/protected")
        .header(Header::new("X-Auth-Token", bad))
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
}

#[rocket::async_test]
async fn session_is_not_accepted_on_token_only_route() {
    let app = app().await;
    assert_eq!(app.login(ADMIN.0, ADMIN.1).await.0, Status::Ok);
    assert_eq!(app.app_json("/api/data").await.0, Status::Ok);
    assert_eq!(
        app.get_json("/api/protected").await,
        (Status::Unauthorized, json!({"errors": [UNAUTHN]}))
    );
}

#[rocket::async_test]
async fn tokens_expire_after_token_max_age() {
    let app = app().await;
    let token = app.token(USER.0, USER.1).await;
    let get = |t: String| {
        app.client
            .get("/api/protected")
            .header(Header::new("X-Auth-Token", t))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
    };
    assert_eq!(get(token.clone()).await.status(), Status::Ok);
    app.clock.advance(14 * 60);
    assert_eq!(get(token.clone()).await.status(), Status::Ok);
    app.clock.advance(2 * 60);
    assert_eq!(get(token).await.status(), Status::Unauthorized);
}

#[rocket::async_test]
async fn deactivating_or_rotating_ends_sessions_and_tokens() {
    use flask_security_rs::Lookup;
    use flask_security_rs::UserDatastore;
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let state = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds: &dyn UserDatastore = state.datastore();
    let user = ds
        .find_user(Lookup::Email(&email))
        .await
        .expect("db")
        .expect("user");
    let with_token = |t: String| {
        app.client
            .get("/api/data")
            .header(Header::new("X-Auth-Token", t))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
    };
    assert_eq!(with_token(token.clone()).await.status(), Status::Ok);
    ds.deactivate_user(user.id).await.expect("deactivate");
    assert_eq!(app.text("/").await.0, Status::Unauthorized, "session ended");
    ds.activate_user(user.id).await.expect("activate");
    app.logout().await;
    let (s, b) = app.login(&email, &pw).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(app.text("/").await.0, Status::Ok);
    ds.set_uniquifier(user.id).await.expect("rotate");
    assert_eq!(
        app.text("/").await.0,
        Status::Unauthorized,
        "session ended by rotation"
    );
    assert_eq!(
        with_token(token).await.status(),
        Status::Unauthorized,
        "token ended by rotation"
    );
}

#[rocket::async_test]
async fn basic_auth_is_not_accepted_by_default() {
    use base64::Engine;
    let app = app().await;
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", ADMIN.0, ADMIN.1));
    let r = app
        .client
        .get("/api/data")
        .header(Header::new("Authorization", format!("Basic {creds}")))
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
    assert!(r.headers().get_one("WWW-Authenticate").is_none());
}

#[rocket::async_test]
async fn session_user_wins_over_another_users_token() {
    let app = app().await;
    let admin_token = app.token(ADMIN.0, ADMIN.1).await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let r = app
        .client
        .get("/")
        .header(Header::new("X-Auth-Token", admin_token))
        .dispatch()
        .await;
    assert_eq!(
        r.into_string().await.as_deref(),
        Some("Hello user@example.com!")
    );
}

#[rocket::async_test]
async fn unknown_route_is_404() {
    let app = app().await;
    let r = app.client.get("/definitely-not-a-route").dispatch().await;
    assert_eq!(r.status(), Status::NotFound);
}

#[rocket::async_test]
async fn login_redirect_keeps_the_query_as_sent() {
    let app = app().await;
    for (query, next) in [
        ("q=%26&z=1", "/user-data?q%3D%2526%26z%3D1"),
        ("q=%C3%A9", "/user-data?q%3D%C3%A9"),
        ("q=a+b", "/user-data?q%3Da%2Bb"),
        ("q=%23x", "/user-data?q%3D%2523x"),
        ("q=%2F%3F%23", "/user-data?q%3D/?%2523"),
        ("q=a%20b", "/user-data?q%3Da%2520b"),
        ("q=%3D%25", "/user-data?q%3D%253D%2525"),
    ] {
        let r = app
            .client
            .get(format!("/user-data?{query}"))
            .header(Header::new("Accept", "text/html"))
            .dispatch()
            .await;
        assert_eq!(
            r.headers().get_one("Location"),
            Some(format!("/login?next={next}").as_str()),
            "{query}"
        );
    }
}

#[flask_security_rs::auth_required("basic")]
#[rocket::get("/basic")]
fn basic_only(user: flask_security_rs::CurrentUser) -> String {
    user.email.clone()
}

#[rocket::async_test]
async fn basic_routes_challenge_and_accept_credentials() {
    use base64::Engine;
    let app = app_with(setup().await, |r| {
        r.mount("/t", rocket::routes![basic_only])
    })
    .await;
    let r = app
        .client
        .get("/t/basic")
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    assert_eq!(
        r.headers().get_one("WWW-Authenticate"),
        Some("Basic realm=\"Login Required\"")
    );
    assert_eq!(
        json_of(r).await,
        (Status::Unauthorized, json!({"errors": [UNAUTHN]}))
    );
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", USER.0, USER.1));
    let r = app
        .client
        .get("/t/basic")
        .header(Header::new("Authorization", format!("Basic {creds}")))
        .dispatch()
        .await;
    assert_eq!(r.into_string().await.as_deref(), Some(USER.0));
    let bad = base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", USER.0));
    let r = app
        .client
        .get("/t/basic")
        .header(Header::new("Authorization", format!("Basic {bad}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
    // A disabled account cannot use basic auth either.
    let dis =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", DISABLED.0, DISABLED.1));
    let r = app
        .client
        .get("/t/basic")
        .header(Header::new("Authorization", format!("Basic {dis}")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
}
