use flask_security_rs::{permissions_required, roles_required};
use rocket::get;

#[roles_required(admin)]
#[get("/ident")]
fn ident() -> &'static str {
    "hello"
}

#[permissions_required("user-read", 42)]
#[get("/number")]
fn number() -> &'static str {
    "hello"
}

fn main() {}
