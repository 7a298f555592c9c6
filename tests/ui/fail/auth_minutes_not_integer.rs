use flask_security_rs::auth_required;
use rocket::get;

#[auth_required(within = "10")]
#[get("/string")]
fn string() -> &'static str {
    "hello"
}

#[auth_required("session", within = 1.5, grace = ten)]
#[get("/float")]
fn float() -> &'static str {
    "hello"
}

#[auth_required(within = 10, grace = -1)]
#[get("/negative-grace")]
fn negative_grace() -> &'static str {
    "hello"
}

fn main() {}
