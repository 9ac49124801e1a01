//! The binlog archive's format, shared by mysql-binlog-archive, which
//! writes it, and the tools that read it: events as a server stores them,
//! MariaDB's GTID position, the keys and metadata of the archive in S3,
//! and the targets a replay stops at.

pub mod event;
pub mod gtid;
pub mod layout;
pub mod target;
