//! What admins and operators do to accounts: list them, change a user's role
//! or disabled state, and `create-admin`.

use serde_json::json;
use sqlx::{Acquire, PgConnection};
use uuid::Uuid;

use super::Internal;
use super::contact::Email;
use super::password::{self, Password};
use super::sessions;
use super::users::{self, Name, Promotion, Role, User};
use crate::audit::{self, Actor, Entry};
use crate::db::{DbError, During};

/// One page of users, oldest first, and the total count.
pub async fn list_users(conn: &mut PgConnection, limit: i64, offset: i64) -> Result<(Vec<User>, i64), DbError> {
    users::list(conn, limit, offset).await.during("list users")
}

/// An admin's change to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateUserError {
    #[error("give `role` and/or `disabled`")]
    NothingToChange,
    /// So the last admin cannot lock everyone out.
    #[error("admins cannot change their own role or state")]
    CannotModifySelf,
    #[error("user not found")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbError),
}

/// Changes user `id`'s role or disabled state, as the admin `by`. Disabling
/// ends the user's sessions and tokens at once. Each actual change is audited
/// on its own (a role change, a disabling or enabling); a change to the same
/// values records nothing, which is why this does not use `audit::audited`
/// (one entry per write).
pub async fn update_user(
    conn: &mut PgConnection,
    by: &Actor,
    id: Uuid,
    change: UserChange,
) -> Result<User, UpdateUserError> {
    if change.role.is_none() && change.disabled.is_none() {
        return Err(UpdateUserError::NothingToChange);
    }
    if by.user_id() == Some(id) {
        return Err(UpdateUserError::CannotModifySelf);
    }
    let mut tx = conn.begin().await.during("begin a transaction")?;
    let before = users::by_id(&mut tx, id).await.during("load a user")?.ok_or(UpdateUserError::NotFound)?;
    let after = users::update_admin_fields(&mut tx, id, change.role, change.disabled)
        .await
        .during("change a user")?
        .ok_or(UpdateUserError::NotFound)?;
    if after.is_disabled() && !before.is_disabled() {
        sessions::end_all(&mut tx, id).await.during("end every session")?;
    }
    let changes = [
        ("user.role_change", before.role != after.role, json!({ "role": before.role }), json!({ "role": after.role })),
        (
            if after.is_disabled() { "user.disable" } else { "user.enable" },
            before.is_disabled() != after.is_disabled(),
            json!({ "disabled": before.is_disabled() }),
            json!({ "disabled": after.is_disabled() }),
        ),
    ];
    for (action, changed, old, new) in changes {
        if changed {
            audit::record(&mut tx, by, Entry::change(action, "user", id, Some(&old), Some(&new))).await?;
        }
    }
    tx.commit().await.during("commit a user change")?;
    Ok(after)
}

#[derive(Debug, thiserror::Error)]
pub enum CreateAdminError {
    #[error(transparent)]
    Internal(#[from] Internal),
    #[error(transparent)]
    Db(#[from] DbError),
}

/// The operator's word (`lockers-admin create-admin`, `by` the operator):
/// `email` belongs to an admin with `password`. Creates the admin, or
/// promotes the account already registered under the email; an existing
/// account may have been registered by a stranger, so promotion replaces its
/// password, ends its sessions, drops its phone and live codes and marks the
/// email proven (the operator vouches for it); see `users::make_admin`.
pub async fn create_admin(
    conn: &mut PgConnection,
    by: &Actor,
    name: &Name,
    email: &Email,
    password: Password,
) -> Result<Promotion, CreateAdminError> {
    let hash = tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| Internal(format!("hashing task failed: {e}")))?
        .map_err(|e| Internal(format!("password hashing failed: {e}")))?;
    audit::audited(conn, by, async |tx| {
        let promotion = users::make_admin(tx, name, email, &hash).await.during("make an admin")?;
        let mut after = json!({ "role": "admin", "via": "lockers-admin" });
        let (action, user) = match &promotion {
            Promotion::Created(user) => ("user.create_admin", user),
            Promotion::Promoted(user) => {
                after["reset"] = json!(["password", "sessions", "unproven_phone"]);
                ("user.promote_admin", user)
            }
        };
        let entry = Entry::change(action, "user", user.id, None::<&()>, Some(&after));
        Ok::<_, CreateAdminError>((promotion, entry))
    })
    .await
}
