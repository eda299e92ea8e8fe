//! Hostile skill components, written in component WAT and assembled in the
//! test: the shapes an attacker can hand the host that a Rust skill never
//! has (many memories, hundreds of core instances, a start function that
//! never returns, errors and names of megabytes).
//!
//! Each is a real component of world `skill`: it exports `run: func(input:
//! string) -> result<string, skill-error>` and imports only the type-only
//! `types` instance, like `host/benches/floor.wat`.

/// The return area of `run` in the main module's memory: the result's tag
/// at 16, its payload from 20 (for `ok`, the string's pointer and length;
/// for `err`, the code's and the message's).
const RET: u32 = 16;

/// The parts of a component around the main module.
#[derive(Default)]
pub struct Spec {
    /// Pages of the main module's memory.
    pub pages: u32,
    /// Core modules defined before the main one (WAT).
    pub modules: String,
    /// Core instances created before the main one (WAT).
    pub instances: String,
    /// Functions of the main module (WAT).
    pub funcs: String,
    /// The body of the main module's `run` (WAT): it returns a pointer to
    /// the return area.
    pub run: String,
    /// The main module's start function, if any (WAT `(start $f)`).
    pub start: String,
}

/// Assembles `spec` into component bytes.
pub fn build(spec: &Spec) -> Vec<u8> {
    let text = format!(
        r#"(component
  (import "darkfactory:skill/types@0.1.0" (instance $types
    (type $shape (record (field "code" string) (field "message" string)))
    (export "skill-error" (type (eq $shape)))))
  (alias export $types "skill-error" (type $skill-error))
  {modules}
  (core module $main
    (memory (export "memory") {pages})
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $at i32)
      (local.set $at
        (i32.and
          (i32.sub (i32.add (global.get $next) (local.get $align)) (i32.const 1))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (local.get $at))
    {funcs}
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      {run})
    {start})
  {instances}
  (core instance $main (instantiate $main))
  (alias core export $main "memory" (core memory $memory))
  (alias core export $main "run" (core func $run))
  (alias core export $main "cabi_realloc" (core func $realloc))
  (func (export "run") (param "input" string) (result (result string (error $skill-error)))
    (canon lift (core func $run) (memory $memory) (realloc $realloc)))
)"#,
        modules = spec.modules,
        pages = spec.pages.max(1),
        funcs = spec.funcs,
        run = if spec.run.is_empty() {
            echo_run()
        } else {
            spec.run.clone()
        },
        start = spec.start,
        instances = spec.instances,
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("component WAT: {e}"))
}

/// A `run` that answers its input.
fn echo_run() -> String {
    format!(
        "(i32.store8 (i32.const {RET}) (i32.const 0))
         (i32.store (i32.const {}) (local.get $ptr))
         (i32.store (i32.const {}) (local.get $len))
         (i32.const {RET})",
        RET + 4,
        RET + 8
    )
}

/// An echo skill with `extra` more core instances, each of a module with a
/// memory of `pages` pages (no memory at all when `pages` is 0).
pub fn with_instances(extra: usize, pages: u32) -> Vec<u8> {
    let module = if pages == 0 {
        "(core module $extra)".to_string()
    } else {
        format!("(core module $extra (memory {pages}))")
    };
    build(&Spec {
        modules: module,
        instances: "(core instance (instantiate $extra))\n".repeat(extra),
        ..Spec::default()
    })
}

/// A skill whose `run` never returns (until its deadline stops it), with
/// `extra` more core instances of an empty module.
pub fn spinning(extra: usize) -> Vec<u8> {
    build(&Spec {
        modules: "(core module $extra)".into(),
        instances: "(core instance (instantiate $extra))\n".repeat(extra),
        run: "(loop $forever (br $forever)) (i32.const 0)".into(),
        ..Spec::default()
    })
}

/// A skill whose start function never returns: instantiating it runs until
/// its deadline.
pub fn slow_start() -> Vec<u8> {
    build(&Spec {
        funcs: "(func $spin (loop $forever (br $forever)))".into(),
        start: "(start $spin)".into(),
        ..Spec::default()
    })
}

/// A skill that returns its own error with a code of `code_len` and a
/// message of `message_len` bytes (all `a`).
pub fn loud_error(code_len: u32, message_len: u32) -> Vec<u8> {
    let base = 4096u32;
    let pages = (base + code_len + message_len) / 65536 + 1;
    build(&Spec {
        pages,
        run: format!(
            "(memory.fill (i32.const {base}) (i32.const 97) (i32.const {total}))
             (i32.store8 (i32.const {RET}) (i32.const 1))
             (i32.store (i32.const {p0}) (i32.const {base}))
             (i32.store (i32.const {p1}) (i32.const {code_len}))
             (i32.store (i32.const {p2}) (i32.const {message_at}))
             (i32.store (i32.const {p3}) (i32.const {message_len}))
             (i32.const {RET})",
            total = code_len + message_len,
            p0 = RET + 4,
            p1 = RET + 8,
            p2 = RET + 12,
            p3 = RET + 16,
            message_at = base + code_len,
        ),
        ..Spec::default()
    })
}

/// A skill that traps in a function whose name is `name_len` bytes long.
pub fn trap_in_long_name(name_len: usize) -> Vec<u8> {
    let name = "f".repeat(name_len);
    build(&Spec {
        funcs: format!("(func ${name} unreachable)"),
        run: format!("(call ${name}) (i32.const 0)"),
        ..Spec::default()
    })
}

/// A skill that answers `len` bytes of the digit `1` (a JSON number).
pub fn big_output(len: u32) -> Vec<u8> {
    let base = 4096u32;
    build(&Spec {
        pages: (base + len) / 65536 + 1,
        run: format!(
            "(memory.fill (i32.const {base}) (i32.const 49) (i32.const {len}))
             (i32.store8 (i32.const {RET}) (i32.const 0))
             (i32.store (i32.const {}) (i32.const {base}))
             (i32.store (i32.const {}) (i32.const {len}))
             (i32.const {RET})",
            RET + 4,
            RET + 8
        ),
        ..Spec::default()
    })
}

/// Two of the same component with different bytes (a custom section of
/// `nonce`): a different sha256, so a new compile.
pub fn with_nonce(bytes: &[u8], nonce: u64) -> Vec<u8> {
    let name = b"test-nonce";
    let payload = nonce.to_le_bytes();
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

/// An echo skill of about `bytes` bytes: the size of a Python or
/// JavaScript component (12–18 MB), compiled as fast as a small one.
pub fn large(bytes: usize) -> Vec<u8> {
    let mut component = build(&Spec::default());
    darkfactory::skill::append_custom_section(&mut component, "padding", &vec![0x5a; bytes]);
    component
}
