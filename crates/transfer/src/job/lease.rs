//! The lease heartbeat: a transfer's lease is renewed while it runs; a lost lease stops it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Instrument;

use baton_store::Timestamp;

use crate::Engine;

/// A running heartbeat: it stops when dropped, so a job or request whose future is dropped
/// (shutdown, a cancelled task) stops renewing its lease and another worker takes it over, as
/// after a crash.
pub(crate) struct Heartbeat(tokio::task::JoinHandle<()>);

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Heartbeat {
    pub(crate) fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) -> Self {
        Heartbeat(tokio::spawn(task))
    }
}

/// Renews the lease every third of its length; flags the job when the lease is lost.
pub(super) fn spawn_heartbeat(engine: Engine, id: String, lost: Arc<AtomicBool>) -> Heartbeat {
    Heartbeat::spawn(
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
