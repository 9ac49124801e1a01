//! The S3 side of `s3-put` and `s3-get`: where to connect, whose keys to
//! use, how to tell a passing failure from a final one, and the few object
//! operations the tools need.
//!
//! rust-s3 does the XML and the metadata calls. The data path (part
//! uploads, ranged downloads) is signed here with rust-s3's signing
//! primitives and sent on rust-s3's own HTTP client: its regular calls copy
//! every request body once more, which would double the memory a part
//! costs, and they cannot resume a download that was cut off half-way.

pub mod backups;
mod client;
mod credentials;
pub mod etag;
mod failure;
mod settings;
mod sign;
mod url;

pub use client::{headers, Client, Lock, ObjectInfo, OpenUpload, Protection, UploadedPart};
pub use credentials::{credentials, SECRET_VARIABLES};
pub use failure::Attempt;
pub use settings::{add_options, Settings};
pub use url::S3Url;
