//! Links the skill with a 48 KiB stack instead of Rust's default 1 MiB: the
//! host resets the whole linear memory after every call, so a small memory
//! is a cheap call. Raise it if the skill recurses deeply (a stack overflow
//! traps; it cannot touch the skill's data).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=49152");
    }
}
