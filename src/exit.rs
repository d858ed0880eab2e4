//! The one table of exit codes, and the error kinds that select them.

use std::fmt;

/// Every status qspool exits with. Documented in `--help`, the README and the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// An error: I/O, a missing spool, a refused foreign file, a write to standard output. For
    /// `work`, qspool itself failed (whatever the CMDs did).
    Error = 1,
    /// Usage error or malformed input (a receipt or id outside the name grammar).
    Usage = 2,
    /// `pop`: nothing is visible (after `--wait`, by the time it ran out).
    Empty = 3,
    /// A receipt whose lease is no longer held, or an id not where the command looks.
    NotFound = 4,
    /// `work`: qspool was fine, but a CMD failed, was killed, or lost its lease.
    Failed = 5,
}

impl Code {
    /// Every code with its meaning, in order: the source of the help text's table, the man
    /// page's EXIT STATUS section and the README's table.
    pub const TABLE: [(Code, &'static str); 6] = [
        (Code::Ok, "success"),
        (
            Code::Error,
            "error (I/O, missing spool, refused foreign file, failed output); work: qspool failed",
        ),
        (
            Code::Usage,
            "usage error, or a receipt or id outside qspool's name grammar (nothing was touched)",
        ),
        (
            Code::Empty,
            "pop: nothing is visible, the spool is paused or its rate limit reached (see stderr), or --wait=DUR ran out",
        ),
        (
            Code::NotFound,
            "a receipt whose lease is no longer held, or an id not where the command looks",
        ),
        (
            Code::Failed,
            "work: a CMD failed, was killed or lost its lease (qspool itself did not fail)",
        ),
    ];
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// An error that selects its own exit code rather than the general one.
#[derive(Debug)]
pub struct Coded {
    code: Code,
    text: String,
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for Coded {}

/// Malformed input from the command line: exit 2, checked before the filesystem is touched.
pub fn usage(text: impl Into<String>) -> anyhow::Error {
    Coded {
        code: Code::Usage,
        text: text.into(),
    }
    .into()
}

/// Something the command was pointed at is not there: exit 4.
pub fn not_found(text: impl Into<String>) -> anyhow::Error {
    Coded {
        code: Code::NotFound,
        text: text.into(),
    }
    .into()
}

/// The one place that turns an error into an exit code.
pub fn code_of(err: &anyhow::Error) -> Code {
    err.downcast_ref::<Coded>().map_or(Code::Error, |c| c.code)
}

/// Collects the outcome of commands that handle many receipts or ids one by one: each failure
/// is reported on its own line, and the exit code is the most serious one seen.
#[derive(Default)]
pub struct Tally {
    worst: Option<Code>,
}

impl Tally {
    pub fn fail(&mut self, err: anyhow::Error) {
        crate::output::report(&err);
        let code = code_of(&err);
        self.worst = Some(self.worst.map_or(code, |w| rank(w, code)));
    }

    pub fn code(&self) -> Code {
        self.worst.unwrap_or(Code::Ok)
    }
}

/// An error outranks a not-found: the user must look at the error first.
fn rank(a: Code, b: Code) -> Code {
    let weight = |c: Code| match c {
        Code::Error => 4,
        Code::Failed => 3,
        Code::Usage => 2,
        Code::NotFound => 1,
        _ => 0,
    };
    if weight(a) >= weight(b) { a } else { b }
}

#[cfg(test)]
mod tests {
    use super::{Code, rank};

    #[test]
    fn an_error_outranks_a_usage_error_which_outranks_a_not_found() {
        let order = [Code::NotFound, Code::Usage, Code::Error];
        for (i, &low) in order.iter().enumerate() {
            for &high in &order[i..] {
                assert_eq!(rank(low, high), high, "{low:?} against {high:?}");
                assert_eq!(rank(high, low), high, "{high:?} against {low:?}");
            }
        }
    }

    #[test]
    fn an_error_kind_selects_its_code_through_context() {
        use anyhow::Context;
        let wrapped = Err::<(), _>(super::not_found("gone"))
            .context("ack x")
            .unwrap_err();
        assert_eq!(super::code_of(&wrapped), Code::NotFound);
        assert_eq!(super::code_of(&super::usage("bad")), Code::Usage);
        assert_eq!(super::code_of(&anyhow::anyhow!("io")), Code::Error);
    }

    #[test]
    fn a_tally_keeps_the_worst_code_and_starts_at_success() {
        let mut tally = super::Tally::default();
        assert_eq!(tally.code(), Code::Ok);
        tally.fail(super::not_found("a"));
        assert_eq!(tally.code(), Code::NotFound);
        tally.fail(anyhow::anyhow!("b"));
        tally.fail(super::usage("c"));
        assert_eq!(tally.code(), Code::Error);
    }
}
