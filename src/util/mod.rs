//! The ground floor: helpers every capability may use and that use none of them.

pub mod digest;
pub mod tar;

pub use digest::{sha256, sha256_hex, short};
