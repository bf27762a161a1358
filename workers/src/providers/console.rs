//! Development providers that print messages to the log. They are the only
//! place a one-time code may appear in a log, and production refuses them.

use async_trait::async_trait;

use super::{Email, EmailSender, Receipt, SendError, SmsSender};

pub struct ConsoleSms;
pub struct ConsoleEmail;

#[async_trait]
impl SmsSender for ConsoleSms {
    fn name(&self) -> &'static str {
        "console"
    }

    async fn send(&self, to: &str, body: &str) -> Result<Receipt, SendError> {
        tracing::info!(target: "lockers::console_sms", %to, %body, "SMS (console provider)");
        Ok(Receipt { provider_message_id: None })
    }
}

#[async_trait]
impl EmailSender for ConsoleEmail {
    fn name(&self) -> &'static str {
        "console"
    }

    /// Prints the text part (the HTML part says the same).
    async fn send(&self, to: &str, email: &Email<'_>) -> Result<Receipt, SendError> {
        let (subject, body) = (email.subject, email.text);
        tracing::info!(target: "lockers::console_email", %to, %subject, %body, "email (console provider)");
        Ok(Receipt { provider_message_id: None })
    }
}
