//! Everything done with a one-time code on an account: asking for one
//! (verification, login, reset), proving a contact, code login and password
//! reset. Code requests answer the same whether or not the contact is known;
//! the limits are those of [`crate::messaging::codes`]. Proving a phone needs
//! the session of the account holding it.

use sqlx::{Acquire, PgConnection, PgPool};

use super::contact::{Contact, Email, Phone};
use super::ownership::{ProofError, may_request_login, may_request_verification};
use super::password::Password;
use super::sessions;
use super::tokens::TokenPair;
use super::users::{self, User};
use super::{Accounts, Internal, audit_user, ip_key};
use crate::audit::{Actor, Party};
use crate::db::{DbError, During};
use crate::messaging::codes::CodeError;
use crate::messaging::otp::{Purpose, Subject};

#[derive(Debug, thiserror::Error)]
pub enum CodeFlowError {
    /// A phone's code is asked for and redeemed only signed in.
    #[error("authentication required")]
    SignInRequired,
    /// The signed-in account does not hold this phone.
    #[error("this phone is not the one on your account")]
    PhoneNotOnAccount,
    /// Limits, SMS country or budget, or a code that did not work.
    #[error(transparent)]
    Code(#[from] CodeError),
    /// The code worked but proved nothing (see [`ProofError`]).
    #[error(transparent)]
    Proof(#[from] ProofError),
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// How an accepted code request is answered (the same for known and unknown contacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// If an account matches, a code is on its way to the contact.
    AsAsked,
    /// SMS are paused: if an account matches, its code goes to its email.
    ByEmail,
}

/// The signed-in caller, provided `phone` is their account's. Proving a phone
/// is tied to the account that asks: several accounts may hold one unverified
/// phone, and a code for it must never prove it on someone else's. The answer
/// is about the caller's own account only, so it reveals no other holder.
fn phone_holder<'u>(signed_in: Option<&'u User>, phone: &Phone) -> Result<&'u User, CodeFlowError> {
    let user = signed_in.ok_or(CodeFlowError::SignInRequired)?;
    if user.phone.as_deref() != Some(phone.as_str()) {
        return Err(CodeFlowError::PhoneNotOnAccount);
    }
    Ok(user)
}

impl Accounts {
    /// An email's verification code goes to anyone who asks (whoever proves
    /// the email owns the account); a phone's only to the signed-in account
    /// holding it, issued for that account.
    pub async fn request_verification(
        &self,
        db: &PgPool,
        by: &Actor,
        signed_in: Option<&User>,
        contact: &Contact,
    ) -> Result<Accepted, CodeFlowError> {
        let Contact::Phone(phone) = contact else {
            return self.request_code(db, by, contact, Purpose::Verify, may_request_verification).await;
        };
        self.codes.check_country(phone)?;
        let user = phone_holder(signed_in, phone)?;
        self.codes.limit_requests(&ip_key(by), contact).await?;
        if self.codes.sms_paused().await {
            return Err(CodeError::SmsBudgetExhausted.into());
        }
        // Already proven (or the email not yet, which a session implies): nothing to send.
        if !user.is_disabled() && may_request_verification(user, contact) {
            let mut conn = db.acquire().await.during("connect")?;
            let mut tx = conn.begin().await.during("begin a transaction")?;
            self.deliver_code(&mut tx, by, Purpose::Verify, contact, user).await?;
            tx.commit().await.during("commit a code")?;
        }
        Ok(Accepted::AsAsked)
    }

    /// A login code for `contact`: any email, a proven phone.
    pub async fn request_login_code(
        &self,
        db: &PgPool,
        by: &Actor,
        contact: &Contact,
    ) -> Result<Accepted, CodeFlowError> {
        self.request_code(db, by, contact, Purpose::Login, may_request_login).await
    }

    /// A password-reset code for `contact`: any email, a proven phone.
    pub async fn request_reset_code(
        &self,
        db: &PgPool,
        by: &Actor,
        contact: &Contact,
    ) -> Result<Accepted, CodeFlowError> {
        self.request_code(db, by, contact, Purpose::Reset, may_request_login).await
    }

    /// The shared flow of anonymous code requests: same answer for known and
    /// unknown contacts, requests limited per (contact, address) and per
    /// contact, SMS only to allowed countries and within the hourly budget.
    async fn request_code(
        &self,
        db: &PgPool,
        by: &Actor,
        contact: &Contact,
        purpose: Purpose,
        eligible: fn(&User, &Contact) -> bool,
    ) -> Result<Accepted, CodeFlowError> {
        if let Contact::Phone(phone) = contact {
            self.codes.check_country(phone)?;
        }
        self.codes.limit_requests(&ip_key(by), contact).await?;
        // Decided before the account is looked up, so the answer reveals nothing about it.
        let sms_paused = matches!(contact, Contact::Phone(_)) && self.codes.sms_paused().await;
        if sms_paused && purpose == Purpose::Verify {
            return Err(CodeError::SmsBudgetExhausted.into());
        }
        let mut conn = db.acquire().await.during("connect")?;
        let mut tx = conn.begin().await.during("begin a transaction")?;
        if let Some(user) = users::by_contact(&mut tx, contact).await.during("look up a user by contact")?
            && !user.is_disabled()
            && eligible(&user, contact)
        {
            self.deliver_code(&mut tx, by, purpose, contact, &user).await?;
        }
        tx.commit().await.during("commit a code")?;
        Ok(if sms_paused { Accepted::ByEmail } else { Accepted::AsAsked })
    }

