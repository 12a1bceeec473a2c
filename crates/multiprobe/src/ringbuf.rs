//! Consuming a `BPF_MAP_TYPE_RINGBUF` map from user space.
//!
//! The kernel shares the ring with us through two mappings: a writable page holding our
//! consumer position, and a read-only area holding the producer position followed by the data
//! pages, mapped twice in a row so a record that wraps around the end reads as one piece.

use crate::error::MapError;
use crate::map::Map;
use crate::object::MapType;
use crate::sys::{self, Mmap};

/// Set in a record header while the producer is still writing it.
const BUSY: u32 = 1 << 31;
/// Set in a record header when the producer discarded it.
const DISCARD: u32 = 1 << 30;
/// Record header: length and flags, then the page offset (unused here).
const HEADER: u64 = 8;

/// A ring buffer reader. Records are returned in the order they were committed.
#[derive(Debug)]
pub struct RingBuf {
    map: Map,
    consumer: Mmap,
    producer: Mmap,
    /// Offset of the data pages in `producer`.
    data: usize,
    mask: u64,
}

impl RingBuf {
    /// Maps the ring buffer `map` for reading.
    pub fn new(map: &Map) -> Result<RingBuf, MapError> {
        if map.map_type() != MapType::Ringbuf {
            return Err(MapError::WrongType {
                map: map.name().to_string(),
                map_type: map.map_type(),
                hint: "only ring buffer maps can be read as a ring buffer",
            });
        }
        let page = sys::page_size();
        let size = map.max_entries() as usize;
        let err = |op, source| MapError::Syscall { map: map.name().to_string(), op, source };
        let consumer = Mmap::map(map.fd(), page, 0, true).map_err(|e| err("mapping the consumer page", e))?;
        let producer =
            Mmap::map(map.fd(), page + 2 * size, page, false).map_err(|e| err("mapping the data pages", e))?;
        Ok(RingBuf { map: map.clone(), consumer, producer, data: page, mask: size as u64 - 1 })
    }

    /// The map being read.
    pub fn map(&self) -> &Map {
        &self.map
    }

    /// Takes the next committed record, if any, without waiting.
    pub fn next_record(&mut self) -> Option<Vec<u8>> {
        loop {
            let cons = self.consumer.load_acquire_u64(0);
            let prod = self.producer.load_acquire_u64(0);
            if cons >= prod {
                return None;
            }
            let at = self.data + (cons & self.mask) as usize;
            let header = self.producer.load_acquire_u32(at);
            if header & BUSY != 0 {
                return None;
            }
            let len = header & !(BUSY | DISCARD);
            let next = cons + (u64::from(len) + HEADER).div_ceil(8) * 8;
            let record = (header & DISCARD == 0).then(|| {
                let mut buf = vec![0u8; len as usize];
                self.producer.copy_out(at + HEADER as usize, &mut buf);
                buf
            });
            self.consumer.store_release_u64(0, next);
            if let Some(r) = record {
                return Some(r);
            }
        }
    }

    /// Hands every committed record to `f`; returns how many there were.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(r) = self.next_record() {
            f(&r);
            n += 1;
        }
        n
    }
}
