//! The data clusvc reasons about: manifests, the validated desired state and
//! the observed state. Pure: no I/O, no clock, no async.

pub mod desired;
pub mod duration;
pub mod event;
pub mod manifest;
pub mod net;
pub mod observed;
pub mod resource;
pub mod scalar;
pub mod script;
pub mod time;

pub use desired::{DesiredState, Issue, MemberRefs};
pub use duration::Duration;
pub use manifest::*;
pub use observed::*;
pub use resource::{Kind, Resource, ResourceRef};
pub use scalar::ScalarString;
pub use time::Timestamp;
