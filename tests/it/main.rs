//! Integration tests (one binary: see STACK.md on link times).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cache;
mod change_email;
mod changeable;
mod common;
mod csrf;
mod custom;
mod datastore;
mod failures;
mod fairing;
mod fresh;
mod fuzz;
mod generic;
mod hashing;
mod hosts;
mod identity;
mod input;
mod login;
mod outbox;
mod passwordless;
mod pipeline;
mod protected;
mod recoverable;
mod register;
mod sessions;
mod single_use;
mod throttle;
mod token_uniquifier;
mod two_factor;
mod unified_signin;
mod username;
