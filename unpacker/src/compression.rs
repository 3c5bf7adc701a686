//! Layer compression, recognised by its magic bytes rather than by the
//! media type (registries and `docker save` are not always truthful):
//! gzip, zstd, or a plain tar.

use std::io::{self, BufRead, BufReader, Read};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    None,
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// From the first bytes of a blob (at least 4 when there are that many).
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&GZIP_MAGIC) {
            Self::Gzip
        } else if head.starts_with(&ZSTD_MAGIC) {
            Self::Zstd
        } else {
            Self::None
        }
    }
}

/// Buffer between the blob and the decoder: big reads keep syscalls rare.
const READ_BUFFER: usize = 256 * 1024;

/// A decoder over `blob` chosen by its magic bytes. `into_inner` of the
/// returned [`Decoded`] gives `blob` back (to drain and verify the rest).
pub fn decode<R: Read>(blob: R) -> io::Result<Decoded<R>> {
    let mut buffered = BufReader::with_capacity(READ_BUFFER, blob);
    let head = buffered.fill_buf()?;
    Ok(match Compression::detect(head) {
        Compression::Gzip => Decoded::Gzip(crate::gzip::Gzip::new(buffered)),
        Compression::Zstd => Decoded::Zstd(zstd::stream::read::Decoder::with_buffer(buffered)?),
        Compression::None => Decoded::Plain(buffered),
    })
}

/// The uncompressed stream of a layer.
pub enum Decoded<R: Read> {
    /// Without the CRC-32: the `diff_id` covers the content (see `gzip`).
    Gzip(crate::gzip::Gzip<BufReader<R>>),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
    Plain(BufReader<R>),
}

impl<R: Read> Decoded<R> {
    /// The compressed stream, positioned after what the decoder consumed.
    pub fn into_inner(self) -> BufReader<R> {
        match self {
            Self::Gzip(decoder) => decoder.into_inner(),
            Self::Zstd(decoder) => decoder.finish(),
            Self::Plain(reader) => reader,
        }
    }
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Gzip(decoder) => decoder.read(buf),
            Self::Zstd(decoder) => decoder.read(buf),
            Self::Plain(reader) => reader.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn round_trip(compressed: Vec<u8>, want: Compression) {
        assert_eq!(Compression::detect(&compressed), want);
        let mut out = Vec::new();
        decode(&compressed[..])
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello tar");
    }

    #[test]
    fn each_compression_is_recognised_and_decoded() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"hello tar").unwrap();
        round_trip(gz.finish().unwrap(), Compression::Gzip);
        round_trip(
            zstd::encode_all(&b"hello tar"[..], 1).unwrap(),
            Compression::Zstd,
        );
        round_trip(b"hello tar".to_vec(), Compression::None);
    }
}
