//! `cargo run -p fs_quickstart`: the quickstart on `$DATABASE_URL` (default
//! `fs_quickstart.db`), mails printed to the console.

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::var("DATABASE_URL").unwrap_or_else(|_| "fs_quickstart.db".into());
    let rocket = fs_quickstart::build(&db, flask_security_rs::Clock::new()).await?;
    let _ = rocket.launch().await?;
    Ok(())
}
