//! Running tenant apps: the processor that moves records through the stages, the worker that
//! feeds it from Kafka and drains it into the sinks, and the handle operators steer it by.

mod cpu;
mod launch;
pub mod processor;
pub mod replay;
mod runner;

pub use cpu::CpuShare;
pub use launch::{Apps, LaunchError, Launcher};
pub use processor::{
    system_clock, Message, Output, Processor, Quotas, SwapError, Swapped, WallClock,
};
pub use runner::{
    AppHandle, AppState, AppStatus, Control, Deployed, Reply, Runner, RunnerSettings,
};
