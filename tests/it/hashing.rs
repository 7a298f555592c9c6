//! Bounded hashing: at most `password_hash_concurrency` hashes at once; the
//! rest queue, and past `password_hash_queue_timeout` get 503 + Retry-After.

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::LocalResponse;
use serde_json::json;

use crate::common::*;

async fn bounded_app(timeout: f64) -> App {
    let mut s = setup().await;
    // Real argon2 cost, so that a hash takes long enough to overlap.
    s.opts.fast_hash = false;
    s.opts.extra = Some(
        rocket::figment::Figment::new()
            .merge(("security.password_hash_concurrency", 1))
            .merge(("security.password_hash_queue_timeout", timeout)),
    );
    app_with(s, |r| r).await
}

async fn login<'c>(app: &'c App) -> LocalResponse<'c> {
    app.client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({"email": USER.0, "password": USER.1}).to_string())
        .dispatch()
        .await
}

#[rocket::async_test]
async fn saturated_hashing_answers_503_with_retry_after() {
    let app = bounded_app(0.0).await;
    let (a, b, c, d) = tokio::join!(login(&app), login(&app), login(&app), login(&app));
    let mut statuses = Vec::new();
    for r in [a, b, c, d] {
        let status = r.status();
        if status == Status::ServiceUnavailable {
            assert_eq!(r.headers().get_one("Retry-After"), Some("1"));
            let (_, body) = json_of(r).await;
            assert_eq!(body["errors"].as_array().map(Vec::len), Some(1), "{body}");
        }
        statuses.push(status);
    }
    assert!(statuses.contains(&Status::Ok), "{statuses:?}");
    assert!(
        statuses.contains(&Status::ServiceUnavailable),
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == Status::Ok || *s == Status::ServiceUnavailable),
        "never a 4xx: {statuses:?}"
    );
}

#[rocket::async_test]
async fn hashes_queue_within_the_wait() {
    let app = bounded_app(60.0).await;
    let (a, b, c) = tokio::join!(login(&app), login(&app), login(&app));
    for r in [a, b, c] {
        assert_eq!(r.status(), Status::Ok);
    }
}

#[rocket::async_test]
async fn saturated_basic_auth_is_503_not_401() {
    use base64::Engine as _;
    let app = bounded_app(0.0).await;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", USER.0, USER.1));
    let basic = || {
        app.client
            .get("/api/basic")
            .header(rocket::http::Header::new("Accept", "application/json"))
            .header(rocket::http::Header::new(
                "Authorization",
                format!("Basic {creds}"),
            ))
            .dispatch()
    };
    let (a, b, c, d) = tokio::join!(basic(), basic(), basic(), basic());
    let statuses: Vec<Status> = [a, b, c, d].iter().map(|r| r.status()).collect();
    assert!(statuses.contains(&Status::Ok), "{statuses:?}");
    assert!(
        statuses.contains(&Status::ServiceUnavailable),
        "{statuses:?}"
    );
    assert!(!statuses.contains(&Status::Unauthorized), "{statuses:?}");
}
