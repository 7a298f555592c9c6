use flask_security_rs::{SecurityRole, SecurityUser};

#[derive(SecurityUser)]
pub struct Tuple(i32, String);

#[derive(SecurityRole)]
pub enum Role {
    Admin,
}

fn main() {}
