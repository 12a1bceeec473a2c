//! Why a map operation failed: [`MapError`].

use std::io;

use super::PinError;
use crate::object::MapType;

/// Why a map operation failed.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)] // variant fields are named in the messages
pub enum MapError {
    /// The kernel refused the operation.
    #[error("map `{map}`: {op} failed: {source}")]
    Syscall { map: String, op: &'static str, source: io::Error },
    /// A key of the wrong size for this map.
    #[error("map `{map}` has {expected}-byte keys, the key given is {got} bytes")]
    KeySize { map: String, expected: u32, got: usize },
    /// A value of the wrong size for this map.
    #[error("map `{map}` has {expected}-byte values, the value given is {got} bytes")]
    ValueSize { map: String, expected: u32, got: usize },
    /// A batch of keys and values of different lengths.
    #[error("map `{map}`: batch of {keys} keys but {values} values: give one value per key")]
    BatchLength { map: String, keys: usize, values: usize },
    /// A per-CPU operation on a map that is not per-CPU, or the reverse.
    #[error("map `{map}` is a {map_type:?} map: {hint}")]
    WrongType { map: String, map_type: MapType, hint: &'static str },
    /// Pinning, or opening a pin, failed.
    #[error(transparent)]
    Pin(#[from] PinError),
}

impl MapError {
    /// The errno behind the failure, if the kernel gave one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MapError::Syscall { source, .. } => source.raw_os_error(),
            MapError::Pin(e) => e.errno(),
            _ => None,
        }
    }
}
