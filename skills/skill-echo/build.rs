//! Links the skill with a 48 KiB stack instead of Rust's default 1 MiB: the
//! host resets the whole linear memory after every call, so a small memory is
//! a cheap call. 48 KiB holds the deepest JSON `serde_json` accepts (128
//! levels need ~36 KiB here; tested end to end), and with `echo`'s 12 KiB of
//! data the stack, the data and a small call's heap fit one 64 KiB page,
//! which makes a call ~10 % cheaper than with a 64 KiB stack (two pages;
//! `BENCH_COMPARE` in docs/benchmarks.md). A stack overflow traps, it cannot
//! touch the skill's data (the stack sits below it).
fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size=49152");
    }
}
