//! What every mysnap tool shares: option parsing, exit codes, logging,
//! progress reporting, size and duration parsing, and running a child command.
//!
//! The crate stays small on purpose. Anything that only one tool needs lives
//! in that tool's crate; the S3 client that `s3-put` and `s3-get` share sits
//! behind the `s3` feature so the other tools do not compile it; the archive
//! format that snap-tar writes and mysql-restore-dir reads, behind `archive`;
//! the status file that mysql-lock-hold writes and the archive carries,
//! behind `status`.

#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "archive")]
pub mod beneath;
#[cfg(feature = "binlog")]
pub mod binlog;
pub mod child;
pub mod cli;
pub mod error;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod moment;
#[cfg(feature = "mysql")]
pub mod mysql;
pub mod private_file;
pub mod progress;
pub mod quantity;
#[cfg(feature = "restore")]
pub mod restore;
pub mod signals;
#[cfg(feature = "status")]
pub mod status;

#[cfg(feature = "s3")]
pub mod s3;

pub use error::{Error, Exit, Result};
