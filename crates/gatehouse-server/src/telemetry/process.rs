//! The standard `process_*` metrics of a Prometheus client (CPU time, memory, file
//! descriptors, threads, start time), read from `/proc/self` at each scrape. On a system
//! without `/proc` the collector exports nothing rather than zeros.

use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Collects the `process_*` metrics on each scrape.
#[derive(Debug)]
pub struct ProcessCollector {
    /// Unix time the process started (when the collector was made, at start-up).
    started: f64,
}

impl ProcessCollector {
    /// A collector for this process.
    pub fn new() -> Self {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self { started }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// What `/proc/self` says.
struct Reading {
    cpu_seconds: f64,
    resident_bytes: i64,
    virtual_bytes: i64,
    threads: i64,
    open_fds: Option<i64>,
    max_fds: Option<i64>,
}

/// Clock ticks per second of `/proc/self/stat`'s times: 100 on every Linux platform Rust
/// targets (`USER_HZ`, fixed by the kernel ABI).
const TICKS_PER_SECOND: f64 = 100.0;
fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: fields start after the last `)`.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    // Fields are numbered from 1 in proc(5), with `state` the 3rd: index = number - 3.
    let number = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<i64>().ok());
    let (utime, stime) = (number(14)?, number(15)?);
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let status_field = |name: &str| -> Option<i64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as i64);
    let max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))?
                .split_whitespace()
                .nth(3)?
                .parse()
                .ok()
        });
    Some(Reading {
        cpu_seconds: (utime + stime) as f64 / TICKS_PER_SECOND,
        threads: status_field("Threads:")?,
        virtual_bytes: status_field("VmSize:")? * 1024,
        resident_bytes: status_field("VmRSS:")? * 1024,
        open_fds,
        max_fds,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(reading) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(reading.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                Some(reading.resident_bytes),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                Some(reading.virtual_bytes),
            ),
            (
                "process_threads",
                "Number of OS threads in the process",
                Some(reading.threads),
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                reading.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                reading.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        let started = ConstGauge::new(self.started);
        started.encode(encoder.encode_descriptor(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            None,
            started.metric_type(),
        )?)?;
        Ok(())
    }
}
