//! The one `bindgen!` of the host: Rust types for the `darkfactory:skill`
//! package, from its largest world (`skill-with-llm`: `skill` and `llm`;
//! both export the same `run`, so one `SkillPre` runs a component of
//! either). Every other module uses these generated types.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "skill-with-llm",
    imports: { default: async | trappable },
    exports: { default: async },
});
