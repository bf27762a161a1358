//! Asking for a pickup or return code. The answer is the same whatever the
//! contact: a code goes out only when it names someone something waits for.

use chrono::Utc;
use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::messages::{self, CodeLine};
use super::{Collection, Place, ip_key, limits};
use crate::accounts::contact::Contact;
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};
use crate::exchange::ExchangeError;
use crate::exchange::codes::{self, PointPurpose};
use crate::messaging::codes::{CodeError, RateLimited};
use crate::messaging::otp::VALIDITY;
use crate::messaging::outbox;

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// The phone is outside `SMS_ALLOWED_COUNTRY_CODES` (whether or not it is known).
    #[error("text messages cannot be sent to this country")]
    CountryNotAllowed,
    /// Anything else the shared code limits report (none today).
    #[error(transparent)]
    Code(CodeError),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl From<DbError> for RequestError {
    fn from(e: DbError) -> Self {
        Self::Exchange(e.into())
    }
}

/// One item waiting for the contact.
struct Waiting {
    item_id: Uuid,
    point_id: Uuid,
    point_name: String,
    door_no: i32,
    name: String,
    is_return: bool,
}

impl Collection {
    /// `POST /lockers/{id}/pickup/request` and `POST /locker-points/{id}/pickup/request`:
    /// sends `contact` one message with a code for each item waiting for it
    /// at `place`: pickup codes for `stored` items it receives, return codes
    /// for `expired` items it sent (by the sender's email or proven phone,
    /// within the return window). Items whose door is opening, or failed to
    /// open, get none. Limits first, so known and unknown contacts alike are
    /// refused when over them.
    pub async fn request(
        &self,
        conn: &mut PgConnection,
        by: &Actor,
        place: Place,
        contact: &Contact,
    ) -> Result<(), RequestError> {
        if let Contact::Phone(phone) = contact
            && self.codes.check_country(phone).is_err()
        {
            return Err(RequestError::CountryNotAllowed);
        }
        let ip = ip_key(by);
        limits::request(&self.limiter, place, contact.as_str(), &ip).await?;
        // The per-(contact, address) limit every code purpose shares; not the
        // per-contact ceiling of account codes: a few addresses could spend
        // it and keep the receiver from their code (limits here are never by
        // contact alone). The hourly SMS budget still bounds what texts cost.
        match self.codes.limit_requests_per_address(&ip, contact).await {
            Ok(()) => {}
            Err(CodeError::RateLimited(limited)) => return Err(limited.into()),
            Err(other) => return Err(RequestError::Code(other)),
        }

        let mut tx = conn.begin().await.during("begin a transaction")?;
        let waiting = waiting(&mut tx, place, contact).await?;
        let Some(first) = waiting.first() else { return Ok(()) };
        // The hourly SMS budget: when spent, nothing goes (and operators are alerted).
        if matches!(contact, Contact::Phone(_)) && !self.codes.take_sms().await {
            tracing::warn!(event = "pickup_code_not_sent", "SMS budget spent: a pickup code was not sent");
            return Ok(());
        }
        let valid_until = Utc::now() + VALIDITY;
        let mut issued = Vec::with_capacity(waiting.len());
        for w in &waiting {
            let purpose = if w.is_return { PointPurpose::Return } else { PointPurpose::Pickup };
            let code = codes::issue(
                &mut tx,
                self.codes.pepper(),
                w.point_id,
                w.item_id,
                purpose,
                contact.as_str(),
                valid_until,
            )
            .await?;
            issued.push(code);
            let entry = Entry {
                action: if w.is_return { "item.return_code_sent" } else { "item.pickup_code_sent" },
                target_type: "item",
                target_id: Some(w.item_id.to_string()),
                before: None,
                after: Some(json!({ "channel": channel(contact) })),
            };
            audit::record(&mut tx, by, entry).await?;
        }
        let lines: Vec<CodeLine<'_>> = waiting
            .iter()
            .zip(&issued)
            .map(|(w, code)| CodeLine { code, door_no: w.door_no, item_name: &w.name, is_return: w.is_return })
            .collect();
        let message = messages::codes(contact.clone().into(), &first.point_name, &lines);
        outbox::queue(&mut tx, &message).await.map_err(ExchangeError::from)?;
        tx.commit().await.during("commit pickup codes")?;
        Ok(())
    }
}

fn channel(contact: &Contact) -> &'static str {
    match contact {
        Contact::Email(_) => "email",
        Contact::Phone(_) => "sms",
    }
}

/// The items at `place` waiting for `contact`, locked (a collect or the
/// sweep changing one waits for the codes, or the codes for it).
async fn waiting(conn: &mut PgConnection, place: Place, contact: &Contact) -> Result<Vec<Waiting>, DbError> {
    let (locker_id, point_id) = match place {
        Place::Locker(id) => (Some(id), None),
        Place::Point(id) => (None, Some(id)),
    };
    let rows: Vec<(Uuid, Uuid, String, i32, String, bool)> = sqlx::query_as(
        "SELECT i.id, l.point_id, p.name, l.door_no, i.name, i.status = 'expired'
         FROM items i
         JOIN lockers l ON l.id = i.locker_id
         JOIN locker_points p ON p.id = l.point_id
         JOIN users u ON u.id = i.sender_id
         WHERE ($1::uuid IS NULL OR i.locker_id = $1) AND ($2::uuid IS NULL OR l.point_id = $2)
           AND i.status IN ('stored', 'expired') AND i.collect_requested_at IS NULL
           AND ((i.status = 'stored' AND (i.receiver_phone = $3 OR lower(i.receiver_email) = $3))
             OR (i.status = 'expired' AND i.return_by > now() AND i.abandoned_at IS NULL
                 AND (lower(u.email) = $3 OR (u.phone = $3 AND u.phone_verified_at IS NOT NULL))))
         ORDER BY l.door_no
         FOR UPDATE OF i",
    )
    .bind(locker_id)
    .bind(point_id)
    .bind(contact.as_str())
    .fetch_all(conn)
    .await
    .during("find items waiting for a contact")?;
    Ok(rows
        .into_iter()
        .map(|(item_id, point_id, point_name, door_no, name, is_return)| Waiting {
            item_id,
            point_id,
            point_name,
            door_no,
            name,
            is_return,
        })
        .collect())
}
