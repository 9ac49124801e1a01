//! The error type every tool returns: a message for the user and the
//! sysexits(3) code the process exits with.

use std::fmt;

/// Exit codes from sysexits.h, plus the shell's conventions for commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// Generic failure (a child's failure is passed on with its own code).
    Failure = 1,
    Usage = 64,
    DataErr = 65,
    NoInput = 66,
    Unavailable = 69,
    Software = 70,
    CantCreate = 73,
    IoErr = 74,
    TempFail = 75,
    NoPerm = 77,
    Config = 78,
    /// COMMAND was found but could not be run.
    CannotRun = 126,
    /// COMMAND was not found.
    NotFound = 127,
}

/// A failure that ends the tool: what went wrong, said once, and the code.
#[derive(Debug)]
pub struct Error {
    code: i32,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Exit, message: impl Into<String>) -> Self {
        Error {
            code: code as i32,
            message: message.into(),
        }
    }

    /// A failure whose exit status is passed on unchanged, such as a child's.
    /// An empty message means the cause was already reported.
    pub fn with_status(code: i32, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Exit::Usage, message)
    }

    pub fn code(&self) -> i32 {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with what was being done when it failed.
    pub fn context(self, what: impl fmt::Display) -> Self {
        Error {
            code: self.code,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Maps an I/O error to the exit code a user expects for it.
pub fn io_exit(err: &std::io::Error) -> Exit {
    use std::io::ErrorKind::*;
    match err.kind() {
        NotFound => Exit::NoInput,
        PermissionDenied => Exit::NoPerm,
        _ => Exit::IoErr,
    }
}

/// Adds context to an `io::Result`, choosing the exit code from the error kind.
pub trait IoContext<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| Error::new(io_exit(&e), format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_sysexits() {
        let missing: std::io::Result<()> = Err(std::io::ErrorKind::NotFound.into());
        assert_eq!(missing.ctx("open x").unwrap_err().code(), 66);
        let denied: std::io::Result<()> = Err(std::io::ErrorKind::PermissionDenied.into());
        assert_eq!(denied.ctx("open x").unwrap_err().code(), 77);
        let other: std::io::Result<()> = Err(std::io::ErrorKind::BrokenPipe.into());
        let err = other.ctx("write").unwrap_err();
        assert_eq!(err.code(), 74);
        assert!(err.message().starts_with("write: "));
    }
}
