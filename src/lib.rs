//! gatehouse

pub mod decide;
pub mod policy;
