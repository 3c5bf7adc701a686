//! A blob's bytes as one `Read`, surviving a connection that breaks off
//! mid-stream: the rest is asked for with `Range`, or, when the registry
//! ignores it, the blob is fetched again and the part already delivered is
//! skipped. The caller's digest check covers the joined stream.

use std::io::{self, Read};
use std::sync::Arc;

use ureq::Body;
use ureq::http::Response;

use super::client::{Client, Get};
use crate::source::SourceError;

/// The body of `GET /v2/<repo>/blobs/<digest>`, resumed when it breaks.
pub(crate) struct BlobReader {
    client: Arc<Client>,
    path: String,
    what: String,
    body: Box<dyn Read + Send>,
    /// Bytes handed to the caller so far.
    offset: u64,
    /// The descriptor's size: an end of stream before it is a break.
    size: u64,
    resumes_left: u32,
}

impl BlobReader {
    /// Starts the download.
    pub fn open(
        client: Arc<Client>,
        path: String,
        what: String,
        size: u64,
    ) -> Result<Self, SourceError> {
        let response = client.get(&Get {
            path: &path,
            accept: None,
            range_from: None,
            what: &what,
        })?;
        let resumes_left = client.http().retry().blob_resumes;
        Ok(Self {
            body: into_reader(response),
            client,
            path,
            what,
            offset: 0,
            size,
            resumes_left,
        })
    }

    /// Replaces the broken body with one that continues at `offset`.
    fn resume(&mut self, cause: &io::Error) -> io::Result<()> {
        if self.resumes_left == 0 {
            return Err(io::Error::new(
                cause.kind(),
                format!(
                    "{}: broke off at byte {} and resumes are used up: {cause}",
                    self.what, self.offset
                ),
            ));
        }
        self.resumes_left -= 1;
        tracing::warn!(
            what = %self.what,
            offset = self.offset,
            error = %cause,
            "blob download broke off; resuming"
        );
        let response = self
            .client
            .get(&Get {
                path: &self.path,
                accept: None,
                range_from: Some(self.offset),
                what: &self.what,
            })
            .map_err(io::Error::other)?;
        let partial = response.status().as_u16() == 206;
        if partial {
            let start = response
                .headers()
                .get("content-range")
                .and_then(|value| value.to_str().ok())
                .and_then(content_range_start);
            if start != Some(self.offset) {
                return Err(io::Error::other(format!(
                    "{}: asked for bytes from {}, got a range starting at {start:?}",
                    self.what, self.offset
                )));
            }
            self.body = into_reader(response);
        } else {
            // The whole blob again: skip what the caller already has.
            let mut body = into_reader(response);
            let skipped = io::copy(&mut (&mut body).take(self.offset), &mut io::sink())?;
            if skipped != self.offset {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: the restarted download ended at byte {skipped}",
                        self.what
                    ),
                ));
            }
            self.body = body;
        }
        Ok(())
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let cause = match self.body.read(buf) {
                Ok(0) if self.offset < self.size => io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("connection closed at byte {} of {}", self.offset, self.size),
                ),
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => error,
            };
            self.resume(&cause)?;
        }
    }
}

fn into_reader(response: Response<Body>) -> Box<dyn Read + Send> {
    Box::new(response.into_body().into_reader())
}

/// The first byte of `Content-Range: bytes START-END/TOTAL`.
fn content_range_start(header: &str) -> Option<u64> {
    let range = header.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_starts_parse() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/1"), Some(0));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
