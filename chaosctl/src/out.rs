//! Output: aligned tables, and colours on a terminal only.

use std::fmt;
use std::io::{IsTerminal, Write};

/// Prints a line on standard output; a reader that went away (`chaosctl status | head`)
/// ends the program quietly instead of a panic.
macro_rules! say {
    () => { $crate::out::line(format_args!("")) };
    ($($t:tt)*) => { $crate::out::line(format_args!($($t)*)) };
}
pub(crate) use say;

pub(crate) fn line(args: fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("chaosctl: cannot write the output: {e}");
        std::process::exit(1);
    }
}

/// Whether to colour standard output: a terminal, and no `NO_COLOR`.
fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// `text` in green (`good`) or red, when colouring.
pub(crate) fn mark(text: &str, good: bool) -> String {
    if colour() {
        let c = if good { "32" } else { "31" };
        format!("\x1b[{c}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `text` in bold, when colouring.
pub(crate) fn bold(text: &str) -> String {
    if colour() {
        format!("\x1b[1m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// Prints rows as columns, the first row as the header.
pub(crate) fn table(rows: &[Vec<String>]) {
    let Some(head) = rows.first() else { return };
    let mut widths = vec![0; head.len()];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(visible_len(c));
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let mut line = String::new();
        for (j, (c, w)) in r.iter().zip(&widths).enumerate() {
            let cell = if i == 0 { bold(c) } else { c.clone() };
            line.push_str(&cell);
            if j + 1 < r.len() {
                line.push_str(&" ".repeat(w - visible_len(c) + 2));
            }
        }
        say!("{}", line.trim_end());
    }
}

/// Characters a cell takes on screen (colour codes take none).
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut in_escape = false;
    for ch in s.chars() {
        match (in_escape, ch) {
            (false, '\x1b') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// The runtime a command runs on; `None` (said on standard error) when it cannot start.
pub(crate) fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("chaosctl: cannot start: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::visible_len;

    #[test]
    fn colour_codes_take_no_room() {
        assert_eq!(visible_len("\x1b[31mred\x1b[0m"), 3);
        assert_eq!(visible_len("plain"), 5);
    }
}
