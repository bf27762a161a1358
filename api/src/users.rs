//! `/users`: the admin's view of accounts.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, patch};
use lockers_core::accounts::sessions;
use lockers_core::accounts::users::{self, Role};
use lockers_core::audit::{self, Entry};
use serde::Deserialize;
use serde_json::json;

use crate::ApiContext;
use crate::auth::UserView;
use crate::error::{ApiError, AppJson, Result};
use crate::extract::{AdminUser, Caller, PathId, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> Router<ApiContext> {
    Router::new().route("/users", get(list)).route("/users/{id}", patch(update))
}

async fn list(
    State(ctx): State<ApiContext>,
    AdminUser(_): AdminUser,
    query: QueryOf<PageQuery>,
) -> Result<AppJson<List<UserView>>> {
    let page = query?.0.parse()?;
    let (items, total) = users::list(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.into_iter().map(UserView::from).collect(), page, total)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes a user's role or disabled state. Disabling ends the user's sessions
/// and tokens at once. Admins cannot change themselves, so the last admin
/// cannot lock everyone out.
async fn update(
    State(ctx): State<ApiContext>,
    AdminUser(admin): AdminUser,
    Caller(actor): Caller,
    id: PathId,
    AppJson(body): AppJson<UpdateBody>,
) -> Result<AppJson<UserView>> {
    let Path(id) = id?;
    if body.role.is_none() && body.disabled.is_none() {
        return Err(ApiError::unprocessable("nothing_to_change", "give `role` and/or `disabled`"));
    }
    if id == admin.id {
        return Err(ApiError::conflict("cannot_modify_self", "admins cannot change their own role or state"));
    }
    let mut tx = ctx.db.begin().await?;
    let before = users::by_id(&mut tx, id).await?.ok_or(ApiError::NotFound("user"))?;
    let after =
        users::update_admin_fields(&mut tx, id, body.role, body.disabled).await?.ok_or(ApiError::NotFound("user"))?;
    if after.is_disabled() && !before.is_disabled() {
        sessions::end_all(&mut tx, id).await?;
    }
    let actor = actor.as_party(lockers_core::audit::Party::Admin(admin.id));
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
            let entry = Entry {
                action,
                target_type: "user",
                target_id: Some(id.to_string()),
                before: Some(old),
                after: Some(new),
            };
            audit::record(&mut tx, &actor, entry).await?;
        }
    }
    tx.commit().await?;
    Ok(AppJson(after.into()))
}
