//! The contract as released first, `mysimbdp:tenant@0.1.0`, frozen: the app describes itself
//! with one `describe` call returning `app-info`. Its data types are the host's own
//! (`crate::model`); only the description is particular to this version.

use wasmtime::component::{ComponentType, Lift, Lower};

/// The types of `mysimbdp:tenant/types@0.1.0`, as the host holds them.
pub mod types {
    use super::{ComponentType, Lift, Lower};
    pub use crate::model::{Batch, FieldType, States, TimeFormat};

    host_types_interface!("mysimbdp:tenant/types@0.1.0");

    #[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
    #[component(record)]
    pub struct Field {
        pub name: String,
        pub kind: FieldType,
    }

    #[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
    #[component(record)]
    pub struct TimeField {
        pub name: String,
        pub format: TimeFormat,
    }

    #[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
    #[component(variant)]
    pub enum EventTime {
        #[component(name = "ingestion")]
        Ingestion,
        #[component(name = "field")]
        Field(TimeField),
    }

    #[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq)]
    #[component(record)]
    pub struct Sliding {
        #[component(name = "size-ms")]
        pub size_ms: u64,
        #[component(name = "slide-ms")]
        pub slide_ms: u64,
    }

    #[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq)]
    #[component(variant)]
    pub enum Window {
        #[component(name = "tumbling")]
        Tumbling(u64),
        #[component(name = "sliding")]
        Sliding(Sliding),
        #[component(name = "session")]
        Session(u64),
    }

    #[derive(ComponentType, Lift, Lower, Debug, Clone, Copy, PartialEq, Eq)]
    #[component(enum)]
    #[repr(u8)]
    pub enum EmitMode {
        #[component(name = "on-update")]
        OnUpdate,
        #[component(name = "on-close")]
        OnClose,
        #[component(name = "both")]
        Both,
    }

    /// Everything the platform needs to run an app, as v0.1 describes it.
    #[derive(ComponentType, Lift, Lower, Debug, Clone, PartialEq)]
    #[component(record)]
    pub struct AppInfo {
        pub name: String,
        pub version: String,
        pub table: String,
        pub inputs: Vec<Field>,
        #[component(name = "key-field")]
        pub key_field: String,
        #[component(name = "event-time")]
        pub event_time: EventTime,
        pub window: Window,
        #[component(name = "watermark-delay-ms")]
        pub watermark_delay_ms: u64,
        #[component(name = "allowed-lateness-ms")]
        pub allowed_lateness_ms: u64,
        pub emit: EmitMode,
        #[component(name = "update-interval-ms")]
        pub update_interval_ms: u64,
        pub outputs: Vec<Field>,
        #[component(name = "state-version")]
        pub state_version: u32,
        #[component(name = "has-filter")]
        pub has_filter: bool,
    }
}

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "tenant-app",
    with: {
        "mysimbdp:tenant/types@0.1.0": types,
    },
});

/// The version's name, as components declare it.
pub const CONTRACT: &str = "mysimbdp:tenant@0.1.0";
