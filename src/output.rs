//! What reaches the user: standard output as a descriptor of its own, and one-line errors.

/// Prints an error as one line: `qspool: <what>: <why>`.
pub fn report(err: &anyhow::Error) {
    say(&format!("{err:#}"));
}

/// Writes `qspool: <text>` as one line on standard error, in a single write so that lines of
/// concurrent processes do not interleave. A failed write is ignored: there is nowhere left
/// to report it.
pub fn say(text: &str) {
    use std::io::Write;
    let line = format!("qspool: {}\n", text.replace(['\n', '\r'], " "));
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Standard output as an unbuffered descriptor of its own. Commands write through it rather
/// than through std's buffered handle, which keeps whatever a failed write left and writes it
/// at exit: after an error (and a lease given back) nothing more may reach the reader.
pub fn stdout() -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    use std::os::fd::AsFd;
    std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .context("open standard output")
}
