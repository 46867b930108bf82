//! Builtins that regorus's execution timer cannot stop, replaced by ones that watch the clock.
//!
//! The timer is cooperative: it looks at the clock between units of the interpreter's work, so
//! a single builtin call runs to its end. `numbers.range(1, 100000000)` builds a hundred
//! million numbers (seconds, gigabytes) before the timer can look. These versions, registered
//! as regorus extensions (which take precedence over builtins), have the same results but
//! refuse to build more than [`MAX_RANGE`] numbers, and stop at the decision's deadline.

use std::cell::Cell;
use std::time::{Duration, Instant};

use regorus::{Engine, LimitError, Value};

/// The most numbers one `numbers.range` or `numbers.range_step` may make.
pub const MAX_RANGE: u64 = 10_000_000;

/// How many numbers are made between two looks at the clock.
const CLOCK_EVERY: u128 = 1024;

thread_local! {
    /// When the evaluation running on this thread started, and how long it may take.
    /// Evaluation is synchronous, so the thread is the evaluation.
    static DEADLINE: Cell<Option<(Instant, Duration)>> = const { Cell::new(None) };
}

/// Sets this thread's deadline until dropped.
pub(crate) struct DeadlineGuard(Option<(Instant, Duration)>);

impl DeadlineGuard {
    /// The evaluation started at `start` may run until `start + limit`.
    pub(crate) fn set(start: Instant, limit: Duration) -> Self {
        Self(DEADLINE.replace(Some((start, limit))))
    }
}

impl Drop for DeadlineGuard {
    fn drop(&mut self) {
        DEADLINE.set(self.0);
    }
}

fn check_deadline() -> anyhow::Result<()> {
    if let Some((start, limit)) = DEADLINE.get() {
        let elapsed = start.elapsed();
        if elapsed >= limit {
            return Err(LimitError::TimeLimitExceeded { elapsed, limit }.into());
        }
    }
    Ok(())
}

/// Registers the guarded builtins on `engine`.
pub(crate) fn register(engine: &mut Engine) -> anyhow::Result<()> {
    engine.add_extension(
        "numbers.range".to_string(),
        2,
        Box::new(|args: Vec<Value>| {
            let (from, to) = (
                integer(&args, 0, "numbers.range")?,
                integer(&args, 1, "numbers.range")?,
            );
            let step = if to >= from { 1 } else { -1 };
            range("numbers.range", from, to, step)
        }),
    )?;
    engine.add_extension(
        "numbers.range_step".to_string(),
        3,
        Box::new(|args: Vec<Value>| {
            let name = "numbers.range_step";
            let (from, to, step) = (
                integer(&args, 0, name)?,
                integer(&args, 1, name)?,
                integer(&args, 2, name)?,
            );
            if step <= 0 {
                anyhow::bail!("{name}: step must be a positive integer, not {step}");
            }
            range(name, from, to, if to >= from { step } else { -step })
        }),
    )?;
    Ok(())
}

fn integer(args: &[Value], index: usize, name: &str) -> anyhow::Result<i64> {
    let value = args
        .get(index)
        .ok_or_else(|| anyhow::anyhow!("{name}: missing operand {}", index + 1))?;
    match value {
        Value::Number(number) if number.is_integer() => number
            .as_i64()
            .ok_or_else(|| anyhow::anyhow!("{name}: operand {} is too large", index + 1)),
        Value::Number(_) => anyhow::bail!("{name}: operand {} must be an integer", index + 1),
        _ => anyhow::bail!("{name}: operand {} must be a number", index + 1),
    }
}

/// `from`, `from + step`, ... up to and including `to` if reached.
fn range(name: &str, from: i64, to: i64, step: i64) -> anyhow::Result<Value> {
    let span = (i128::from(to) - i128::from(from)).unsigned_abs();
    let count = span / i128::from(step).unsigned_abs() + 1;
    if count > u128::from(MAX_RANGE) {
        anyhow::bail!(
            "{name}({from}, {to}) would make {count} numbers; Isola allows at most {MAX_RANGE}"
        );
    }
    let mut values = Vec::with_capacity(usize::try_from(count)?);
    let mut next = i128::from(from);
    for i in 0..count {
        if i % CLOCK_EVERY == 0 {
            check_deadline()?;
        }
        values.push(Value::from(i64::try_from(next)?));
        next += i128::from(step);
    }
    Ok(Value::from(values))
}
