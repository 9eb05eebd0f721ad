//! What an app declares about itself, turned into the contract's manifest: a TOML document
//! (`mysimbdp:tenant@0.2.0`), so a new setting is a new key rather than a new call.

use alloc::format;
use alloc::string::String;

use crate::types::FieldType;
use crate::{Aggregate, Fields, Record};

/// Durations are milliseconds, as the manifest carries them.
pub const fn seconds(n: u64) -> u64 {
    n * 1000
}
pub const fn minutes(n: u64) -> u64 {
    seconds(n * 60)
}
pub const fn hours(n: u64) -> u64 {
    minutes(n * 60)
}
pub const fn days(n: u64) -> u64 {
    hours(n * 24)
}

/// Where a record's event time comes from.
pub enum EventTime {
    Ingestion,
    Field { name: String, format: &'static str },
}

/// How records are grouped in time, per key.
pub enum Window {
    Tumbling(u64),
    Sliding { size_ms: u64, slide_ms: u64 },
    Session(u64),
}

/// When results are written.
pub struct EmitMode {
    mode: &'static str,
    interval_ms: u64,
}

/// The words an `export_app!` call is written in.
pub mod dsl {
    use super::*;
    pub use super::{days, hours, minutes, seconds};

    fn field(name: &str, format: &'static str) -> EventTime {
        EventTime::Field {
            name: name.into(),
            format,
        }
    }
    /// `YYYY-MM-DD`, read as UTC midnight.
    pub fn date(name: &str) -> EventTime {
        field(name, "date")
    }
    pub fn rfc3339(name: &str) -> EventTime {
        field(name, "rfc3339")
    }
    pub fn epoch_millis(name: &str) -> EventTime {
        field(name, "epoch-millis")
    }
    pub fn epoch_seconds(name: &str) -> EventTime {
        field(name, "epoch-seconds")
    }
    /// The Kafka timestamp, for streams without a time of their own.
    pub fn ingestion() -> EventTime {
        EventTime::Ingestion
    }
    pub fn tumbling(size_ms: u64) -> Window {
        Window::Tumbling(size_ms)
    }
    pub fn sliding(size_ms: u64, slide_ms: u64) -> Window {
        Window::Sliding { size_ms, slide_ms }
    }
    pub fn session(gap_ms: u64) -> Window {
        Window::Session(gap_ms)
    }
    /// A composite key, `key: keys(&["product_id", "month"])`: rows are grouped by all of these
    /// fields together. Only `mysimbdp batch` runs such an app; a stream is keyed by one field.
    pub fn keys(fields: &[&str]) -> String {
        fields.join(",")
    }
    /// Every changed window, at most once per interval: results in near real time.
    pub fn on_update(interval_ms: u64) -> EmitMode {
        EmitMode {
            mode: "on-update",
            interval_ms,
        }
    }
    /// Once per window, when the watermark closes it.
    pub fn on_close() -> EmitMode {
        EmitMode {
            mode: "on-close",
            interval_ms: 0,
        }
    }
    /// Updates while the window is open, and a last row when it closes.
    pub fn both(interval_ms: u64) -> EmitMode {
        EmitMode {
            mode: "both",
            interval_ms,
        }
    }
}

/// An app's declarations, filled in by `export_app!`.
pub struct Settings {
    pub name: String,
    pub version: String,
    pub table: String,
    pub key: String,
    pub event_time: EventTime,
    pub window: Window,
    pub watermark_delay: u64,
    pub allowed_lateness: u64,
    pub emit: EmitMode,
    pub state_version: u32,
    pub has_filter: bool,
    /// The enrich stage's declaration (the `[enrich]` section of the manifest), as TOML.
    pub enrich: Option<String>,
}

impl Settings {
    /// Defaults: the crate's name and version, the name as table, one-minute tumbling windows
    /// on ingestion time, updates every second.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            table: name.replace('-', "_"),
            key: String::new(),
            event_time: dsl::ingestion(),
            window: dsl::tumbling(minutes(1)),
            watermark_delay: 0,
            allowed_lateness: 0,
            emit: dsl::on_update(seconds(1)),
            state_version: 1,
            has_filter: false,
            enrich: None,
        }
    }

    /// The manifest the platform reads (`host/src/plugin/manifest.rs` is its reader).
    pub fn into_manifest<A: Aggregate>(self) -> String {
        let event_time = match self.event_time {
            EventTime::Ingestion => String::from("{ ingestion = true }"),
            EventTime::Field { name, format } => {
                format!("{{ field = {}, format = \"{format}\" }}", quoted(&name))
            }
        };
        let window = match self.window {
            Window::Tumbling(size) => format!("{{ tumbling_ms = {size} }}"),
            Window::Sliding { size_ms, slide_ms } => {
                format!("{{ size_ms = {size_ms}, slide_ms = {slide_ms} }}")
            }
            Window::Session(gap) => format!("{{ session_gap_ms = {gap} }}"),
        };
        let mut manifest = format!(
            "name = {}\nversion = {}\ntable = {}\nkey = {}\nstate_version = {}\nfilter = {}\n\
             inputs = {}\noutputs = {}\nevent_time = {event_time}\nwindow = {window}\n\
             watermark_delay_ms = {}\nallowed_lateness_ms = {}\n\
             emit = {{ mode = \"{}\", interval_ms = {} }}\n",
            quoted(&self.name),
            quoted(&self.version),
            quoted(&self.table),
            quoted(&self.key),
            self.state_version,
            self.has_filter,
            fields(A::Input::FIELDS),
            fields(A::Output::FIELDS),
            self.watermark_delay,
            self.allowed_lateness,
            self.emit.mode,
            self.emit.interval_ms,
        );
        if let Some(enrich) = &self.enrich {
            manifest.push_str(&section("enrich", enrich));
        }
        manifest
    }
}

