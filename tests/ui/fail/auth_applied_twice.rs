use flask_security_rs::auth_required;
use rocket::get;

#[auth_required("session")]
#[auth_required("token")]
#[get("/")]
fn index() -> &'static str {
    "hello"
}

fn main() {}
