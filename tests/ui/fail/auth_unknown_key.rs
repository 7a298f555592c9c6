use flask_security_rs::auth_required;
use rocket::get;

#[auth_required("session", fresh_within = 5)]
#[get("/")]
fn index() -> &'static str {
    "hello"
}

#[auth_required(within)]
#[get("/no-value")]
fn no_value() -> &'static str {
    "hello"
}

#[auth_required(within = 5, within = 6)]
#[get("/twice")]
fn twice() -> &'static str {
    "hello"
}

fn main() {}
