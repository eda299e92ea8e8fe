;; The cheapest skill the host can call: one core module, no function
;; imports, a single 64 KiB page, and `run` hands its input back without
;; reading it.
(component
  ;; `skill-error` comes from the package's `types` interface, as in every
  ;; skill; the instance carries only that type, so there is nothing to link.
  (import "darkfactory:skill/types@0.1.0" (instance $types
    (type $shape (record (field "code" string) (field "message" string)))
    (export "skill-error" (type (eq $shape)))))
  (alias export $types "skill-error" (type $skill-error))
  (core module $main
    (memory (export "memory") 1)
    ;; Bump allocator for the host's copy of the input; a call's instance
    ;; is thrown away afterwards, so nothing is freed.
    (global $next (mut i32) (i32.const 1024))
    (func (export "cabi_realloc")
      (param $old i32) (param $old_size i32) (param $align i32) (param $size i32)
      (result i32)
      (local $at i32)
      ;; at = (next + align - 1) & -align
      (local.set $at
        (i32.and
          (i32.sub (i32.add (global.get $next) (local.get $align)) (i32.const 1))
          (i32.sub (i32.const 0) (local.get $align))))
      (global.set $next (i32.add (local.get $at) (local.get $size)))
      (local.get $at))
    ;; result<string, skill-error> is returned through memory at 16:
    ;; the tag (0 = ok) at 16, the string's pointer at 20, its length at 24.
    (func (export "run") (param $ptr i32) (param $len i32) (result i32)
      (i32.store8 (i32.const 16) (i32.const 0))
      (i32.store (i32.const 20) (local.get $ptr))
      (i32.store (i32.const 24) (local.get $len))
      (i32.const 16)))
  (core instance $main (instantiate $main))
  (alias core export $main "memory" (core memory $memory))
  (alias core export $main "run" (core func $run))
  (alias core export $main "cabi_realloc" (core func $realloc))
  (func (export "run") (param "input" string) (result (result string (error $skill-error)))
    (canon lift (core func $run) (memory $memory) (realloc $realloc)))
)
