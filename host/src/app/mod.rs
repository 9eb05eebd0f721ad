//! Running tenant apps: the processor that moves records through the stages, the worker that
//! feeds it from Kafka and drains it into the sinks, and the handle operators steer it by.

mod checkpointing;
mod cpu;
mod handle;
mod launch;
mod links;
mod operator;
pub mod processor;
pub mod replay;
mod supervisor;
mod worker;

pub use crate::sink::Output;
pub use cpu::CpuShare;
pub use handle::{AppHandle, AppState, AppStatus, Control, Deployed, Reply};
pub use launch::{Apps, LaunchError, Launcher};
pub use operator::Operator;
pub use processor::{
    compatible, system_clock, Message, Processor, Quotas, SwapError, Swapped, WallClock,
};
pub use worker::{Runner, RunnerSettings};
