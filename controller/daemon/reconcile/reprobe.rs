//! After a restart: what still runs on local members is probed, so the
//! planner completes or rolls back half-done work instead of redoing it.

use clusvc_core::model::event::Level;
use clusvc_core::model::{ObservedService, ResourceStatus, ServiceSpec, ServiceState};
use std::sync::Arc;

use clusvc_store::Store;

use super::{Controller, Error};

impl<S: Store> Controller<S> {
    /// Waits for actions a crashed predecessor left running, then probes
    /// every service recorded on a local member and records what is up.
    pub(super) async fn reprobe(&self) -> Result<(), Error> {
        let agents: Vec<Arc<dyn clusvc_agent::Agent>> = self
            .agents
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for agent in agents {
            agent.settle().await;
        }
        let todo: Vec<(String, ObservedService, ServiceSpec)> = {
            let c = self.cache.read();
            c.observed
                .services
                .iter()
                .filter(|(_, o)| {
                    // Remote agents probe their own member when they start.
                    o.member
                        .as_ref()
                        .and_then(|m| self.agent(m))
                        .is_some_and(|a| !a.is_remote())
                        && !matches!(o.state, ServiceState::Stopped | ServiceState::Disabled)
                })
                .filter_map(|(n, o)| {
                    let spec = o
                        .started_with
                        .clone()
                        .or_else(|| c.services().get(n).map(|s| s.spec.clone()))?;
                    Some((n.clone(), o.clone(), spec))
                })
                .collect()
        };
        for (name, mut o, spec) in todo {
            let member = o.member.clone().expect("filtered");
            let agent = self.agent(&member).expect("filtered");
            let statuses = agent
                .probe(&Self::service_ref(&name, o.id, &spec), &spec)
                .await;
            let up = statuses
                .iter()
                .filter(|(_, s)| *s == ResourceStatus::Ok)
                .count();
            o.resources = statuses.into_iter().collect();
            o.state = match o.state {
                ServiceState::Running | ServiceState::Starting if up == o.resources.len() => {
                    ServiceState::Running
                }
                ServiceState::Running | ServiceState::Starting => ServiceState::Starting,
                other => other,
            };
            self.emit(
                &name,
                Level::Notice,
                format!(
                    "after restart: {up} of {} resources up on {member}; state {}",
                    o.resources.len(),
                    o.state
                ),
            );
            self.record(&name, Some(&o)).await?;
        }
        Ok(())
    }
}
