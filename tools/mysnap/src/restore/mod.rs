//! What a restore and a test restore share: the archive read from a file,
//! a pipe or a command (decompressed in parallel), unpacked beneath its
//! roots with every check, and a private server started on the result.

pub mod input;
pub mod private;
pub mod programs;
pub mod unpack;
