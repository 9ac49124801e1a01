//! Where the archive comes from (stdin, or COMMAND's stdout) and how it is
//! compressed, told from its first bytes: snap-tar's Mgzip (independent
//! members, decompressed in parallel), any other gzip (serially), or a
//! plain tar.

use crate::error::IoContext;
use crate::signals::Signals;
use crate::{child, Error, Exit, Result};
use gzp::deflate::Mgzip;
use gzp::par::decompress::{ParDecompress, ParDecompressBuilder};
use std::fs::File;
use std::io::{self, Cursor, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, ChildStdout, Stdio};
use std::sync::Arc;

/// How the stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// gzip members that each carry their length: parallel.
    Mgzip,
    /// Any other gzip: one decompressor, serially.
    Gzip,
    None,
}

impl Compression {
    /// Looks at the stream's first bytes (RFC 1952 header; Mgzip puts an
    /// `IG` subfield in FEXTRA).
    pub fn detect(head: &[u8]) -> Compression {
        const FEXTRA: u8 = 4;
        match head {
            [0x1f, 0x8b, _, flags, _, _, _, _, _, _, _, _, b'I', b'G', ..]
                if flags & FEXTRA != 0 =>
            {
                Compression::Mgzip
            }
            [0x1f, 0x8b, ..] => Compression::Gzip,
            _ => Compression::None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Mgzip => "gzip, parallel blocks",
            Compression::Gzip => "gzip, one stream",
            Compression::None => "none",
        }
    }
}

type Raw = io::Chain<Cursor<Vec<u8>>, Box<dyn Read + Send>>;

enum Decoder {
    Parallel(ParDecompress<Mgzip>),
    Serial(Box<flate2::read::MultiGzDecoder<Raw>>),
    Plain(Raw),
}

/// The archive's uncompressed bytes, and the COMMAND that produces them.
pub struct Input {
    decoder: Decoder,
    command: Option<(Vec<String>, Child)>,
    pub compression: Compression,
}

impl Input {
    /// Opens stdin, or starts COMMAND with its stdout piped to us.
    /// Reading wakes up for a signal (see `Interruptible`).
    pub fn open(command: Option<&[String]>, jobs: usize, signals: Arc<Signals>) -> Result<Input> {
        let (file, command) = match command {
            None => {
                let stdin = io::stdin().as_fd().try_clone_to_owned().ctx("stdin")?;
                (File::from(stdin), None)
            }
            Some(argv) => {
                let mut child = child::spawn(argv, Stdio::piped())?;
                let stdout: ChildStdout = child.stdout.take().expect("stdout is piped");
                (
                    File::from(OwnedFd::from(stdout)),
                    Some((argv.to_vec(), child)),
                )
            }
        };
        let raw: Box<dyn Read + Send> = Box::new(Interruptible { file, signals });
        let mut input = Input {
            decoder: Decoder::Plain(Cursor::new(Vec::new()).chain(Box::new(io::empty()))),
            command,
            compression: Compression::None,
        };
        let mut raw = raw;
        let head = match read_head(&mut raw, 64) {
            Ok(head) => head,
            Err(e) => {
                return Err(input.fail(Err::<(), _>(e).ctx("reading the archive").unwrap_err()))
            }
        };
        if head.is_empty() {
            return Err(input.fail(Error::new(Exit::DataErr, "the archive is empty")));
        }
        input.compression = Compression::detect(&head);
        let raw: Raw = Cursor::new(head).chain(raw);
        input.decoder = match input.compression {
            Compression::Mgzip => Decoder::Parallel(
                ParDecompressBuilder::<Mgzip>::new()
                    .num_threads(jobs)
                    .map_err(|e| Error::usage(format!("--jobs: {e}")))?
                    .from_reader(raw),
            ),
            Compression::Gzip => Decoder::Serial(Box::new(flate2::read::MultiGzDecoder::new(raw))),
            Compression::None => Decoder::Plain(raw),
        };
        Ok(input)
    }

    /// Reads what is left (tar stops at its end-of-archive blocks), checks
    /// the decompressor ended cleanly, and waits for COMMAND: the archive
    /// counts only if COMMAND exited 0.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).ctx("reading the end of the archive")?;
        if let Decoder::Parallel(decoder) = &mut self.decoder {
            decoder
                .finish()
                .map_err(|e| Error::new(Exit::DataErr, format!("gzip: {e}")))?;
        }
        if let Some((argv, mut child)) = self.command.take() {
            let status = child.wait().ctx("waiting for COMMAND")?;
            child::check(&argv, status)?;
        }
        Ok(())
    }

    /// Stops COMMAND (if any) after a failure, and returns the failure.
    pub fn fail(&mut self, error: Error) -> Error {
        if let Some((_, mut child)) = self.command.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
        error
    }
}

/// gzp's parallel decoder, dropped while its reader thread holds an error
/// (a cut stream, a signal), re-raises that error as a panic without a
/// message; and joining a thread that waits on a stalled pipe would hang.
/// `finish` has joined it on success; on every other path the process is
/// about to exit, so the decoder is left alone.
impl Drop for Input {
    fn drop(&mut self) {
        let decoder = std::mem::replace(
            &mut self.decoder,
            Decoder::Plain(Cursor::new(Vec::new()).chain(Box::new(io::empty()))),
        );
        if let Decoder::Parallel(decoder) = decoder {
            std::mem::forget(decoder);
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.decoder {
            Decoder::Parallel(d) => d.read(buf),
            Decoder::Serial(d) => d.read(buf),
            Decoder::Plain(d) => d.read(buf),
        }
    }
}

/// Up to `len` bytes from the start of the stream (fewer only at EOF).
fn read_head(raw: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(len);
    raw.take(len as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// A pipe or file that stops reading when a signal arrives, so that a
/// stalled stream cannot keep a restore from stopping.
pub struct Interruptible {
    pub file: File,
    pub signals: Arc<Signals>,
}

impl Read for Interruptible {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        loop {
            if let Some(signal) = self.signals.stopped() {
                return Err(io::Error::other(format!("interrupted by {signal}")));
            }
            let mut fds = [
                PollFd::new(self.file.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.signals.fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let input_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
            if input_ready {
                return self.file.read(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_formats_apart() {
        let mut mgzip = vec![
            0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 8, 0, b'I', b'G', 4, 0,
        ];
        assert_eq!(Compression::detect(&mgzip), Compression::Mgzip);
        mgzip[3] = 0; // no FEXTRA: the IG bytes are something else
        assert_eq!(Compression::detect(&mgzip), Compression::Gzip);
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(b"mysnap/manifest.json"),
            Compression::None
        );
    }
}
