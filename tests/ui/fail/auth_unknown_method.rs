use flask_security_rs::auth_required;
use rocket::get;

#[auth_required("token", "cookie")]
#[get("/")]
fn index() -> &'static str {
    "hello"
}

fn main() {}
