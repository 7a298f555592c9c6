use flask_security_rs::{permissions_accepted, roles_accepted, roles_required};
use rocket::get;

#[roles_required]
#[get("/no-args")]
fn no_args() -> &'static str {
    "hello"
}

#[roles_accepted()]
#[get("/empty-list")]
fn empty_list() -> &'static str {
    "hello"
}

#[permissions_accepted("user-read", "")]
#[get("/empty-name")]
fn empty_name() -> &'static str {
    "hello"
}

fn main() {}
