//! Hand-written components of the contract (`mysimbdp:tenant/app@0.1.0`) whose core module
//! does what no Rust guest would: several memories, a growing table, a describe() that points
//! the host at more data than the guest holds. Shared by the plugin's sandbox tests and the
//! end-to-end hostile tenants (`#[path]`), so both try the very same components.

/// A component of the contract whose core module holds `core` besides its memory and its
/// functions, which all trap except `describe` when `core` defines `$describe` itself.
pub fn contract_component(core: &str) -> Vec<u8> {
    let (describe, pages) = if core.contains("(func $describe") {
        ("(export \"describe\" (func $describe))", 600)
    } else {
        ("(func (export \"describe\") (result i32) unreachable)", 1)
    };
    let text = format!(
        r#"(component
  (core module $m
    (memory (export "memory") {pages})
    {core}
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
    {describe}
    (func (export "filter") (param i32 i32 i32) (result i32) unreachable)
    (func (export "accumulate") (param i32 i32 i32 i32 i32) (result i32) unreachable)
    (func (export "merge") (param i32 i32 i32 i32) unreachable)
    (func (export "emit") (param i32 i32) (result i32) unreachable)
    (func (export "close") (param i32 i32) unreachable)
    (func (export "snapshot") (param i32 i32) (result i32) unreachable)
    (func (export "restore") (param i32 i32 i32 i32 i32 i32) (result i32) unreachable)
  )
  (core instance $i (instantiate $m))
  (type $field-type' (enum "boolean" "integer" "double" "text" "timestamp"))
  (export $field-type "field-type" (type $field-type'))
  (type $field' (record (field "name" string) (field "kind" $field-type)))
  (export $field "field" (type $field'))
  (type $column' (variant (case "booleans" (list bool)) (case "integers" (list s64))
    (case "doubles" (list float64)) (case "texts" (list string)) (case "timestamps" (list s64))))
  (export $column "column" (type $column'))
  (type $batch' (record (field "rows" u32) (field "columns" (list $column))))
  (export $batch "batch" (type $batch'))
  (type $time-format' (enum "date" "rfc3339" "epoch-millis" "epoch-seconds"))
  (export $time-format "time-format" (type $time-format'))
  (type $time-field' (record (field "name" string) (field "format" $time-format)))
  (export $time-field "time-field" (type $time-field'))
  (type $event-time' (variant (case "ingestion") (case "field" $time-field)))
  (export $event-time "event-time" (type $event-time'))
  (type $sliding' (record (field "size-ms" u64) (field "slide-ms" u64)))
  (export $sliding "sliding" (type $sliding'))
  (type $window' (variant (case "tumbling" u64) (case "sliding" $sliding) (case "session" u64)))
  (export $window "window" (type $window'))
  (type $emit-mode' (enum "on-update" "on-close" "both"))
  (export $emit-mode "emit-mode" (type $emit-mode'))
  (type $app-info' (record (field "name" string) (field "version" string) (field "table" string)
    (field "inputs" (list $field)) (field "key-field" string) (field "event-time" $event-time)
    (field "window" $window) (field "watermark-delay-ms" u64) (field "allowed-lateness-ms" u64)
    (field "emit" $emit-mode) (field "update-interval-ms" u64) (field "outputs" (list $field))
    (field "state-version" u32) (field "has-filter" bool)))
  (export $app-info "app-info" (type $app-info'))
  (type $states' (record (field "offsets" (list u32)) (field "bytes" (list u8))))
  (export $states "states" (type $states'))
  (alias core export $i "memory" (core memory $mem))
  (alias core export $i "realloc" (core func $realloc))
  (func $describe (result $app-info)
    (canon lift (core func $i "describe") (memory $mem) (realloc $realloc)))
  (func $filter (param "input" $batch) (result (list bool))
    (canon lift (core func $i "filter") (memory $mem) (realloc $realloc)))
  (func $accumulate (param "slots" (list u32)) (param "input" $batch) (result (result (error string)))
    (canon lift (core func $i "accumulate") (memory $mem) (realloc $realloc)))
  (func $merge (param "into" (list u32)) (param "from" (list u32))
    (canon lift (core func $i "merge") (memory $mem) (realloc $realloc)))
  (func $emit (param "slots" (list u32)) (result $batch)
    (canon lift (core func $i "emit") (memory $mem) (realloc $realloc)))
  (func $close (param "slots" (list u32))
    (canon lift (core func $i "close") (memory $mem) (realloc $realloc)))
  (func $snapshot (param "slots" (list u32)) (result $states)
    (canon lift (core func $i "snapshot") (memory $mem) (realloc $realloc)))
  (func $restore (param "slots" (list u32)) (param "states" $states) (result (result (error string)))
    (canon lift (core func $i "restore") (memory $mem) (realloc $realloc)))
  (instance $app
    (export "describe" (func $describe)) (export "filter" (func $filter))
    (export "accumulate" (func $accumulate)) (export "merge" (func $merge))
    (export "emit" (func $emit)) (export "close" (func $close))
    (export "snapshot" (func $snapshot)) (export "restore" (func $restore)))
  (export "mysimbdp:tenant/app@0.1.0" (instance $app))
)"#
    );
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Three memories of 25 MiB each: every one under a 64 MiB limit, together above it.
pub const MULTI_MEMORY: &str = "(memory 400) (memory 400) (memory 400)";

/// A start function that grows a table by 100 million entries.
pub const TABLE_GROW: &str = "(table $t 1 funcref)
         (func $grow (drop (table.grow $t (ref.null func) (i32.const 100000000))))
         (start $grow)";

/// describe() returns six input fields whose names are all the same 16 MiB of the guest's
/// memory: 96 MiB for the host to copy out of a guest limited to 64 MiB.
pub const HUGE_DESCRIBE: &str = r#"(func $describe (result i32)
           (local $i i32)
           ;; app-info at 32 MiB; its `inputs` (offset 24) are 6 fields at 32 MiB + 4096
           (i32.store offset=24 (i32.const 0x2000000) (i32.const 0x2001000))
           (i32.store offset=28 (i32.const 0x2000000) (i32.const 6))
           (loop $fields
             ;; field i: name = (0, 16 MiB), kind 0
             (i32.store offset=4
               (i32.add (i32.const 0x2001000) (i32.mul (local.get $i) (i32.const 12)))
               (i32.const 0x1000000))
             (local.set $i (i32.add (local.get $i) (i32.const 1)))
             (br_if $fields (i32.lt_u (local.get $i) (i32.const 6))))
           (i32.const 0x2000000))"#;
