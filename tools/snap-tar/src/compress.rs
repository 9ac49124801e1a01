//! Where the archive goes: stdout, gzip-compressed in parallel as Mgzip
//! (independent gzip members, each naming its own length in an extra
//! field, so a reader can decompress them in parallel too; plain gzip
//! reads them as one stream), or uncompressed.

use gzp::deflate::Mgzip;
use gzp::par::compress::{ParCompress, ParCompressBuilder};
use gzp::{Compression, ZWriter};
use mysnap::{Error, Exit, Result};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;

/// Uncompressed bytes per gzip member. Bigger members compress a little
/// better (each starts without a dictionary); memory is about twice this
/// per job.
pub const BLOCK: usize = 1 << 20;

pub enum Compress {
    Gzip { level: u32, jobs: usize },
    None,
}

/// The archive's destination.
pub enum Output {
    Gzip(ParCompress<'static, Mgzip, Counted>),
    Plain(io::BufWriter<Counted>),
}

/// stdout, counting what was written.
pub struct Counted {
    out: File,
    pub written: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.written
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Output {
    /// Opens stdout. Returns the output and a counter of bytes written.
    pub fn stdout(
        compress: Compress,
    ) -> Result<(Output, std::sync::Arc<std::sync::atomic::AtomicU64>)> {
        let out = io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| Error::new(Exit::IoErr, format!("cannot use stdout: {e}")))?;
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = Counted {
            out: File::from(out),
            written: written.clone(),
        };
        let output = match compress {
            Compress::None => Output::Plain(io::BufWriter::with_capacity(BLOCK, counted)),
            Compress::Gzip { level, jobs } => {
                let builder = ParCompressBuilder::<Mgzip>::new();
                Output::Gzip(
                    builder
                        .compression_level(Compression::new(level))
                        .buffer_size(BLOCK)
                        .and_then(|b| b.num_threads(jobs))
                        .map_err(|e| Error::new(Exit::Software, format!("gzip: {e}")))?
                        .from_writer(counted),
                )
            }
        };
        Ok((output, written))
    }

    /// Flushes the last block and waits for the writer.
    pub fn finish(self) -> Result<()> {
        let done = match self {
            Output::Gzip(mut z) => z.finish().map(drop).map_err(|e| e.to_string()),
            Output::Plain(mut w) => w.flush().map_err(|e| e.to_string()),
        };
        done.map_err(|e| Error::new(Exit::IoErr, format!("cannot write the archive: {e}")))
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Gzip(z) => z.write(buf),
            Output::Plain(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Gzip(z) => z.flush(),
            Output::Plain(w) => w.flush(),
        }
    }
}
