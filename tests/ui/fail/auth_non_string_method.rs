use flask_security_rs::auth_required;
use rocket::get;

#[auth_required(token)]
#[get("/ident")]
fn ident() -> &'static str {
    "hello"
}

#[auth_required(1, 'b')]
#[get("/literal")]
fn literal() -> &'static str {
    "hello"
}

fn main() {}
