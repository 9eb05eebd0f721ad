//! What an app declares about itself, turned into the contract's `app-info`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::types::{self, AppInfo, Field};
use crate::{Aggregate, Fields, Record};

/// Durations are milliseconds, as the contract carries them.
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
pub struct EventTime(types::EventTime);

/// How records are grouped in time, per key.
pub struct Window(types::Window);

/// When results are written.
pub struct EmitMode {
    mode: types::EmitMode,
    interval_ms: u64,
}

/// The words an `export_app!` call is written in.
pub mod dsl {
    use super::*;
    pub use super::{days, hours, minutes, seconds};
    use types::{Sliding, TimeField, TimeFormat};

    fn field(name: &str, format: TimeFormat) -> EventTime {
        EventTime(types::EventTime::Field(TimeField {
            name: name.into(),
            format,
        }))
    }
    /// `YYYY-MM-DD`, read as UTC midnight.
    pub fn date(name: &str) -> EventTime {
        field(name, TimeFormat::Date)
    }
    pub fn rfc3339(name: &str) -> EventTime {
        field(name, TimeFormat::Rfc3339)
    }
    pub fn epoch_millis(name: &str) -> EventTime {
        field(name, TimeFormat::EpochMillis)
    }
    pub fn epoch_seconds(name: &str) -> EventTime {
        field(name, TimeFormat::EpochSeconds)
    }
    /// The Kafka timestamp, for streams without a time of their own.
    pub fn ingestion() -> EventTime {
        EventTime(types::EventTime::Ingestion)
    }
    pub fn tumbling(size_ms: u64) -> Window {
        Window(types::Window::Tumbling(size_ms))
    }
    pub fn sliding(size_ms: u64, slide_ms: u64) -> Window {
        Window(types::Window::Sliding(Sliding { size_ms, slide_ms }))
    }
    pub fn session(gap_ms: u64) -> Window {
        Window(types::Window::Session(gap_ms))
    }
    /// A composite key, `key: keys(&["product_id", "month"])`: rows are grouped by all of these
    /// fields together. Only `mysimbdp batch` runs such an app; a stream is keyed by one field.
    pub fn keys(fields: &[&str]) -> String {
        fields.join(",")
    }
    /// Every changed window, at most once per interval: results in near real time.
    pub fn on_update(interval_ms: u64) -> EmitMode {
        EmitMode {
            mode: types::EmitMode::OnUpdate,
            interval_ms,
        }
    }
    /// Once per window, when the watermark closes it.
    pub fn on_close() -> EmitMode {
        EmitMode {
            mode: types::EmitMode::OnClose,
            interval_ms: 0,
        }
    }
    /// Updates while the window is open, and a last row when it closes.
    pub fn both(interval_ms: u64) -> EmitMode {
        EmitMode {
            mode: types::EmitMode::Both,
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
        }
    }

    pub fn into_info<A: Aggregate>(self) -> AppInfo {
        AppInfo {
            name: self.name,
            version: self.version,
            table: self.table,
            inputs: fields(A::Input::FIELDS),
            key_field: self.key,
            event_time: self.event_time.0,
            window: self.window.0,
            watermark_delay_ms: self.watermark_delay,
            allowed_lateness_ms: self.allowed_lateness,
            emit: self.emit.mode,
            update_interval_ms: self.emit.interval_ms,
            outputs: fields(A::Output::FIELDS),
            state_version: self.state_version,
            has_filter: self.has_filter,
        }
    }
}

fn fields(fields: Fields) -> Vec<Field> {
    fields
        .iter()
        .map(|(name, kind)| Field {
            name: (*name).into(),
            kind: *kind,
        })
        .collect()
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

impl IntoSetting<String> for &str {
    fn into_setting(self) -> String {
        self.into()
    }
}

/// Exports an app: its aggregate type and its declarations, as `key: value` pairs in any order.
///
/// Keys: `name`, `version`, `table`, `key` (required; a list of fields for a batch app's
/// composite key), `event_time`, `window`,
/// `watermark_delay`, `allowed_lateness`, `emit`, `state_version`, and `filter` (a function
/// from `&Input` to `bool`; rows it rejects never reach the accumulator).
#[macro_export]
macro_rules! export_app {
    (aggregate: $acc:ty, $($key:ident : $value:expr),* $(,)?) => {
        const _: () = {
            use $crate::bindings::exports::mysimbdp::tenant::app::Guest;
            use $crate::types::{AppInfo, Batch, States};

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
                fn describe() -> AppInfo {
                    #[allow(unused_imports)]
                    use $crate::settings_dsl::*;
                    let mut settings = $crate::Settings::new(
                        env!("CARGO_PKG_NAME"),
                        env!("CARGO_PKG_VERSION"),
                    );
                    $( $crate::__export_setting!(settings, $key, $value); )*
                    settings.into_info::<$acc>()
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
