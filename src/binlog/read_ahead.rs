//! The log's files read one ahead of the replay, on a thread of their own:
//! while the replay works through one file's records, the kernel copies the
//! next into memory and this thread compares its records' checksums (each
//! about a tenth of a restart's CPU, which the replay no longer waits for
//! when the machine has a second core).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};

use super::record::{HEADER_LEN, Header, checked_frames_end};
use super::recovery::spare_header;
use super::segment::file_name;

/// What a file holds, as read.
pub(super) enum Content {
    /// A spare file made ahead: its header, then nothing but zeros (see
    /// [`spare_header`]); not read whole.
    Spare(Header),
    /// The file's bytes, and where the run of records whose checksums
    /// hold, from the header on, ends ([`checked_frames_end`]).
    Bytes { bytes: Vec<u8>, checked_until: usize },
}

/// Buffers of file bytes: one the replay works on, one being filled. Files
/// are the same size, and reusing the memory spares a fresh allocation (and
/// its page faults) per file.
const BUFFERS: usize = 2;

/// The files being read, in order.
pub(super) struct Files {
    read: Receiver<(PathBuf, io::Result<Content>)>,
    /// Buffers the replay is done with, for the reader to fill again.
    done: Sender<Vec<u8>>,
    /// The file handed out last.
    current: Option<Content>,
}

impl Files {
    /// The next file: its path, and what it holds (or why it could not be
    /// read). The file handed out before is done with.
    pub(super) fn next(&mut self) -> (PathBuf, io::Result<&Content>) {
        if let Some(Content::Bytes { bytes, .. }) = self.current.take() {
            // The reader is gone once every file is read: nothing to fill.
            let _ = self.done.send(bytes);
        }
        let (path, read) = self.read.recv().expect("the reader reads every file, in order");
        match read {
            Ok(content) => (path, Ok(&*self.current.insert(content))),
            Err(e) => (path, Err(e)),
        }
    }
}

/// Runs `replay` with the files `binlog.N` of `dir`, N in `seqs` in that
/// order, each read while `replay` works on the one before. `replay` may
/// stop before the last: the reader stops too.
pub(super) fn with_files<T>(dir: &Path, seqs: &[u64], replay: impl FnOnce(&mut Files) -> T) -> T {
    std::thread::scope(|scope| {
        let (to_replay, read) = sync_channel(1);
        let (done, to_fill) = channel();
        for _ in 0..BUFFERS {
            done.send(Vec::new()).expect("its receiver is here");
        }
        scope.spawn(move || {
            for &seq in seqs {
                let path = dir.join(file_name(seq));
                let content = match spare_header(&path, seq) {
                    Some(header) => Ok(Content::Spare(header)),
                    None => {
                        // No buffer comes back once the replay stopped.
                        let Ok(mut bytes) = to_fill.recv() else { return };
                        read_into(&path, &mut bytes).map(|()| {
                            let checked_until = checked_frames_end(&bytes, HEADER_LEN);
                            Content::Bytes { bytes, checked_until }
                        })
                    }
                };
                if to_replay.send((path, content)).is_err() {
                    return;
                }
            }
        });
        // Dropped before the scope waits for the reader, which a blocked
        // send or receive then lets go.
        let mut files = Files { read, done, current: None };
        replay(&mut files)
    })
}

fn read_into(path: &Path, buf: &mut Vec<u8>) -> io::Result<()> {
    buf.clear();
    fs::File::open(path)?.read_to_end(buf)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// binlog.1 to binlog.5: 2 and 4 spare files (a header, then zeros),
    /// the others holding `file N` after a header, binlog.3 unreadable (a
    /// directory).
    fn five_files() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for seq in [1, 2, 4, 5] {
            let mut bytes = Header::new(seq, 1).encode().to_vec();
            match seq {
                2 | 4 => bytes.resize(HEADER_LEN + 4096, 0),
                _ => bytes.extend_from_slice(format!("file {seq}").as_bytes()),
            }
            fs::write(dir.path().join(file_name(seq)), bytes).unwrap();
        }
        fs::create_dir(dir.path().join(file_name(3))).unwrap();
        dir
    }

    fn describe(content: io::Result<&Content>) -> String {
        match content {
            Ok(Content::Spare(header)) => format!("spare {}", header.seq),
            Ok(Content::Bytes { bytes, .. }) => String::from_utf8_lossy(&bytes[HEADER_LEN..]).into_owned(),
            Err(_) => "unreadable".into(),
        }
    }

    #[test]
    fn files_come_in_order_each_as_it_is() {
        let dir = five_files();
        let seen = with_files(dir.path(), &[1, 2, 3, 4, 5], |files| {
            (1..=5).map(|_| describe(files.next().1)).collect::<Vec<_>>()
        });
        assert_eq!(seen, ["file 1", "spare 2", "unreadable", "spare 4", "file 5"]);
    }

    #[test]
    fn a_replay_that_stops_early_stops_the_reader() {
        let dir = five_files();
        // The reader is then blocked on a full queue or on a buffer: it
        // must let go, or this never returns.
        for stop_after in 0..5 {
            let seen = with_files(dir.path(), &[1, 5, 1, 5, 1], |files| {
                (0..stop_after).map(|_| describe(files.next().1)).collect::<Vec<_>>()
            });
            assert_eq!(seen.len(), stop_after);
        }
    }
}
