//! The ground floor: helpers every capability may use and that use none of them.

pub mod digest;
pub mod fs;
pub mod tar;
pub mod time;

pub use digest::{sha256, sha256_hex, short};
pub use time::now_rfc3339;

#[cfg(test)]
mod imports;
