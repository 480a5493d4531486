//! The lease heartbeat: a transfer's lease is renewed while it runs; a lost lease stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

use baton_store::Timestamp;

use crate::Engine;

/// Renews the lease every third of its length; flags the job when the lease is lost.
pub(super) fn spawn_heartbeat(engine: Engine, id: String, lost: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        async move {
            let every = engine.config.lease / 3;
            loop {
                tokio::time::sleep(every).await;
                let until = Timestamp::now()
                    .plus(time::Duration::try_from(engine.config.lease).unwrap_or(time::Duration::MINUTE));
                match engine.store.renew_lease(&id, &engine.config.worker_id, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "lease renewal failed"),
                }
            }
        }
        .instrument(tracing::Span::current()),
    )
}
