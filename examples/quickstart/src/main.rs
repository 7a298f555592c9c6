//! `cargo run -p quickstart`: the example app on an embedded SQLite file,
//! mails printed to the console unless `SMTP_HOST` is set.

#[rocket::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rocket = quickstart::build(quickstart::Options::from_env()).await?;
    let _ = rocket.launch().await?;
    Ok(())
}
