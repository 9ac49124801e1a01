//! Sparse files: where their data lies (SEEK_DATA/SEEK_HOLE), and the
//! old-GNU sparse header that tells `tar -x` where the holes go back. Holes
//! are never read, hashed from a zero buffer, and never reach the compressor.

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// One run of data in a sparse file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub offset: u64,
    pub len: u64,
}

const BLOCK: u64 = 512;
/// Sparse map entries in the main header and in each extension block.
const IN_HEADER: usize = 4;
const PER_EXTENSION: usize = 21;

/// The data runs of `file` (`size` bytes), widened to 512-byte boundaries
/// (tar readers require every run but the last to fill whole blocks).
/// The last entry always ends at `size`: a zero-length run there records a
/// trailing hole, as GNU tar does.
pub fn data_map(file: &File, size: u64) -> io::Result<Vec<Segment>> {
    let fd = file.as_raw_fd();
    let mut map: Vec<Segment> = Vec::new();
    let mut at = 0u64;
    while at < size {
        let start = match lseek(fd, at as i64, Whence::SeekData) {
            Ok(start) => start as u64,
            Err(Errno::ENXIO) => break,
            Err(e) => return Err(e.into()),
        };
        let end = (lseek(fd, start as i64, Whence::SeekHole)? as u64).min(size);
        let start = start / BLOCK * BLOCK;
        let end = end.div_ceil(BLOCK).saturating_mul(BLOCK).min(size);
        match map.last_mut() {
            Some(last) if last.offset + last.len >= start => last.len = end - last.offset,
            _ => map.push(Segment {
                offset: start,
                len: end - start,
            }),
        }
        at = end;
    }
    if map.last().is_none_or(|s| s.offset + s.len < size) {
        map.push(Segment {
            offset: size,
            len: 0,
        });
    }
    Ok(map)
}

/// Bytes of data stored for `map`.
pub fn stored(map: &[Segment]) -> u64 {
    map.iter().map(|s| s.len).sum()
}

/// Fills `header` (an old-GNU header, typeflag 'S') with the first runs of
/// `map` and `real_size`, and returns the extension blocks that must follow
/// the header, before the data.
pub fn encode(header: &mut tar::Header, map: &[Segment], real_size: u64) -> Vec<u8> {
    let gnu = header.as_gnu_mut().expect("a GNU header");
    put_number(&mut gnu.realsize, real_size);
    let (first, rest) = map.split_at(map.len().min(IN_HEADER));
    for (slot, segment) in gnu.sparse.iter_mut().zip(first) {
        put_number(&mut slot.offset, segment.offset);
        put_number(&mut slot.numbytes, segment.len);
    }
    gnu.isextended[0] = u8::from(!rest.is_empty());
    let mut blocks = Vec::new();
    let chunks: Vec<&[Segment]> = rest.chunks(PER_EXTENSION).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let mut ext = tar::GnuExtSparseHeader::new();
        for (slot, segment) in ext.sparse.iter_mut().zip(chunk.iter()) {
            put_number(&mut slot.offset, segment.offset);
            put_number(&mut slot.numbytes, segment.len);
        }
        ext.isextended[0] = u8::from(i + 1 < chunks.len());
        blocks.extend_from_slice(ext.as_bytes());
    }
    blocks
}

/// A tar numeric field: octal with a NUL when it fits, else GNU base-256.
fn put_number(field: &mut [u8], n: u64) {
    let digits = field.len() - 1;
    if digits * 3 >= 64 || n < 1u64 << (3 * digits) {
        let text = format!("{n:0digits$o}");
        field[..digits].copy_from_slice(text.as_bytes());
        field[digits] = 0;
    } else {
        field.fill(0);
        field[0] = 0x80;
        let len = field.len();
        field[len - 8..].copy_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn sparse_file(runs: &[(u64, usize)], size: u64) -> File {
        let mut f = tempfile_in_tmp();
        for &(at, len) in runs {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&vec![7u8; len]).unwrap();
        }
        f.set_len(size).unwrap();
        f
    }

    fn tempfile_in_tmp() -> File {
        let path = std::env::temp_dir().join(format!("snap-tar-sparse-{}", std::process::id()));
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        f
    }

    #[test]
    fn holes_are_found_and_a_trailing_hole_is_marked() {
        let mib = 1 << 20;
        let f = sparse_file(&[(mib, 100), (8 * mib, 5000)], 64 * mib);
        let map = data_map(&f, 64 * mib).unwrap();
        assert!(map.len() >= 3, "{map:?}");
        assert!(map[0].offset <= mib && map[0].offset + map[0].len >= mib + 100);
        assert_eq!(
            map.last().unwrap(),
            &Segment {
                offset: 64 * mib,
                len: 0
            }
        );
        assert!(stored(&map) < 2 * mib, "{map:?}");
        for s in &map[..map.len() - 1] {
            assert_eq!(s.offset % BLOCK, 0);
            assert_eq!(s.len % BLOCK, 0);
        }
    }

    #[test]
    fn numbers_fall_back_to_base_256() {
        let mut field = [0u8; 12];
        put_number(&mut field, 0o777);
        assert_eq!(&field, b"00000000777\0");
        put_number(&mut field, 1 << 40);
        assert_eq!(field[0], 0x80);
        assert_eq!(u64::from_be_bytes(field[4..].try_into().unwrap()), 1 << 40);
    }

    #[test]
    fn long_maps_spill_into_extension_blocks() {
        let map: Vec<Segment> = (0..30)
            .map(|i| Segment {
                offset: i * 4096,
                len: 512,
            })
            .collect();
        let mut header = tar::Header::new_gnu();
        let blocks = encode(&mut header, &map, 30 * 4096);
        assert_eq!(blocks.len(), 2 * 512);
        assert_eq!(header.as_gnu().unwrap().isextended[0], 1);
        assert_eq!(blocks[504], 1, "first extension says another follows");
        assert_eq!(blocks[512 + 504], 0);
    }
}
