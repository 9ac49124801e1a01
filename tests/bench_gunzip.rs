//! bench-gunzip: decompresses an Mgzip stream (snap-tar's gzip output)
//! from stdin to stdout with N threads, the way a restore can: each member
//! names its own length, so members are inflated in parallel.
//! Run by bench/tar.sh. Usage: bench-gunzip [THREADS]

use gzp::deflate::Mgzip;
use gzp::par::decompress::ParDecompressBuilder;
use std::io::{BufWriter, Write};

fn main() {
    let threads = std::env::args()
        .nth(1)
        .map_or(2, |n| n.parse().expect("THREADS is a number"));
    let mut reader = ParDecompressBuilder::<Mgzip>::new()
        .num_threads(threads)
        .expect("a valid thread count")
        .from_reader(std::io::stdin());
    let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    std::io::copy(&mut reader, &mut out).expect("decompress");
    out.flush().expect("write stdout");
    reader.finish().expect("finish");
}
