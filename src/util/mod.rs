//! The ground floor: helpers every capability may use and that use none of them.

pub mod tar;