    /// Sends `user` a code for `contact`. An SMS takes from the hourly budget;
    /// when it is spent, a login or reset code goes to the account's email
    /// instead, issued for the email (which is what it proves; it never marks
    /// the phone verified), and a phone verification is refused (an email
    /// cannot prove a phone).
    async fn deliver_code(
        &self,
        conn: &mut PgConnection,
        by: &Actor,
        purpose: Purpose,
        contact: &Contact,
        user: &User,
    ) -> Result<(), CodeError> {
        let subject = Subject { user_id: Some(user.id), item_id: None };
        if matches!(contact, Contact::Phone(_)) && !self.codes.take_sms().await {
            if purpose == Purpose::Verify {
                return Err(CodeError::SmsBudgetExhausted);
            }
            let Ok(email) = Email::parse(&user.email).map(Contact::Email) else { return Ok(()) };
            if self.codes.limit_requests(&ip_key(by), &email).await.is_ok() {
                self.codes.send(conn, purpose, &email, subject).await?;
            }
            return Ok(());
        }
        self.codes.send(conn, purpose, contact, subject).await
    }

    /// Proves a contact. An email: anyone with its code (whoever proves the
    /// email owns the account), with the signup `password` to keep it. A
    /// phone: only the signed-in account holding it, with a code issued for
    /// that account.
    pub async fn verify(
        &self,
        db: &PgPool,
        by: &Actor,
        signed_in: Option<&User>,
        contact: &Contact,
        code: &str,
        password: Option<String>,
    ) -> Result<User, CodeFlowError> {
        let within = match contact {
            Contact::Phone(phone) => Subject { user_id: Some(phone_holder(signed_in, phone)?.id), item_id: None },
            Contact::Email(_) => Subject::default(),
        };
        let mut conn = db.acquire().await.during("connect")?;
        let (mut tx, subject) =
            self.codes.redeem(&mut conn, &ip_key(by), Purpose::Verify, contact, within, code).await?;
        let user = self.prove(&mut tx, by, contact, subject.user_id, password).await?;
        tx.commit().await.during("commit a proof")?;
        Ok(user)
    }

    /// Code login: the code proves the contact, which is marked verified too,
    /// and lifts a suspension of password login.
    pub async fn login_with_code(
        &self,
        db: &PgPool,
        by: &Actor,
        contact: &Contact,
        code: &str,
    ) -> Result<TokenPair, CodeFlowError> {
        let mut conn = db.acquire().await.during("connect")?;
        let (mut tx, subject) =
            self.codes.redeem(&mut conn, &ip_key(by), Purpose::Login, contact, Subject::default(), code).await?;
        let user = self.prove(&mut tx, by, contact, subject.user_id, None).await?;
        if user.is_disabled() {
            return Err(CodeError::InvalidCode.into());
        }
        let pair = self.issue_tokens::<CodeFlowError>(&mut tx, &user).await?;
        audit_user(&mut tx, &by.as_party(Party::User(user.id)), "auth.otp_login", user.id, None).await?;
        tx.commit().await.during("commit a code login")?;
        self.lift_password_suspension(&user).await;
        Ok(pair)
    }

    /// Sets a new password and ends every session; it does not log the user in.
    pub async fn reset_password(
        &self,
        db: &PgPool,
        by: &Actor,
        contact: &Contact,
        code: &str,
        new_password: Password,
    ) -> Result<(), CodeFlowError> {
        let hash = self.hash(new_password).await?;
        let mut conn = db.acquire().await.during("connect")?;
        let (mut tx, subject) =
            self.codes.redeem(&mut conn, &ip_key(by), Purpose::Reset, contact, Subject::default(), code).await?;
        let user_id = self.prove(&mut tx, by, contact, subject.user_id, None).await?.id;
        users::set_password(&mut tx, user_id, &hash).await.during("set a password")?;
        sessions::end_all(&mut tx, user_id).await.during("end every session")?;
        audit_user(&mut tx, &by.as_party(Party::User(user_id)), "auth.password_reset", user_id, None).await?;
        let user = users::by_id(&mut tx, user_id).await.during("load a user")?;
        tx.commit().await.during("commit a password reset")?;
        if let Some(user) = user {
            self.lift_password_suspension(&user).await;
        }
        Ok(())
    }
}
