//! Claiming a due request, keeping its lease while it runs, and recording how the run ended.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use baton_store::{StoreError, Timestamp};
use baton_vocab::RequestState;

use super::{RequestEnd, Run};
use crate::Engine;

impl Engine {
    /// Claims one due request and runs it until it waits or ends; `None` when none was due.
    pub async fn run_request_once(&self) -> Result<Option<(String, RequestEnd)>, StoreError> {
        let now = Timestamp::now();
        let lease = time::Duration::try_from(self.config.lease).unwrap_or(time::Duration::MINUTE);
        let Some(request) = self.store.claim_request(&self.config.worker_id, now.plus(lease), now).await? else {
            return Ok(None);
        };
        let id = request.id.clone();
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = self.request_heartbeat(id.clone(), lost.clone());
        let end = match Run::load(self, request, lost).await {
            Ok(mut run) => {
                let end = run.run().await;
                if let RequestEnd::Waiting(wait) = &end {
                    let after =
                        Timestamp::now().plus(time::Duration::try_from(*wait).unwrap_or(time::Duration::MINUTE));
                    self.store
                        .release_request(&id, &self.config.worker_id, after, &run.checkpoint(), run.note.as_deref())
                        .await?;
                }
                end
            }
            Err(end) => end,
        };
        drop(heartbeat);
        let owner = &self.config.worker_id;
        match &end {
            RequestEnd::Completed => {
                if self.store.finish_request(&id, owner, RequestState::Completed, None, Timestamp::now()).await? {
                    self.audit_request(&id, "completed").await?;
                }
            }
            RequestEnd::Failed(why) => {
                if self.store.finish_request(&id, owner, RequestState::Failed, Some(why), Timestamp::now()).await? {
                    self.audit_request(&id, &format!("failed: {why}")).await?;
                }
            }
            RequestEnd::Waiting(_) | RequestEnd::LeaseLost => {}
        }
        Ok(Some((id, end)))
    }

    /// Writes what became of a request to the audit log, as this plan's system did it.
    pub(crate) async fn audit_request(&self, id: &str, detail: &str) -> Result<(), StoreError> {
        self.store
            .record_audit(&baton_store::NewAuditEvent {
                at: Timestamp::now(),
                actor_account: None,
                actor: format!("system ({})", self.config.worker_id),
                action: baton_vocab::AuditAction::RequestChanged.to_string(),
                member_account: None,
                subject: format!("request {id}"),
                detail: detail.to_owned(),
            })
            .await
    }

    fn request_heartbeat(&self, id: String, lost: Arc<AtomicBool>) -> crate::job::Heartbeat {
        let engine = self.clone();
        crate::job::Heartbeat::spawn(async move {
            loop {
                tokio::time::sleep(engine.config.lease / 3).await;
                let until = Timestamp::now()
                    .plus(time::Duration::try_from(engine.config.lease).unwrap_or(time::Duration::MINUTE));
                match engine.store.renew_request_lease(&id, &engine.config.worker_id, until).await {
                    Ok(true) => {}
                    Ok(false) => {
                        lost.store(true, Ordering::SeqCst);
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "request lease renewal failed"),
                }
            }
        })
    }
}
