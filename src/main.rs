//! `wsclose`: parses arguments and maps outcomes to exit codes; the work is in the library.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().collect()) {
        Ok(args) => cli::main(args),
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            ExitCode::from(code)
        }
    }
}
