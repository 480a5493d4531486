//! Requests to the previous plan: GETs with one token refresh on 401, pages fetched ahead,
//! refreshing tokens before they expire, and a failed request ending the job.

use baton_store::Timestamp;
use baton_vocab::LinkState;
use serde_json::Value;
use tracing::Instrument;

use super::{Checkpoint, Job, JobEnd, Stop};
use crate::auth::{PayerCredentials, RefreshError, refresh};
use crate::client::{Audit, FetchError};

/// A page fetched ahead: its result and the requests it took, consumed by the `fetch` step that
/// asks for the same URL. Nothing of it counts until that step commits; dropped, it is aborted.
pub(super) struct Prefetch {
    url: String,
    task: tokio::task::JoinHandle<(Result<Value, FetchError>, Vec<baton_store::TransferRequest>)>,
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Job<'_> {
    /// GETs from the previous plan; on 401 refreshes the token once and tries again.
    pub(super) async fn get(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        if self.token_expiring() {
            self.refresh_token().await?;
        }
        match self.client.get_json(url, self.token.as_deref(), audit).await {
            Err(FetchError::Unauthorized) => self.refresh_and_get(url, audit).await,
            other => other.map_err(Stop::Fetch),
        }
    }

    /// The token was refused: refresh it once and try again.
    pub(super) async fn refresh_and_get(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        self.refresh_token().await?;
        match self.client.get_json(url, self.token.as_deref(), audit).await {
            Err(FetchError::Unauthorized) => Err(Stop::End(JobEnd::NeedsReauthorization(
                "The previous plan did not accept a fresh access token; the member needs to sign in there again."
                    .into(),
            ))),
            other => other.map_err(Stop::Fetch),
        }
    }

    /// A page of the fetch phase: the prefetched one when it is for this URL, else fetched now.
    pub(super) async fn get_page(&mut self, url: &str, audit: &Audit) -> Result<Value, Stop> {
        if let Some(mut prefetch) = self.prefetch.take()
            && prefetch.url == url
            && let Ok((result, requests)) = (&mut prefetch.task).await
        {
            for request in requests {
                audit.record(request);
            }
            return match result {
                Err(FetchError::Unauthorized) => self.refresh_and_get(url, audit).await,
                other => other.map_err(Stop::Fetch),
            };
        }
        self.get(url, audit).await
    }

    /// Starts fetching the page the next `fetch` step will ask for, so that the previous plan
    /// serves it while this one is ingested and committed.
    pub(super) fn prefetch_next_page(&mut self) {
        let Checkpoint::Fetch { plan, step, next, .. } = &self.checkpoint else { return };
        let url = match (next, plan.steps.get(*step)) {
            (Some(next), _) => next.clone(),
            (None, Some(first)) => self.client.url(&first.path),
            (None, None) => return,
        };
        if self.token_expiring() || !self.client.same_origin(&url) {
            return;
        }
        let client = self.client.clone();
        let token = self.token.clone();
        let target = url.clone();
        let task = tokio::spawn(
            async move {
                let audit = Audit::default();
                let result = client.get_json(&target, token.as_deref(), &audit).await;
                (result, audit.take())
            }
            .instrument(tracing::Span::current()),
        );
        self.prefetch = Some(Prefetch { url, task });
    }

    pub(super) fn token_expiring(&self) -> bool {
        let renewable = self.link.refresh_token.is_some() || self.link.access.is_system();
        renewable && self.link.access_expires_at.is_some_and(|at| at < Timestamp::now().millis() + 30_000)
    }

