//! What operators see and steer: metrics, app status, drain. Every action needs the token.

pub mod metrics;
mod server;

pub use server::{serve, Plugins};
