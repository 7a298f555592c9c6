use flask_security_rs::{anonymous_user_required, auth_required};

#[auth_required("session")]
fn helper() -> &'static str {
    "hello"
}

#[anonymous_user_required]
#[inline]
fn other() -> &'static str {
    "hello"
}

fn main() {
    helper();
    other();
}
