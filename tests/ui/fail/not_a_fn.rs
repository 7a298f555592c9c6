use flask_security_rs::{auth_required, permissions_required};

#[auth_required]
struct Page;

#[permissions_required("user-read")]
mod handlers {}

fn main() {
    let _ = Page;
}
