//! The one `bindgen!` of the host: Rust types for the `darkfactory:skill`
//! world. Every other module uses these generated types.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "skill",
    imports: { default: async | trappable },
    exports: { default: async },
});
