//! Compile-time behaviour of the route attributes and derives: every macro
//! error (`ui/fail`) and a working use of each macro (`ui/pass`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
