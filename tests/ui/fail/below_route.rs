use flask_security_rs::{auth_required, roles_required};
use rocket::{get, post};

#[get("/")]
#[auth_required]
fn index() -> &'static str {
    "hello"
}

#[post("/admin")]
#[roles_required("admin")]
fn admin() -> &'static str {
    "hello"
}

fn main() {}
