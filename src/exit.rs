//! The one table of exit codes, and the error kinds that select them.

use std::fmt;

/// Every status qspool exits with. Documented in `--help`, the README and the man page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Code {
    /// Success.
    Ok = 0,
    /// An error: I/O, a missing spool, a refused foreign file, a write to standard output.
    Error = 1,
    /// Usage error or malformed input (a receipt or id outside the name grammar).
    Usage = 2,
    /// `pop`: nothing is visible.
    Empty = 3,
    /// A receipt whose lease is no longer held, or an id not where the command looks.
    NotFound = 4,
}

impl Code {
    /// Every code with its meaning, in order: the source of the help text's table, the man
    /// page's EXIT STATUS section and the README's table.
    pub const TABLE: [(Code, &'static str); 5] = [
        (Code::Ok, "success"),
        (
            Code::Error,
            "error (I/O, missing spool, refused foreign file, failed write to standard output)",
        ),
        (
            Code::Usage,
            "usage error, or a receipt or id outside qspool's name grammar (nothing was touched)",
        ),
        (Code::Empty, "pop: nothing is visible"),
        (
            Code::NotFound,
            "a receipt whose lease is no longer held, or an id not where the command looks",
        ),
    ];
}

impl From<Code> for std::process::ExitCode {
    fn from(c: Code) -> Self {
        std::process::ExitCode::from(c as u8)
    }
}

/// Malformed input from the command line: exit 2, checked before the filesystem is touched.
#[derive(Debug)]
pub struct Usage(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Something the command was pointed at is not there: exit 4.
#[derive(Debug)]
pub struct NotFound(pub String);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// The one place that turns an error into an exit code.
pub fn code_of(err: &anyhow::Error) -> Code {
    if err.downcast_ref::<Usage>().is_some() {
        Code::Usage
    } else if err.downcast_ref::<NotFound>().is_some() {
        Code::NotFound
    } else {
        Code::Error
    }
}

/// Collects the outcome of commands that handle many receipts or ids one by one: each failure
/// is reported on its own line, and the exit code is the most serious one seen.
#[derive(Default)]
pub struct Tally {
    worst: Option<Code>,
}

impl Tally {
    pub fn fail(&mut self, err: anyhow::Error) {
        report(&err);
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
        Code::Error => 3,
        Code::Usage => 2,
        Code::NotFound => 1,
        _ => 0,
    };
    if weight(a) >= weight(b) { a } else { b }
}

/// Prints an error as one line: `qspool: <what>: <why>`.
pub fn report(err: &anyhow::Error) {
    let text = format!("{err:#}").replace(['\n', '\r'], " ");
    eprintln!("qspool: {text}");
}
