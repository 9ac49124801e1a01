//! The test bed: real S3 servers on loopback (s3s-fs and moto, both
//! enforcing SigV4), a fault-injecting proxy in front of them, a runner
//! for the built tools, MariaDB servers, the VM test bed, and the built
//! packages.
//!
//! A missing server binary is a failure, not a skip: `make test` installs
//! them (tests/setup.sh).

pub mod mariadb;
pub mod packages;
pub mod proxy;
pub mod s3_client;
pub mod server;
pub mod tcp_cut;
pub mod tool;
pub mod vm;

use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

/// `len` bytes of reproducible random data.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub const MIB: usize = 1024 * 1024;
