//! Why this module exists: a run over 100,000 targets must not hold 100,000 results (or listed
//! tokens) in memory until the report is written: memory stays flat in the number of targets
//! (docs/DESIGN.md §8). A [`Spool`] appends each item, as it finishes, as one JSON line to an
//! unlinked temporary file, and reads them back in order when the report, the summary or a
//! table is written. Items hold names, statuses and causes, never a secret (the run's results
//! are what the report prints anyway). When no temporary file can be had (a full or read-only
//! temporary folder) or a write to it fails, the items stay in memory: the run loses nothing,
//! it only costs memory.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;

/// Items appended in order and read back in that order, mostly from a temporary file.
pub struct Spool<T> {
    /// The file and how many of the items are in it (written and flushed or buffered).
    file: Option<BufWriter<File>>,
    in_file: usize,
    /// Items that did not go to the file; they come after the file's.
    memory: Vec<T>,
    /// Set after the first failure: no temporary file is tried again.
    no_file: bool,
}

impl<T> Default for Spool<T> {
    fn default() -> Self {
        Spool {
            file: None,
            in_file: 0,
            memory: Vec::new(),
            no_file: false,
        }
    }
}

impl<T> std::fmt::Debug for Spool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("in_file", &self.in_file)
            .field("in_memory", &self.memory.len())
            .finish()
    }
}

/// Below this many items a spool stays in memory: small runs need no file.
const IN_MEMORY_UP_TO: usize = 256;

impl<T: Serialize + DeserializeOwned + Clone> Spool<T> {
    pub fn new() -> Spool<T> {
        Spool::default()
    }

    /// Items only in memory (tests, reports read back from a file).
    pub fn in_memory(items: Vec<T>) -> Spool<T> {
        Spool {
            memory: items,
            no_file: true,
            ..Spool::default()
        }
    }

    pub fn len(&self) -> usize {
        self.in_file + self.memory.len()
    }

    /// Every item, collected (tests, small runs).
    pub fn to_vec(&self) -> Vec<T> {
        self.iter().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, item: T) {
        if self.file.is_none() && !self.no_file && self.memory.len() >= IN_MEMORY_UP_TO {
            self.start_file();
        }
        if let Some(file) = self.file.as_mut() {
            let mut line = match serde_json::to_vec(&item) {
                Ok(line) => line,
                Err(_) => {
                    self.memory.push(item);
                    return;
                }
            };
            line.push(b'\n');
            if file.write_all(&line).is_ok() {
                self.in_file += 1;
                return;
            }
            // A full disk, say: what the file holds stays readable up to its last whole line,
            // and the rest stays here.
            self.no_file = true;
        }
        self.memory.push(item);
    }

    /// Move what is in memory so far into a new temporary file, if one can be had.
    fn start_file(&mut self) {
        let Ok(file) = tempfile::tempfile() else {
            self.no_file = true;
            return;
        };
        let mut file = BufWriter::with_capacity(64 << 10, file);
        let mut lines = Vec::new();
        for item in &self.memory {
            match serde_json::to_vec(item) {
                Ok(line) => {
                    lines.extend_from_slice(&line);
                    lines.push(b'\n');
                }
                Err(_) => {
                    self.no_file = true;
                    return;
                }
            }
        }
        if file.write_all(&lines).is_err() {
            self.no_file = true;
            return;
        }
        self.in_file = self.memory.len();
        self.memory = Vec::new();
        self.file = Some(file);
    }

    /// Every item, in the order pushed. Items read back from the file are new values.
    pub fn iter(&self) -> impl Iterator<Item = T> + '_ {
        let from_file: Box<dyn Iterator<Item = T> + '_> = match &self.file {
            Some(w) => {
                // A `BufWriter` can only flush through `&mut`: read its buffer and the file
                // separately instead, the file first.
                let file = w.get_ref();
                let reader = BufReader::with_capacity(
                    64 << 10,
                    At { file, pos: 0 }.chain(std::io::Cursor::new(w.buffer())),
                );
                Box::new(
                    reader
                        .split(b'\n')
                        .take(self.in_file)
                        .map_while(Result::ok)
                        .filter_map(|line| serde_json::from_slice(&line).ok()),
                )
            }
            None => Box::new(std::iter::empty()),
        };
        from_file.chain(self.memory.iter().cloned())
    }
}

impl<T: Serialize + DeserializeOwned + Clone> From<Vec<T>> for Spool<T> {
    fn from(items: Vec<T>) -> Self {
        Spool::in_memory(items)
    }
}

impl<T: Serialize + DeserializeOwned + Clone> Serialize for Spool<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de, T: Serialize + DeserializeOwned + Clone> serde::Deserialize<'de> for Spool<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(Spool::in_memory)
    }
}

impl<T: Serialize + DeserializeOwned + Clone> Clone for Spool<T> {
    fn clone(&self) -> Self {
        Spool::in_memory(self.iter().collect())
    }
}

impl<T: Serialize + DeserializeOwned + Clone + PartialEq> PartialEq for Spool<T> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Eq> Eq for Spool<T> {}

/// A reader of `file` from `pos` on that leaves the file's own offset alone (the writer's).
struct At<'f> {
    file: &'f File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_in_order_from_memory_and_from_the_file() {
        for n in [0, 3, IN_MEMORY_UP_TO, IN_MEMORY_UP_TO + 1, 5_000] {
            let mut s = Spool::new();
            for i in 0..n {
                s.push(format!("item {i}"));
            }
            assert_eq!(s.len(), n);
            let back: Vec<String> = s.iter().collect();
            assert_eq!(back.len(), n);
            assert!(
                back.iter()
                    .enumerate()
                    .all(|(i, b)| *b == format!("item {i}"))
            );
            // And again: reading does not consume.
            assert_eq!(s.iter().count(), n);
        }
    }

    #[test]
    fn a_big_spool_keeps_nothing_in_memory() {
        let mut s = Spool::new();
        for i in 0..10_000u32 {
            s.push(i);
        }
        assert!(s.memory.is_empty(), "{:?}", s);
        assert_eq!(s.iter().sum::<u32>(), (0..10_000u32).sum::<u32>());
        let json = serde_json::to_string(&s).unwrap();
        let back: Spool<u32> = serde_json::from_str(&json).unwrap();
        assert!(back == s);
    }
}
