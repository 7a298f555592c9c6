//! An app wired by hand: reference entities, configuration in the figment,
//! a URL prefix, custom failure handlers, a token expiry hook, and every
//! route macro at work.

use flask_security_rs::NewUser;
use flask_security_rs::UserDatastoreExt;
use flask_security_rs::entity::{role, user};
use flask_security_rs::{
    Category, Clock, CurrentUser, Message, Reply, SeaOrmDatastore, Security, UserDatastore,
    anonymous_user_required, auth_required, permissions_accepted, roles_accepted,
};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use serde_json::json;

use crate::common::*;

#[auth_required("basic")]
#[get("/basic")]
fn basic(user: CurrentUser) -> String {
    user.email.clone()
}

#[auth_required]
#[roles_accepted("editor", "author")]
#[get("/write")]
fn write() -> &'static str {
    "write"
}

#[auth_required]
#[permissions_accepted("doc-read", "doc-admin")]
#[get("/read")]
fn read() -> &'static str {
    "read"
}

#[anonymous_user_required]
#[get("/welcome")]
fn welcome() -> &'static str {
    "welcome, stranger"
}

/// CSRF is on for anonymous endpoints too by default: fetch a token first.
async fn csrf(client: &Client) -> String {
    let r = client
        .get("/auth/login")
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    let (_, b) = json_of(r).await;
    b["csrf_token"].as_str().expect("csrf").to_string()
}

struct Hand {
    client: Client,
    clock: Clock,
    email: String,
}

async fn hand_built() -> Hand {
    let db = migrated_db(|_| async {}).await;
    let ds = SeaOrmDatastore::<user::Model, role::Model>::new(db);
    let store: std::sync::Arc<dyn UserDatastore> = std::sync::Arc::new(ds);
    let role_name = format!("author-{}", uuid());
    let email = unique_email();
    store
        .create_role(&role_name, None, &["doc-read"])
        .await
        .expect("role");
    // The route attribute names the role literally; give the user that one too.
    store
        .find_or_create_role("author", &[])
        .await
        .expect("author role");

    let clock = Clock::new();
    let fig = cheap_hashing(rocket::Config::figment())
        .merge(("security.secret_key", "hand-secret"))
        .merge(("security.password_salt", "salt"))
        .merge(("security.url_prefix", "/auth"));
    let security = Security::with_datastore(store)
        .clock(clock.clone())
        .token_expiry(|_, now| now + 60)
        .unauthn_handler(|_req| {
            Reply::error(
                Status::Unauthorized,
                Message::text("custom: please sign in", Category::Error),
            )
        })
        .unauthz_handler(|_req| {
            Reply::error(
                Status::Forbidden,
                Message::text("custom: not for you", Category::Error),
            )
        });
    let rocket = rocket::custom(fig)
        .attach(security)
        .mount("/", routes![basic, write, read, welcome]);
    let client = Client::tracked(rocket).await.expect("rocket");
    let admin = flask_security_rs::Admin::of(client.rocket()).expect("state");
    let new = NewUser::new(email.clone()).roles([role_name.clone(), "author".to_string()]);
    admin.create_user(new, "hand-built-pw").await.expect("user");
    Hand {
        client,
        clock,
        email,
    }
}

#[rocket::async_test]
async fn prefix_handlers_expiry_and_macros() {
    let h = hand_built().await;
    // Library routes live under the prefix.
    assert_eq!(
        h.client.get("/login").dispatch().await.status(),
        Status::NotFound
    );
    let token = csrf(&h.client).await;
    let r = h
        .client
        .post("/auth/login?include_auth_token")
        .header(ContentType::JSON)
        .header(Header::new("X-CSRF-Token", token))
        .body(json!({"email": h.email, "password": "hand-built-pw"}).to_string())
        .dispatch()
        .await;
    let (s, b) = json_of(r).await;
    assert_eq!(s, Status::Ok, "{b}");
    let token = b["user"]["authentication_token"]
        .as_str()
        .expect("token")
        .to_string();

    // Macros at work with the session.
    let get = |p: &'static str| {
        h.client
            .get(p)
            .header(Header::new("Accept", "application/json"))
            .dispatch()
    };
    assert_eq!(
        get("/write").await.status(),
        Status::Ok,
        "roles_accepted: one of them is enough"
    );
    assert_eq!(
        get("/read").await.status(),
        Status::Ok,
        "permissions_accepted"
    );
    let r = get("/welcome").await;
    assert_eq!(
        r.status(),
        Status::BadRequest,
        "anonymous_user_required refuses a logged-in user"
    );
    h.client
        .post("/auth/logout")
        .header(ContentType::JSON)
        .body("{}")
        .dispatch()
        .await;
    assert_eq!(
        get("/welcome").await.into_string().await.as_deref(),
        Some("welcome, stranger")
    );

    // The app's handlers answer refusals.
    let (s, b) = json_of(get("/write").await).await;
    assert_eq!(
        (s, b),
        (
            Status::Unauthorized,
            json!({"errors": ["custom: please sign in"]})
        )
    );

    // Basic auth where the route asks for it, with the challenge.
    use base64::Engine;
    let creds =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:hand-built-pw", h.email));
    let r = h
        .client
        .get("/basic")
        .header(Header::new("Authorization", format!("Basic {creds}")))
        .dispatch()
        .await;
    assert_eq!(r.into_string().await, Some(h.email.clone()));
    let r = h
        .client
        .get("/basic")
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    // The app's unauthn handler owns the answer (no built-in challenge).
    assert_eq!(
        json_of(r).await,
        (
            Status::Unauthorized,
            json!({"errors": ["custom: please sign in"]})
        )
    );

    // The per-user expiry hook (`exp`) ends the token before token_max_age.
    let with_token = |t: String| {
        h.client
            .get("/read")
            .header(Header::new("Authentication-Token", t))
            .dispatch()
    };
    assert_eq!(with_token(token.clone()).await.status(), Status::Ok);
    h.clock.advance(61);
    assert_eq!(with_token(token).await.status(), Status::Unauthorized);
}

#[rocket::async_test]
async fn unauthz_handler_answers_403() {
    let h = hand_built().await;
    // A user without the roles or permissions.
    let rocket = h.client.rocket();
    let state = flask_security_rs::Admin::of(rocket).expect("state");
    let email = unique_email();
    state
        .create_user(NewUser::new(email.clone()), "plain-user-pw")
        .await
        .expect("user");
    let token = csrf(&h.client).await;
    let r = h
        .client
        .post("/auth/login")
        .header(ContentType::JSON)
        .header(Header::new("X-CSRF-Token", token))
        .body(json!({"email": email, "password": "plain-user-pw"}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let r = h
        .client
        .get("/read")
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    assert_eq!(
        json_of(r).await,
        (
            Status::Forbidden,
            json!({"errors": ["custom: not for you"]})
        )
    );
}
