//! A reader moved to its own thread: the producer fills 1 MiB buffers and
//! hands them over a bounded channel, so inflating a layer and writing its
//! files run on two cores. Buffers are recycled; at most a few are in
//! flight, so memory stays bounded.

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::Scope;

const CHUNK: usize = 1024 * 1024;
/// Chunks in flight between the threads.
const DEPTH: usize = 4;

/// The consuming end.
pub struct Pipe {
    chunks: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

/// Reads `source` to its end on a thread of `scope`, then calls `finish`
/// with it (to check what the reader could only check at the end); an
/// error from either reaches the consumer after the data before it.
pub fn spawn<'scope, R>(
    scope: &'scope Scope<'scope, '_>,
    mut source: R,
    finish: impl FnOnce(R) -> io::Result<()> + Send + 'scope,
) -> Pipe
where
    R: Read + Send + 'scope,
{
    let (send, chunks) = sync_channel(DEPTH);
    let (recycle, recycled) = sync_channel::<Vec<u8>>(DEPTH + 2);
    scope.spawn(move || {
        loop {
            let mut buffer = recycled.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
            buffer.resize(CHUNK, 0);
            let mut filled = 0;
            let outcome = loop {
                match source.read(&mut buffer[filled..]) {
                    Ok(0) => break Ok(true),
                    Ok(n) => {
                        filled += n;
                        if filled == CHUNK {
                            break Ok(false);
                        }
                    }
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => break Err(err),
                }
            };
            buffer.truncate(filled);
            if filled > 0 && send.send(Ok(buffer)).is_err() {
                return;
            }
            match outcome {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(err) = finish(source) {
                        let _ = send.send(Err(err));
                    }
                    return;
                }
                Err(err) => {
                    let _ = send.send(Err(err));
                    return;
                }
            }
        }
    });
    Pipe {
        chunks,
        recycle,
        current: Vec::new(),
        at: 0,
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.current, next);
                    let _ = self.recycle.try_send(used);
                    self.at = 0;
                }
                Ok(Err(err)) => return Err(err),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_a_late_error_follows_them() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        std::thread::scope(|scope| {
            let mut pipe = spawn(scope, &data[..], |_| Err(io::Error::other("late")));
            let mut out = Vec::new();
            let err = pipe.read_to_end(&mut out).unwrap_err();
            assert_eq!(err.to_string(), "late");
            assert_eq!(out, data);
        });
    }
}
