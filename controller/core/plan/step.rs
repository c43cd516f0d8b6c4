//! Plan steps: what one member (or the controller, for a member) does.

use serde::{Deserialize, Serialize};

use crate::model::{Resource, Timestamp};

/// What to do with a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Op {
    /// Bring it up.
    Start,
    /// Take it down.
    Stop,
}

impl Op {
    /// `start` or `stop`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Start => "start",
            Op::Stop => "stop",
        }
    }
}

/// One step of a service's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireStep", try_from = "WireStep")]
pub enum Step {
    /// Start or stop one resource on a member (the member's agent runs it).
    Resource {
        /// The member it runs on.
        member: String,
        /// Start or stop.
        op: Op,
        /// The resource, as the spec it is started or stopped with says.
        resource: Resource,
    },
    /// Run a member's fencing command (the controller runs it).
    Fence {
        /// The member fenced.
        member: String,
        /// When the incident the fence answers began (the lease expiry or
        /// the latest failed stop); a fence after it counts.
        incident: Option<Timestamp>,
    },
    /// Wait for the fence of a member that another service's steps run in
    /// this plan: a member is fenced once per incident, however many of its
    /// services need it (the controller runs it single-flight).
    AwaitFence {
        /// The member being fenced.
        member: String,
        /// When the incident began (as for [`Step::Fence`]).
        incident: Option<Timestamp>,
    },
    /// Wait until a dead member's lease has expired, plus the grace, before
    /// its services may start elsewhere.
    AwaitLease {
        /// The dead member.
        member: String,
        /// The earliest time the service may start elsewhere.
        until: Timestamp,
    },
}

impl Step {
    /// A resource step.
    pub fn resource(member: &str, op: Op, resource: Resource) -> Self {
        Step::Resource {
            member: member.to_string(),
            op,
            resource,
        }
    }

    /// The member it runs on or concerns.
    pub fn member(&self) -> &str {
        match self {
            Step::Resource { member, .. }
            | Step::Fence { member, .. }
            | Step::AwaitFence { member, .. }
            | Step::AwaitLease { member, .. } => member,
        }
    }

    /// The resource operation, for resource steps.
    pub fn op(&self) -> Option<Op> {
        match self {
            Step::Resource { op, .. } => Some(*op),
            _ => None,
        }
    }

    /// The resource label (`ip 192.0.2.100/24`), for resource steps.
    pub fn label(&self) -> Option<String> {
        match self {
            Step::Resource { resource, .. } => Some(resource.label()),
            _ => None,
        }
    }
}

/// The JSON form of a step: `member`, `op` and the resource label
/// `resource` as plan output has always shown them (`{"member": "n1", "op":
/// {"type": "start"}, "resource": "ip 192.0.2.100/24"}`), plus the resource
/// itself under `spec`, so a plan read back from the API carries what its
/// steps act on.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireStep {
    member: String,
    op: WireOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spec: Option<Resource>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
enum WireOp {
    Start,
    Stop,
    Fence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident: Option<Timestamp>,
    },
    AwaitFence {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        incident: Option<Timestamp>,
    },
    AwaitLease {
        until: Timestamp,
    },
}

impl From<Step> for WireStep {
    fn from(step: Step) -> Self {
        match step {
            Step::Resource {
                member,
                op,
                resource,
            } => WireStep {
                member,
                op: match op {
                    Op::Start => WireOp::Start,
                    Op::Stop => WireOp::Stop,
                },
                resource: Some(resource.label()),
                spec: Some(resource),
            },
            Step::Fence { member, incident } => WireStep {
                member,
                op: WireOp::Fence { incident },
                resource: None,
                spec: None,
            },
            Step::AwaitFence { member, incident } => WireStep {
                member,
                op: WireOp::AwaitFence { incident },
                resource: None,
                spec: None,
            },
            Step::AwaitLease { member, until } => WireStep {
                member,
                op: WireOp::AwaitLease { until },
                resource: None,
                spec: None,
            },
        }
    }
}

/// A resource step without its resource.
#[derive(Debug, thiserror::Error)]
#[error("a {0} step needs its resource under \"spec\"")]
struct MissingSpec(&'static str);

impl TryFrom<WireStep> for Step {
    type Error = MissingSpec;

    fn try_from(w: WireStep) -> Result<Self, Self::Error> {
        let resource = |op: Op| {
            w.spec
                .clone()
                .map(|resource| Step::Resource {
                    member: w.member.clone(),
                    op,
                    resource,
                })
                .ok_or(MissingSpec(op.as_str()))
        };
        match w.op {
            WireOp::Start => resource(Op::Start),
            WireOp::Stop => resource(Op::Stop),
            WireOp::Fence { incident } => Ok(Step::Fence {
                member: w.member,
                incident,
            }),
            WireOp::AwaitFence { incident } => Ok(Step::AwaitFence {
                member: w.member,
                incident,
            }),
            WireOp::AwaitLease { until } => Ok(Step::AwaitLease {
                member: w.member,
                until,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::IpAddress;

    #[test]
    fn steps_round_trip_through_their_json_form() {
        let steps = vec![
            Step::resource(
                "n1",
                Op::Start,
                Resource::Ip(IpAddress {
                    address: "192.0.2.1/24".into(),
                    interface: None,
                }),
            ),
            Step::Fence {
                member: "n2".into(),
                incident: Some(Timestamp::from_millis(500)),
            },
            Step::AwaitLease {
                member: "n2".into(),
                until: Timestamp::from_millis(1_000),
            },
        ];
        let json = serde_json::to_string(&steps).unwrap();
        assert!(json.contains(r#""resource":"ip 192.0.2.1/24""#), "{json}");
        let back: Vec<Step> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, steps);
    }
}
