//! Links the skill with a 64 KiB stack instead of Rust's default 1 MiB: the
//! host resets the whole linear memory after every call, so a small memory is
//! a cheap call. 64 KiB is enough for the deepest JSON `serde_json` accepts
//! (128 levels, tested end to end); a stack overflow traps, it cannot touch
//! the skill's data (the stack sits below it).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=65536");
    }
}
