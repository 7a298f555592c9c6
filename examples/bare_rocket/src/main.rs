//! The quickstart's JSON answers from plain Rocket routes, without
//! `flask_security_rs`: the baseline `bench/http.sh` compares the quickstart
//! with. Same Rocket settings as the quickstart (`ROCKET_PORT`,
//! `ROCKET_LOG_LEVEL`, default workers); no database, no guards, no cookies.
//!
//! | route | answers like the quickstart's |
//! |---|---|
//! | `GET /api/protected` | `GET /api/protected` with the admin's auth token |
//! | `GET /api/data` | `GET /api/data` with the admin's session cookie |
//! | `GET /login` | anonymous `GET /login` with `Accept: application/json` (same body size) |
//! | `GET /unauth` | `GET /api/protected` without credentials (401) |
//! | `GET /login-headers` | anonymous `GET /login`, with its headers too: the two `Set-Cookie` (constant values of the same lengths), `Cache-Control` and `Vary` |
//!
//! `/login-headers` prices the part of the quickstart's `/login` answer
//! that is Rocket and hyper handling its headers, with no library code.

use rocket::http::Status;
use rocket::serde::json::Json;
use rocket::{get, launch, routes};
use serde_json::{Value, json};

/// Stands in for the signed CSRF token of the quickstart's `/login` answer:
/// the same length (91 characters), so both bodies are 184 bytes.
const CSRF_TOKEN: &str =
    "IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAi.AAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAA";

#[get("/api/protected")]
fn api_protected() -> Json<Value> {
    let permissions = ["admin-read", "admin-write", "user-read", "user-write"];
    Json(json!({"message": "Token authenticated", "user_id": 1, "permissions": permissions}))
}

#[get("/api/data")]
fn api_data() -> Json<Value> {
    Json(json!({"message": "API data", "user": "admin@example.com"}))
}

#[get("/login")]
fn login() -> Json<Value> {
    Json(json!({
        "meta": {"code": 200},
        "response": {"csrf_token": CSRF_TOKEN, "identity_attributes": ["email", "username"]}
    }))
}

/// A sealed `session` cookie's length in the quickstart's `/login` answer.
const SESSION_COOKIE: &str = "session=F3jaOMGG1IlfJ03m8e4zHkwN_glpdvTfNQ08aRrBog1d2Awui_s1Ciptldjsb3BHhKWKoXvT4IIRwTTSIb8jbvJwE6pSSJulhY7xdL4NW54P9Nrrh8_XApxozxlaRGEBuwzp0cXhhg; HttpOnly; SameSite=Strict; Path=/";

/// The anonymous `/login` answer with the quickstart's headers.
struct WithHeaders(Json<Value>);

impl<'r> rocket::response::Responder<'r, 'static> for WithHeaders {
    fn respond_to(self, req: &'r rocket::Request<'_>) -> rocket::response::Result<'static> {
        let mut res = self.0.respond_to(req)?;
        res.set_raw_header("Cache-Control", "private, no-store");
        res.set_raw_header("Vary", "Cookie");
        res.adjoin_raw_header(
            "Set-Cookie",
            format!("XSRF-TOKEN={CSRF_TOKEN}; SameSite=Strict; Secure; Path=/"),
        );
        res.adjoin_raw_header("Set-Cookie", SESSION_COOKIE);
        Ok(res)
    }
}

#[get("/login-headers")]
fn login_headers() -> WithHeaders {
    WithHeaders(login())
}

#[get("/unauth")]
fn unauth() -> (Status, Json<Value>) {
    (
        Status::Unauthorized,
        Json(json!({
            "meta": {"code": 401},
            "response": {"errors": ["You must sign in to view this resource."]}
        })),
    )
}

#[launch]
fn rocket() -> _ {
    // The workspace's Rocket has private cookies compiled in, so a release
    // build refuses to start without a secret key; these routes set no
    // cookie, so any key will do (`ROCKET_SECRET_KEY` still wins).
    let figment = rocket::Config::figment().join(("secret_key", vec![0x5au8; 64]));
    rocket::custom(figment).mount(
        "/",
        routes![api_protected, api_data, login, login_headers, unauth],
    )
}

#[cfg(test)]
mod tests {
    use rocket::http::Status;
    use rocket::local::blocking::Client;

    #[test]
    fn bodies_match_the_quickstart_sizes() {
        let client = Client::tracked(super::rocket()).expect("rocket");
        let login = client.get("/login").dispatch();
        assert_eq!(login.status(), Status::Ok);
        assert_eq!(login.into_string().expect("body").len(), 184);
        let with = client.get("/login-headers").dispatch();
        assert_eq!(with.headers().get("Set-Cookie").count(), 2);
        assert_eq!(with.headers().get_one("Vary"), Some("Cookie"));
        assert_eq!(with.into_string().expect("body").len(), 184);
        let unauth = client.get("/unauth").dispatch();
        assert_eq!(unauth.status(), Status::Unauthorized);
        assert_eq!(unauth.into_string().expect("body").len(), 87);
        let protected = client.get("/api/protected").dispatch();
        assert_eq!(
            protected.into_string().expect("body"),
            r#"{"message":"Token authenticated","user_id":1,"permissions":["admin-read","admin-write","user-read","user-write"]}"#
        );
        let data = client.get("/api/data").dispatch();
        assert_eq!(
            data.into_string().expect("body"),
            r#"{"message":"API data","user":"admin@example.com"}"#
        );
    }
}
