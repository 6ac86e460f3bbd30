//! The exit status, chosen in one place for every subcommand.
//!
//! 0 ok; 1 a check or a policy failed; 2 a usage error, an input that could not be read to
//! its end, or a failed output write; 130 stopped by SIGINT, 143 by SIGTERM. When several
//! apply, the first of 130/143, 2, 1, 0 wins. A reader that closed the pipe (`| head`) is
//! not a failure: the run stops quietly and the status is what was decided before it.

use std::process::ExitCode;

/// A signal that stopped the run (the signal handling itself is not here yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(dead_code)] // set by the signal handling to come
pub enum Signal {
    Int,
    Term,
}

/// What happened in a run, as far as the exit status cares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The run was stopped by a signal.
    pub signal: Option<Signal>,
    /// A usage error, an input that could not be read to its end, or a failed write.
    pub error: bool,
    /// A check or a policy failed.
    pub failed: bool,
    /// The reader of the output went away; the run stopped early. Not a failure.
    pub pipe_closed: bool,
}

impl Status {
    pub fn error() -> Status {
        Status {
            error: true,
            ..Status::default()
        }
    }

    /// The exit code.
    pub fn code(self) -> u8 {
        match self.signal {
            Some(Signal::Int) => 130,
            Some(Signal::Term) => 143,
            None if self.error => 2,
            None if self.failed => 1,
            None => 0,
        }
    }

    pub fn exit_code(self) -> ExitCode {
        ExitCode::from(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let s = |signal, error, failed, pipe_closed| Status {
            signal,
            error,
            failed,
            pipe_closed,
        };
        let (int, term) = (Some(Signal::Int), Some(Signal::Term));
        // (status, code)
        let table = [
            (s(None, false, false, false), 0),
            (s(None, false, false, true), 0),
            (s(None, false, true, false), 1),
            (s(None, false, true, true), 1),
            (s(None, true, false, false), 2),
            (s(None, true, true, false), 2),
            (s(None, true, true, true), 2),
            (s(int, false, false, false), 130),
            (s(int, true, true, true), 130),
            (s(term, false, false, false), 143),
            (s(term, true, true, false), 143),
        ];
        for (st, code) in table {
            assert_eq!(st.code(), code, "{st:?}");
        }
        assert_eq!(Status::error().code(), 2);
    }
}
