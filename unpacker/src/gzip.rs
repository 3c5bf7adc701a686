//! Gzip members inflated without their CRC-32: every layer's uncompressed
//! bytes are checked against the config's `diff_id` (SHA-256) anyway, and
//! the CRC cost ~6% of an unpack's CPU. Header fields are skipped as RFC
//! 1952 lays them out; concatenated members (`pigz`) are read in turn.

use std::io::{self, BufRead, Read};

use flate2::bufread::DeflateDecoder;

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

/// A gzip stream's inflated content.
pub struct Gzip<R: BufRead> {
    state: State<R>,
}

enum State<R: BufRead> {
    /// Before a member's header.
    Header(R),
    Body(Box<DeflateDecoder<R>>),
    /// After the last member; anything left is the caller's (the digest
    /// of the whole blob still covers it).
    Done(R),
    /// Only while switching states.
    Empty,
}

impl<R: BufRead> Gzip<R> {
    pub fn new(inner: R) -> Self {
        Self {
            state: State::Header(inner),
        }
    }

    /// The compressed stream, positioned after what was consumed.
    pub fn into_inner(self) -> R {
        match self.state {
            State::Header(r) | State::Done(r) => r,
            State::Body(decoder) => decoder.into_inner(),
            State::Empty => unreachable!("never left empty"),
        }
    }
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("gzip: {what}"))
}

fn skip_until_nul(r: &mut impl BufRead) -> io::Result<()> {
    let mut skipped = Vec::new();
    r.read_until(0, &mut skipped)?;
    if skipped.last() != Some(&0) {
        return Err(bad("truncated header"));
    }
    Ok(())
}

/// Reads one member header; `r` must start with the gzip magic.
fn read_header(r: &mut impl BufRead) -> io::Result<()> {
    let mut fixed = [0; 10];
    r.read_exact(&mut fixed)?;
    if fixed[..3] != [0x1f, 0x8b, 8] {
        return Err(bad("not a deflate member"));
    }
    let flags = fixed[3];
    if flags & FEXTRA != 0 {
        let mut len = [0; 2];
        r.read_exact(&mut len)?;
        let len = u16::from_le_bytes(len) as u64;
        if io::copy(&mut r.take(len), &mut io::sink())? != len {
            return Err(bad("truncated extra field"));
        }
    }
    if flags & FNAME != 0 {
        skip_until_nul(r)?;
    }
    if flags & FCOMMENT != 0 {
        skip_until_nul(r)?;
    }
    if flags & FHCRC != 0 {
        r.read_exact(&mut [0; 2])?;
    }
    Ok(())
}

fn starts_member(r: &mut impl BufRead) -> io::Result<bool> {
    let head = r.fill_buf()?;
    Ok(head.len() >= 2 && head[..2] == [0x1f, 0x8b])
}

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match std::mem::replace(&mut self.state, State::Empty) {
                State::Header(mut r) => {
                    read_header(&mut r)?;
                    self.state = State::Body(Box::new(DeflateDecoder::new(r)));
                }
                State::Body(mut decoder) => {
                    let n = decoder.read(buf)?;
                    if n > 0 {
                        self.state = State::Body(decoder);
                        return Ok(n);
                    }
                    let mut r = decoder.into_inner();
                    r.read_exact(&mut [0; 8])
                        .map_err(|_| bad("truncated trailer"))?;
                    self.state = if starts_member(&mut r)? {
                        State::Header(r)
                    } else {
                        State::Done(r)
                    };
                }
                State::Done(r) => {
                    self.state = State::Done(r);
                    return Ok(0);
                }
                State::Empty => unreachable!("never left empty"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn gz(data: &[u8], name: bool) -> Vec<u8> {
        let mut builder = flate2::GzBuilder::new();
        if name {
            builder = builder
                .filename("layer.tar")
                .comment("c")
                .extra(vec![1, 2, 3]);
        }
        let mut encoder = builder.write(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn members_with_optional_fields_concatenate() {
        let mut stream = gz(b"first ", true);
        stream.extend(gz(b"second", false));
        let mut out = Vec::new();
        let mut reader = Gzip::new(&stream[..]);
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"first second");
        assert!(reader.into_inner().is_empty());
    }

    #[test]
    fn a_truncated_member_is_an_error() {
        let stream = gz(b"some content that is long enough", false);
        let mut out = Vec::new();
        let cut = &stream[..stream.len() - 4];
        assert!(Gzip::new(cut).read_to_end(&mut out).is_err());
    }
}
