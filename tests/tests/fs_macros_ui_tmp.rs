#[path = "../it/ui.rs"]
mod ui;
