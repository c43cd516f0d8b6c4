//! Where things live in the store, and their encoding (JSON).

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Prefix of everything clusvc stores.
pub const ROOT: &str = "/clusvc/";
/// Desired members: `PREFIX + name`.
pub const MEMBERS: &str = "/clusvc/desired/member/";
/// Desired services.
pub const SERVICES: &str = "/clusvc/desired/service/";
/// Observed services.
pub const OBSERVED_SERVICES: &str = "/clusvc/observed/service/";
/// Observed members (operator drains, fencing records).
pub const OBSERVED_MEMBERS: &str = "/clusvc/observed/member/";
/// Member liveness: a key per member attached to its agent's lease.
pub const LEASES: &str = "/clusvc/lease/member/";
/// A controller acted on a dead member's loss (it is about to move what
/// the member ran, or fenced it): `VACATED + MEMBER`, set before anything
/// is moved and only while the member has no lease; the grant of its next
/// lease removes it and tells its agent to stop what it kept.
pub const VACATED: &str = "/clusvc/vacated/";
/// Work for members' agents: `PREFIX + member + "/" + service`.
pub const WORK: &str = "/clusvc/work/";
/// What agents did with it: `PREFIX + member + "/" + service`.
pub const RESULTS: &str = "/clusvc/result/";
/// The plan a controller is carrying out through remote agents:
/// `IN_FLIGHT + SERVICE`.
pub const IN_FLIGHT: &str = "/clusvc/inflight/";
/// What each member's agent reported having of the scripts services run:
/// `INVENTORY + MEMBER`.
pub const INVENTORY: &str = "/clusvc/inventory/";
/// Failed status checks agents reported: `STATUS + MEMBER + "/" + SERVICE`.
pub const STATUS: &str = "/clusvc/status/";
/// Operator requests recorded by a cluster server for the leader to carry
/// out: `REQUESTS + SERVICE`.
pub const REQUESTS: &str = "/clusvc/requests/";
/// Events the leader's controller emitted, for every server to show:
/// `EVENTS + TIME-SERVER-SEQ`.
pub const EVENTS: &str = "/clusvc/events/";
/// The next service ID.
pub const NEXT_ID: &str = "/clusvc/meta/next-service-id";

/// Encodes a value (JSON).
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("model types serialize")
}

/// Decodes a value, saying why it cannot be.
pub fn try_decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Decodes a value; a bad record is logged and skipped by callers.
pub fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!("undecodable store record {key}: {e}");
            None
        }
    }
}
