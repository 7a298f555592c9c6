use flask_security_rs::anonymous_user_required;
use rocket::get;

#[anonymous_user_required("session")]
#[get("/login")]
fn login() -> &'static str {
    "hello"
}

fn main() {}
