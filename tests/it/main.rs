//! Integration tests (one binary: see STACK.md on link times).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod csrf;
mod fairing;
mod fresh;
mod login;
mod protected;
mod register;
mod ui;
