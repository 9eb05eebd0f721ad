//! What operators see and steer: metrics, app status, drain, and the dashboard at `/ui`. Every
//! action and every app's data needs the token.

pub mod metrics;
pub mod recent;
mod server;
mod ui;

pub use server::{serve, Plugins};
