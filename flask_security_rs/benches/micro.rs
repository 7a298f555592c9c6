//! Micro-benchmarks of the per-request crypto: auth-token verification,
//! the `remember_token` cookie, the encrypted `session` cookie and CSRF
//! tokens. `cargo bench -p flask_security_rs --bench micro` (BENCHMARKS.md).

// Benchmark code: a broken setup should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use flask_security_rs::__bench::{SessionCookies, Signing};

const SECRET_KEY: &str = "conformance-secret-key-not-for-production";
const REMEMBER_SALT: &str = "remember-salt";
const UID: &str = "8d48f920a34f45cb87db6c8a58598551";
const NOW: i64 = 1_796_133_790;

fn tokens(c: &mut Criterion) {
    let signing = Signing::new(SECRET_KEY, REMEMBER_SALT);
    let now = NOW as f64 + 0.25;
    let token = signing.auth_token(UID, now);
    assert!(signing.verify_auth_token(&token, None, now).is_some());
    c.bench_function("auth_token/make", |b| {
        b.iter(|| signing.auth_token(black_box(UID), black_box(now)))
    });
    c.bench_function("auth_token/verify", |b| {
        b.iter(|| signing.verify_auth_token(black_box(&token), Some(3600), black_box(now + 5.0)))
    });

    let payload = format!("{UID}.VJ0b3Bt0y2bTn5mYq3fQm1YwZp1r8kQx6V0qJZc9eXs");
    let remember = signing.remember_cookie(&payload);
    assert_eq!(
        signing.verify_remember_cookie(&remember),
        Some(payload.clone())
    );
    c.bench_function("remember_cookie/verify", |b| {
        b.iter(|| signing.verify_remember_cookie(black_box(&remember)))
    });
}

fn session_cookie(c: &mut Criterion) {
    let cookies = SessionCookies::new(SECRET_KEY).expect("cookie key");
    let json = SessionCookies::sample_session(NOW);
    let header = cookies.seal(&json).expect("sealed cookie");
    assert_eq!(cookies.open(&header).as_deref(), Some(UID));
    c.bench_function("session_cookie/seal", |b| {
        b.iter(|| cookies.seal(black_box(&json)))
    });
    c.bench_function("session_cookie/open", |b| {
        b.iter(|| cookies.open(black_box(&header)))
    });
}

fn csrf(c: &mut Criterion) {
    let signing = Signing::new(SECRET_KEY, REMEMBER_SALT);
    let secret = "7eba7871f05d1369e269c1691baaf2ada2879885";
    let token = signing.csrf_token(secret, NOW);
    assert!(signing.verify_csrf(&token, secret, Some(3600), NOW + 5));
    c.bench_function("csrf/generate", |b| {
        b.iter(|| signing.csrf_token(black_box(secret), black_box(NOW)))
    });
    c.bench_function("csrf/validate", |b| {
        b.iter(|| signing.verify_csrf(black_box(&token), black_box(secret), Some(3600), NOW + 5))
    });
}

criterion_group!(benches, tokens, session_cookie, csrf);
criterion_main!(benches);
