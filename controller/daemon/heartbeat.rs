//! The local agent's heartbeat: a lease in the store, renewed at a third of
//! its TTL, whose key tells the controller the member is alive.

use std::sync::Arc;
use std::time::Duration;

use clusvc_store::{Store, Txn, Write, keys};

use crate::reconcile::Metrics;

/// Registers this member's lease, then keeps it alive in a background task
/// (registering a new lease if the old one was lost).
pub async fn spawn<S: Store>(
    store: Arc<S>,
    member: String,
    ttl: Duration,
    metrics: Arc<Metrics>,
) -> Result<(), clusvc_store::Error> {
    let key = format!("{}{member}", keys::LEASES);
    let register = {
        let store = store.clone();
        let key = key.clone();
        move || {
            let store = store.clone();
            let key = key.clone();
            async move {
                let lease = store.grant(ttl).await?;
                store
                    .txn(Txn {
                        success: vec![Write::Put {
                            key,
                            value: b"alive".to_vec(),
                            lease: Some(lease),
                        }],
                        ..Txn::default()
                    })
                    .await?;
                Ok::<_, clusvc_store::Error>(lease)
            }
        }
    };
    let mut lease = register().await?;
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(ttl / 3).await;
            match store.keepalive(lease).await {
                Ok(()) => {
                    metrics
                        .lease_renewals
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e) => {
                    tracing::warn!("lease of {member} lost ({e}); registering again");
                    if let Ok(l) = register().await {
                        lease = l;
                    }
                }
            }
        }
    });
    Ok(())
}
