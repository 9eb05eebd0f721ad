//! Fuzzing inside `cargo test`: the JSON decoder (through the reference app's declared fields)
//! and the TSV reader take any bytes, and JSON-shaped text built from the fields they look for,
//! without a panic, a hang or an answer that breaks their promises. `just test` runs a short
//! pass; `just fuzz` runs the same properties with `MYSIMBDP_FUZZ_CASES` cases each (10 million
//! there). Window assignment and event-time parsing have their properties beside their code
//! (`window::tests::properties`, `time::parse::tests`), run the same way.

mod common;

use std::cell::RefCell;
use std::sync::OnceLock;

use mysimbdp_host::cli::tsv;
use mysimbdp_host::plugin::{AppSpec, Limits, PluginEngine};
use mysimbdp_host::source::Decoder;
use mysimbdp_host::time::EventTime;
use proptest::prelude::*;
use proptest::string::string_regex;

/// Cases per property: a short pass unless `MYSIMBDP_FUZZ_CASES` says otherwise.
fn cases() -> u32 {
    std::env::var("MYSIMBDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

fn spec() -> &'static AppSpec {
    static SPEC: OnceLock<AppSpec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let engine = PluginEngine::new().expect("an engine");
        let app = engine
            .load(&common::component("reviews-daily"), Limits::default())
            .expect("the reference app");
        (*app.spec).clone()
    })
}

thread_local! {
    static DECODER: RefCell<Option<Decoder>> = const { RefCell::new(None) };
}

/// Decodes with one long-lived decoder, as a worker does; a decoded row is dropped again.
fn decode(bytes: &[u8]) -> Result<(), String> {
    DECODER.with_borrow_mut(|decoder| {
        let decoder = decoder.get_or_insert_with(|| Decoder::new(spec()));
        match decoder.decode(bytes, EventTime::from_millis(0)) {
            Ok(_) => {
                let key = decoder.key().to_owned();
                decoder.discard_last();
                if key.is_empty() {
                    return Err("a record was accepted with an empty key".into());
                }
                Ok(())
            }
            Err(error) => {
                if error.to_string().trim().is_empty() {
                    return Err("a refusal without a reason".into());
                }
                Ok(())
            }
        }
    })
}

/// JSON-shaped objects over the fields reviews-daily reads, with values of every kind.
fn json_like() -> impl Strategy<Value = String> {
    let field = r#""(product_id|review_date|star_rating|helpful_votes|total_votes|x|)""#;
    let value = r#"(-?[0-9]{0,21}(\.[0-9]{0,4})?([eE][+-]?[0-9]{0,4})?|"[^"\\]{0,12}"|"\\[u"\\/bfnrt0-9a-fA-F]{0,6}"|"20[0-9]{2}-[0-1][0-9]-[0-3][0-9]"|true|false|null|\[\]|\{\}|\[1,\{"a":\[\]\}\])"#;
    string_regex(&format!(
        r#"[ \t\n]{{0,2}}\{{({field}[ ]?:[ ]?{value},?){{0,8}}\}}[ ]{{0,2}}"#
    ))
    .expect("a valid pattern")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        prop_assert_eq!(decode(&bytes), Ok(()));
    }

    #[test]
    fn the_decoder_takes_any_json_shaped_text(text in json_like()) {
        prop_assert_eq!(decode(text.as_bytes()), Ok(()));
    }

    #[test]
    fn the_tsv_reader_takes_any_line(line in proptest::collection::vec(any::<u8>(), 0..512)) {
        let line = tsv::trim_line_end(&line);
        let _ = tsv::is_header(line);
        let key = tsv::key_of(line);
        prop_assert!(key.len() <= line.len());
        if let Some(columns) = tsv::split_columns(line) {
            prop_assert_eq!(columns.len(), 15);
        }
        let mut out = Vec::new();
        if tsv::write_message(line, &mut out) {
            let value: Result<serde_json::Value, _> = serde_json::from_slice(&out);
            prop_assert!(value.is_ok(), "a message that is not JSON: {}", String::from_utf8_lossy(&out));
        }
    }
}