    pub(super) async fn refresh_token(&mut self) -> Result<(), Stop> {
        let engine = self.engine;
        let credentials = self.credentials.clone().ok_or_else(|| {
            Stop::End(JobEnd::NeedsReauthorization(format!(
                "This plan has no client registration for {} to refresh the access token.",
                self.link.payer_id
            )))
        })?;
        if self.link.access.is_system() {
            return self.system_token(&credentials).await;
        }
        let token_url = match &credentials.token_url {
            Some(url) => url.clone(),
            None => self.discover_token_url().await?,
        };
        // The latest tokens: another run may have rotated the refresh token meanwhile.
        self.link = engine
            .store
            .link(&self.link.id)
            .await
            .map_err(|e| Stop::End(JobEnd::Failed(e.to_string())))?
            .unwrap_or(self.link.clone());
        match refresh(&engine.store, &engine.cipher, &engine.http, &self.link, &credentials, &token_url).await {
            Ok(access) => {
                self.token = Some(access);
                if let Ok(Some(link)) = engine.store.link(&self.link.id).await {
                    self.link = link;
                }
                Ok(())
            }
            Err(RefreshError::Reauthorize(why)) => {
                let _ =
                    engine.store.set_link_state(&self.link.id, LinkState::NeedsReauthorization, Timestamp::now()).await;
                Err(Stop::End(JobEnd::NeedsReauthorization(format!(
                    "The member needs to sign in at their previous plan again ({why})."
                ))))
            }
            Err(RefreshError::Failed(why)) => Err(Stop::End(JobEnd::Failed(why))),
        }
    }

    /// A match for this plan's system: a new Backend Services token (there is no refresh
    /// token), stored sealed like any other.
    async fn system_token(&mut self, credentials: &PayerCredentials) -> Result<(), Stop> {
        let engine = self.engine;
        let backend = credentials.backend.as_ref().ok_or_else(|| {
            Stop::End(JobEnd::Failed(format!(
                "This plan has no Payer-to-Payer registration at {} any more.",
                self.link.payer_id
            )))
        })?;
        let token_url = match &backend.token_url {
            Some(url) => url.clone(),
            None => self.discover_token_url().await?,
        };
        let now = Timestamp::now();
        let token = crate::backend::system_token(&engine.http, backend, &token_url, now.millis())
            .await
            .map_err(|e| Stop::End(JobEnd::Failed(e.to_string())))?;
        let place = baton_store::PayerLink::token_place(&self.link.id, "access");
        let sealed = engine
            .cipher
            .seal_for(&token.access_token, &place)
            .map_err(|e| Stop::End(JobEnd::Failed(e.to_string())))?;
        engine
            .store
            .update_link_tokens(&self.link.id, &sealed, token.expires_at, None, now)
            .await
            .map_err(|e| Stop::End(JobEnd::Failed(e.to_string())))?;
        self.link.access_expires_at = token.expires_at;
        self.token = Some(token.access_token);
        tracing::info!(link = %self.link.id, "system token renewed");
        Ok(())
    }

    pub(super) async fn discover_token_url(&self) -> Result<String, Stop> {
        let audit = Audit::default();
        let config =
            self.client.get_json(&self.client.url(".well-known/smart-configuration"), None, &audit).await.map_err(
                |e| Stop::End(JobEnd::Failed(format!("the previous plan's SMART configuration cannot be read: {e}"))),
            )?;
        config["token_endpoint"].as_str().map(str::to_owned).ok_or_else(|| {
            Stop::End(JobEnd::Failed("the previous plan's SMART configuration names no token endpoint".into()))
        })
    }

    /// A request failed for good: record the attempts, then end the job with why.
    pub(super) async fn stop(&mut self, stop: Stop, audit: &Audit) -> JobEnd {
        let end = match stop {
            Stop::End(end) => end,
            Stop::Fetch(FetchError::RetryLater(wait)) => JobEnd::RetryLater(wait),
            Stop::Fetch(error) => JobEnd::Failed(error.to_string()),
        };
        // The page before this one still committing: if that failed, it ended the job first.
        if let Err(failed) = self.settle().await {
            return failed;
        }
        let _ = self.commit(vec![], vec![], audit, vec![], 0).await;
        end
    }
}
