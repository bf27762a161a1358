//! Delivers outbox messages (queues `otp` and `notify`) through the configured
//! SMS or email provider.

use std::sync::Arc;

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use lockers_core::jobs::DeliverNotification;
use lockers_core::notifications::{self, Channel};

use crate::WorkerState;
use crate::providers::SendError;

/// One delivery attempt. A message already sent (or given up) is skipped, so a
/// repeated job never sends twice; a permanent refusal is not retried.
pub async fn deliver_notification(
    job: DeliverNotification,
    state: Data<Arc<WorkerState>>,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let mut conn = state.pool.acquire().await?;
    let Some(message) = notifications::pending(&mut conn, job.notification_id).await? else {
        return Ok(());
    };
    let (provider, result) = match message.channel() {
        Some(Channel::Sms) => {
            let sms = &state.providers.sms;
            (sms.name(), sms.send(&message.recipient, &message.body).await)
        }
        Some(Channel::Email) => {
            let email = &state.providers.email;
            let subject = message.subject.as_deref().unwrap_or("Lockers");
            (email.name(), email.send(&message.recipient, subject, &message.body).await)
        }
        None => return Err(AbortError::new(format!("unknown channel `{}`", message.channel)).into()),
    };
    match result {
        Ok(receipt) => {
            notifications::mark_sent(&mut conn, message.id, provider, receipt.provider_message_id.as_deref()).await?;
            tracing::info!(notification_id = %message.id, kind = %message.kind, provider, "notification sent");
            Ok(())
        }
        Err(SendError::Transient(error)) => {
            let give_up = attempt.current() >= message.queue().max_attempts() as usize;
            notifications::mark_attempt_failed(&mut conn, message.id, provider, &error, give_up).await?;
            tracing::warn!(notification_id = %message.id, provider, %error, give_up, "notification attempt failed");
            if give_up { Err(AbortError::new(error).into()) } else { Err(error.into()) }
        }
        Err(SendError::Permanent(error)) => {
            notifications::mark_attempt_failed(&mut conn, message.id, provider, &error, true).await?;
            tracing::warn!(notification_id = %message.id, provider, %error, "notification refused by provider");
            Err(AbortError::new(error).into())
        }
    }
}
