//! Raw argon2id throughput with Flask-Security's parameters (64 MiB, 3
//! passes, 4 lanes), on THREADS threads for SECS seconds: the baseline the
//! load stage compares login throughput with.
//!
//! Usage: `argon2_rate [THREADS] [SECS]` (defaults: the number of cores, 5).
//! Prints `hashes_per_second=<n>`.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Params, Version};

fn main() {
    let mut args = std::env::args().skip(1);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let Ok(params) = Params::new(65536, 3, 4, Some(32)) else {
        eprintln!("bad argon2 parameters");
        std::process::exit(2);
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let counts: Vec<u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let params = params.clone();
                s.spawn(move || {
                    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                    let mut out = [0u8; 32];
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        if a.hash_password_into(
                            b"password-of-a-user",
                            b"sixteen-byte-slt",
                            &mut out,
                        )
                        .is_ok()
                        {
                            n += 1;
                        }
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
    });
    let total: u64 = counts.iter().sum();
    let rate = total as f64 / start.elapsed().as_secs_f64();
    println!("hashes_per_second={rate:.2}");
}
