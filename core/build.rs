//! Rebuilds this crate when a migration is added or changed: `sqlx::migrate!`
//! embeds `migrations/` at compile time but cannot ask Cargo to watch it.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
