//! Signup: an account, and verification codes to its email (and phone).

use sqlx::PgPool;
use uuid::Uuid;

use super::contact::{Contact, Email, Phone};
use super::password::Password;
use super::users::{self, Name, NewUser, User};
use super::{Accounts, Internal, Taken, ip_key};
use crate::audit::{self, Actor, Party};
use crate::db::{DbError, During};
use crate::messaging::codes::CodeError;
use crate::messaging::otp::{Purpose, Subject};

/// A signup, parsed.
pub struct NewAccount {
    pub name: Name,
    pub email: Email,
    pub phone: Option<Phone>,
    pub password: Password,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Another account proved this phone.
    #[error("an account with this phone already exists")]
    PhoneTaken,
    /// A code could not be sent (limits, an SMS country): nothing is created.
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(DbError),
}

impl From<DbError> for SignupError {
    fn from(e: DbError) -> Self {
        match Taken::of(&e) {
            Some(Taken::Email) => Self::EmailTaken,
            Some(Taken::Phone) => Self::PhoneTaken,
            None => Self::Db(e),
        }
    }
}

impl Accounts {
    /// Creates an account and sends verification codes to its email (and
    /// phone), in one transaction: a code that cannot be sent creates nothing.
    pub async fn signup(&self, db: &PgPool, by: &Actor, new: NewAccount) -> Result<User, SignupError> {
        if let Some(phone) = &new.phone {
            self.codes.check_country(phone)?;
        }
        let hash = self.hash(new.password).await?;
        let id = Uuid::now_v7();
        let by = by.as_party(Party::User(id));
        let mut conn = db.acquire().await.during("connect")?;
        audit::audited(&mut conn, &by, async |tx| {
            if let Some(phone) = &new.phone
                && users::phone_proven(tx, phone).await?
            {
                return Err(SignupError::PhoneTaken);
            }
            let account =
                NewUser { id, name: &new.name, email: &new.email, phone: new.phone.as_ref(), password_hash: &hash };
            let user = users::insert(tx, account).await?;
            let mut contacts = vec![Contact::Email(new.email.clone())];
            contacts.extend(new.phone.clone().map(Contact::Phone));
            for contact in &contacts {
                self.send_signup_code(tx, &by, contact, id).await?;
            }
            Ok((user, audit::Entry::change("auth.signup", "user", id, None::<&()>, None::<&()>)))
        })
        .await
    }

    /// Signup's verification code for `contact`, issued for the new account (a
    /// phone's is redeemed with that account's session), under the same limits
    /// as any code request. A phone's SMS needs the hourly budget; when it is
    /// spent the phone is left to verify later and signup goes on (its email
    /// code is sent as usual).
    async fn send_signup_code(
        &self,
        conn: &mut sqlx::PgConnection,
        by: &Actor,
        contact: &Contact,
        user_id: Uuid,
    ) -> Result<(), CodeError> {
        self.codes.limit_requests(&ip_key(by), contact).await?;
        if let Contact::Phone(phone) = contact {
            self.codes.check_country(phone)?;
            if !self.codes.take_sms().await {
                return Ok(());
            }
        }
        let subject = Subject { user_id: Some(user_id), item_id: None };
        self.codes.send(conn, Purpose::Verify, contact, subject).await
    }
}
