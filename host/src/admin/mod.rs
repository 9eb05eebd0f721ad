//! What operators and tenants see and steer: metrics, app status, drain, and the dashboard at
//! `/ui`. Every action and every app's data needs a token: the operator's, or the tenant's own.

mod actions;
pub mod deployed;
pub mod metrics;
pub mod recent;
mod server;
pub mod tenants;
pub mod tls;
pub mod tokens;
mod ui;

pub use server::{serve, Admin, Plugins};
pub use tokens::TenantTokens;
