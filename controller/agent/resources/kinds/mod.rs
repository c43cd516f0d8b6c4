//! The six resource kinds of SPEC §4, one file each: what start, stop and
//! status mean for it.

pub mod application;
pub mod device;
pub mod filesystem;
pub mod ip;
pub mod nfs;
pub mod samba;
