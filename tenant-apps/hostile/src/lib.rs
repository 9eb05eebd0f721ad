//! A valid component of the contract that does something hostile when a record asks for it:
//! the sandbox tests feed it one act at a time and check that each is contained.

use mysimbdp_guest::prelude::*;

/// What a record asks the app to do.
pub mod act {
    pub const NOTHING: i64 = 0;
    pub const LOOP_FOREVER: i64 = 1;
    pub const EXHAUST_MEMORY: i64 = 2;
    pub const PANIC: i64 = 3;
    pub const READ_FILE: i64 = 4;
    pub const OPEN_SOCKET: i64 = 5;
    pub const READ_ENVIRONMENT_AND_CLOCK: i64 = 6;
    pub const OVERSIZED_OUTPUT: i64 = 7;
    /// Not hostile, only slow: ~100k loop turns per record, for backpressure tests.
    pub const SLOW: i64 = 8;
    /// Opens sockets until the process runs out of file descriptors (if it could).
    pub const SOCKET_FLOOD: i64 = 9;
    /// Sleeps for an hour: a blocking poll on the monotonic clock.
    pub const SLEEP: i64 = 10;
    /// A result row of 2 MiB: it fits the app's memory but neither Kafka nor a sane row.
    pub const LARGE_ROW: i64 = 11;
    /// Keeps 40 MiB in the window's state: its snapshot cannot fit a 64 MiB instance.
    pub const HUGE_STATE: i64 = 12;
}

record! {
    pub struct Order { act: i64 }
}

record! {
    /// What the app managed to do; -1 where it was refused.
    pub struct Loot {
        records: i64,
        file_bytes: i64,
        socket_connected: i64,
        environment_variables: i64,
        clock_seconds: i64,
        payload: String,
    }
}

state! {
    pub struct Attempts {
        records: i64,
        file_bytes: i64,
        socket_connected: i64,
        environment_variables: i64,
        clock_seconds: i64,
        oversized: bool,
        large: bool,
        hoard: String,
    }
}

fn read_file() -> i64 {
    match std::fs::read("/etc/passwd") {
        Ok(bytes) => bytes.len() as i64,
        Err(_) => -1,
    }
}

fn open_socket() -> i64 {
    match std::net::TcpStream::connect("127.0.0.1:9092") {
        Ok(_) => 1,
        Err(_) => -1,
    }
}

fn socket_flood() -> i64 {
    let mut sockets = Vec::new();
    while sockets.len() < 1_000_000 {
        match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(socket) => sockets.push(socket),
            Err(_) => break,
        }
    }
    sockets.len() as i64
}

fn clock_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(-1)
}

impl Aggregate for Attempts {
    type Input = Order;
    type Output = Loot;

    fn add(&mut self, order: &Order) {
        self.records += 1;
        match order.act {
            act::LOOP_FOREVER => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            act::EXHAUST_MEMORY => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 16 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            act::PANIC => panic!("the hostile app panics on purpose"),
            act::READ_FILE => self.file_bytes = read_file(),
            act::OPEN_SOCKET => self.socket_connected = open_socket(),
            act::READ_ENVIRONMENT_AND_CLOCK => {
                self.environment_variables = std::env::vars().count() as i64;
                self.clock_seconds = clock_seconds();
            }
            act::OVERSIZED_OUTPUT => self.oversized = true,
            act::LARGE_ROW => self.large = true,
            act::HUGE_STATE => self.hoard = "x".repeat(40 << 20),
            act::SOCKET_FLOOD => self.socket_connected = socket_flood(),
            act::SLEEP => std::thread::sleep(std::time::Duration::from_secs(3600)),
            act::SLOW => {
                let mut n: u64 = 0;
                for i in 0..100_000u64 {
                    n = std::hint::black_box(n.wrapping_add(i));
                }
                std::hint::black_box(n);
            }
            _ => {}
        }
    }

    fn merge(&mut self, other: Attempts) {
        self.records += other.records;
    }

    fn finish(&self) -> Loot {
        Loot {
            records: self.records,
            file_bytes: self.file_bytes,
            socket_connected: self.socket_connected,
            environment_variables: self.environment_variables,
            clock_seconds: self.clock_seconds,
            payload: if self.oversized {
                "x".repeat(24 << 20)
            } else if self.large {
                "x".repeat(2 << 20)
            } else {
                String::new()
            },
        }
    }
}

export_app! {
    aggregate: Attempts,
    name: "hostile",
    table: "hostile",
    key: "key",
    window: tumbling(minutes(1)),
    emit: on_close(),
}
