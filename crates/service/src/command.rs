//! Running service-manager command-line tools with errors that quote the command and its stderr.

use std::process::{Command, Output};

use crate::ServiceError;

/// Runs `program args...`, returning its output whether or not it succeeded.
pub(crate) fn output(program: &str, args: &[&str]) -> Result<Output, ServiceError> {
    Command::new(program)
        .args(args)
        .output()
        .map_err(|e| ServiceError::Command {
            command: command_line(program, args),
            status: format!("could not start: {e}"),
            stderr: String::new(),
        })
}

/// Runs `program args...` and fails unless it exits with status 0.
pub(crate) fn run(program: &str, args: &[&str]) -> Result<Output, ServiceError> {
    let out = output(program, args)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(failed(program, args, &out))
    }
}

/// The error for a command that ran and exited unsuccessfully.
pub(crate) fn failed(program: &str, args: &[&str], out: &Output) -> ServiceError {
    ServiceError::Command {
        command: command_line(program, args),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}