/// A TOML document as a section of the manifest: its top-level keys under `[name]`, its tables
/// under `[name.table]`.
fn section(name: &str, document: &str) -> String {
    let mut out = format!("\n[{name}]\n");
    for line in document.lines() {
        let trimmed = line.trim_start();
        if let Some(header) = trimmed.strip_prefix("[[") {
            out.push_str(&format!("[[{name}.{header}\n"));
        } else if let Some(header) = trimmed.strip_prefix('[') {
            out.push_str(&format!("[{name}.{header}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// A TOML basic string: quotes, backslashes and control characters escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn type_name(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Boolean => "boolean",
        FieldType::Integer => "integer",
        FieldType::Double => "double",
        FieldType::Text => "text",
        FieldType::Timestamp => "timestamp",
    }
}

fn fields(fields: Fields) -> String {
    let listed: alloc::vec::Vec<String> = fields
        .iter()
        .map(|(name, kind)| {
            format!(
                "{{ name = {}, type = \"{}\" }}",
                quoted(name),
                type_name(*kind)
            )
        })
        .collect();
    format!("[{}]", listed.join(", "))
}

/// Turns a setting's value into the type its field holds, so `table: "x"` and `key: "k"` read
/// naturally in the macro.
pub trait IntoSetting<T> {
    fn into_setting(self) -> T;
}

impl<T> IntoSetting<T> for T {
    fn into_setting(self) -> T {
        self
    }
}

impl IntoSetting<Option<String>> for &str {
    fn into_setting(self) -> Option<String> {
        Some(self.into())
    }
}

impl IntoSetting<String> for &str {
    fn into_setting(self) -> String {
        self.into()
    }
}

/// Exports an app: its aggregate type and its declarations, as `key: value` pairs in any order.
///
/// Keys: `name`, `version`, `table`, `key` (required; a list of fields for a batch app's
/// composite key), `event_time`, `window`, `watermark_delay`, `allowed_lateness`, `emit`,
/// `state_version`, `enrich` (the enrich stage's declaration as TOML, e.g.
/// `include_str!("../enrich.toml")`), and `filter` (a function
/// from `&Input` to `bool`; rows it rejects never reach the accumulator).
#[macro_export]
macro_rules! export_app {
    (aggregate: $acc:ty, $($key:ident : $value:expr),* $(,)?) => {
        const _: () = {
            use $crate::bindings::exports::mysimbdp::tenant::app::Guest;
            use $crate::types::{Batch, States};

            type Input = <$acc as $crate::Aggregate>::Input;

            struct App;

            /// Rows pass unless the app declares a `filter`; an inherent `keep` wins over this.
            trait KeepAll {
                fn keep(_: &Input) -> bool {
                    true
                }
            }
            impl KeepAll for App {}
            $( $crate::__export_filter!(App, Input, $key, $value); )*

            thread_local! {
                static SLOTS: ::core::cell::RefCell<$crate::Slots<$acc>> =
                    ::core::cell::RefCell::new(::core::default::Default::default());
            }

            impl Guest for App {
                fn manifest() -> $crate::__String {
                    #[allow(unused_imports)]
                    use $crate::settings_dsl::*;
                    let mut settings = $crate::Settings::new(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                    );
                    $( $crate::__export_setting!(settings, $key, $value); )*
                    settings.into_manifest::<$acc>()
                }
                fn filter(input: Batch) -> $crate::__Vec<bool> {
                    $crate::Slots::<$acc>::filter(&input, <App>::keep)
                }
                fn accumulate(slots: $crate::__Vec<u32>, input: Batch) -> Result<(), $crate::__String> {
                    SLOTS.with_borrow_mut(|s| s.accumulate(&slots, &input))
                }
                fn merge(into: $crate::__Vec<u32>, from: $crate::__Vec<u32>) {
                    SLOTS.with_borrow_mut(|s| s.merge(&into, &from))
                }
                fn emit(slots: $crate::__Vec<u32>) -> Batch {
                    SLOTS.with_borrow_mut(|s| s.emit(&slots))
                }
                fn close(slots: $crate::__Vec<u32>) {
                    SLOTS.with_borrow_mut(|s| s.close(&slots))
                }
                fn snapshot(slots: $crate::__Vec<u32>) -> States {
                    SLOTS.with_borrow_mut(|s| s.snapshot(&slots))
                }
                fn restore(slots: $crate::__Vec<u32>, states: States) -> Result<(), $crate::__String> {
                    SLOTS.with_borrow_mut(|s| s.restore(&slots, &states))
                }
            }

            $crate::bindings::export!(App with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_setting {
    ($s:ident, filter, $value:expr) => {
        $s.has_filter = true;
    };
    ($s:ident, key, $value:expr) => {
        $s.key = $crate::IntoSetting::into_setting($value);
    };
    ($s:ident, $key:ident, $value:expr) => {
        $s.$key = $crate::IntoSetting::into_setting($value);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_filter {
    ($app:ident, $input:ty, filter, $value:expr) => {
        impl $app {
            fn keep(input: &$input) -> bool {
                ($value)(input)
            }
        }
    };
    ($app:ident, $input:ty, $key:ident, $value:expr) => {};
}
