//! Links the skill with a 128 KiB stack instead of Rust's default 1 MiB: the
//! host resets a small linear memory with one `memset`, so each call is
//! several times cheaper. A stack overflow still traps cleanly (the stack sits
//! below all data).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=131072");
    }
}
