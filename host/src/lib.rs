//! mysimbdp: a multi-tenant stream analytics platform whose tenants' analytics are sandboxed
//! WebAssembly components. Records flow one way: `source` → `time` → `window` → `plugin` →
//! `sink`; `app` runs that flow for one tenant app, `admin` lets operators steer it.

pub mod admin;
pub mod app;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod names;
pub mod plugin;
pub mod sink;
pub mod source;
pub mod time;
pub mod window;
