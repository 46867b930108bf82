//! The valid range of every limit and setting, one table for the config file and the flags.
//!
//! A value outside its range is refused with its key, the value and the range: a heap limit of
//! 0 or of a terabyte, a stack the worker's thread cannot hold, or a pool of a hundred thousand
//! workers are mistakes, not wishes.

use std::ops::RangeInclusive;

use isola_protocol::Limits;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
const DAY_MS: u64 = 24 * 60 * 60 * 1000;

/// One limit: its config key, its range and the unit it is shown in.
#[derive(Clone, Debug)]
pub struct Range {
    /// The key under `isola.limits` (or `isola`).
    pub key: &'static str,
    pub range: RangeInclusive<u64>,
    pub unit: &'static str,
}

pub const DEADLINE_MS: Range = Range {
    key: "deadlineMs",
    range: 1..=DAY_MS,
    unit: "ms",
};
pub const MEMORY_BYTES: Range = Range {
    key: "memoryBytes",
    range: 4 * MIB..=8 * GIB,
    unit: "bytes",
};
/// The worker runs scripts on its main thread (8 MiB of stack on Linux); QuickJS's own stack
/// limit must stay well inside it.
pub const STACK_BYTES: Range = Range {
    key: "stackBytes",
    range: 64 * KIB..=4 * MIB,
    unit: "bytes",
};
pub const MAX_TOOL_CALLS: Range = Range {
    key: "maxToolCalls",
    range: 1..=1_000_000,
    unit: "calls",
};
pub const MAX_CONCURRENCY: Range = Range {
    key: "maxConcurrency",
    range: 1..=256,
    unit: "calls",
};
pub const MAX_LOG_BYTES: Range = Range {
    key: "maxLogBytes",
    range: 0..=64 * MIB,
    unit: "bytes",
};
/// Under the worker channel's frame limit (64 MiB), with room for the rest of the outcome.
pub const MAX_RESULT_BYTES: Range = Range {
    key: "maxResultBytes",
    range: 0..=32 * MIB,
    unit: "bytes",
};
pub const WORKERS: Range = Range {
    key: "workers",
    range: 0..=256,
    unit: "workers",
};
pub const MAX_WORKERS: Range = Range {
    key: "maxWorkers",
    range: 1..=256,
    unit: "workers",
};
pub const CALL_TIMEOUT_MS: Range = Range {
    key: "callTimeoutMs",
    range: 1..=DAY_MS,
    unit: "ms",
};
pub const STARTUP_TIMEOUT_MS: Range = Range {
    key: "startupTimeoutMs",
    range: 1..=DAY_MS,
    unit: "ms",
};
pub const MAX_SCRIPT_BYTES: Range = Range {
    key: "maxScriptBytes",
    range: KIB..=16 * MIB,
    unit: "bytes",
};

pub const POLICY_TIME_LIMIT_MS: Range = Range {
    key: "policy.timeLimitMs",
    range: 1..=60_000,
    unit: "ms",
};
pub const CHECK_TIMEOUT_MS: Range = Range {
    key: "check.timeoutMs",
    range: 100..=10 * 60 * 1000,
    unit: "ms",
};
/// Go's and V8's runtimes reserve address space up front: below 1 GiB the compiler cannot start.
pub const CHECK_MEMORY_MB: Range = Range {
    key: "check.memoryMb",
    range: 1024..=64 * 1024,
    unit: "MiB",
};
pub const APPROVAL_TIMEOUT_MS: Range = Range {
    key: "approvals.timeoutMs",
    range: 1_000..=30 * DAY_MS,
    unit: "ms",
};
pub const APPROVAL_SUSPEND_AFTER_MS: Range = Range {
    key: "approvals.suspendAfterMs",
    range: 0..=30 * DAY_MS,
    unit: "ms",
};

impl Range {
    /// `Err(message)` naming the key, the value and the range when `value` is outside.
    pub fn check(&self, value: u64) -> Result<u64, String> {
        if self.range.contains(&value) {
            Ok(value)
        } else {
            Err(format!(
                "{value} is out of range: {} takes {} to {} {}",
                self.key,
                self.range.start(),
                self.range.end(),
                self.unit
            ))
        }
    }
}

/// Every limit of `limits` against its range; the first out of range, as (key, message).
pub fn check_limits(limits: &Limits) -> Result<(), (&'static str, String)> {
    let all = [
        (&DEADLINE_MS, limits.deadline_ms),
        (&MEMORY_BYTES, limits.memory_bytes),
        (&STACK_BYTES, limits.stack_bytes),
        (&MAX_TOOL_CALLS, u64::from(limits.max_tool_calls)),
        (&MAX_CONCURRENCY, u64::from(limits.max_concurrency)),
        (&MAX_LOG_BYTES, limits.max_log_bytes),
        (&MAX_RESULT_BYTES, limits.max_result_bytes),
    ];
    for (range, value) in all {
        range.check(value).map_err(|m| (range.key, m))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_in_range() {
        assert_eq!(check_limits(&Limits::default()), Ok(()));
        let (key, message) = check_limits(&Limits {
            memory_bytes: 1,
            ..Limits::default()
        })
        .unwrap_err();
        assert_eq!(key, "memoryBytes");
        assert_eq!(
            message,
            "1 is out of range: memoryBytes takes 4194304 to 8589934592 bytes"
        );
    }
}
