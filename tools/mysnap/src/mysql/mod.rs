//! Connecting to MySQL or MariaDB as the mysql client does: option files
//! for credentials, socket by default, TLS options by the client's names.

mod connect;
pub mod optionfile;

pub use connect::{add_options, classify, describe, ConnectOptions};
