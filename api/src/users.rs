//! `/users`: the admin's view of accounts.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, patch};
use lockers_core::accounts::admin::{self, UserChange};
use lockers_core::accounts::users::Role;
use serde::Deserialize;

use crate::ApiContext;
use crate::auth::UserView;
use crate::error::{AppJson, Result};
use crate::extract::{AdminActor, AdminUser, PathId, QueryOf};
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
    let (items, total) = admin::list_users(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.into_iter().map(UserView::from).collect(), page, total)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes a user's role or disabled state (`admin::update_user`).
async fn update(
    State(ctx): State<ApiContext>,
    AdminActor(actor): AdminActor,
    id: PathId,
    AppJson(body): AppJson<UpdateBody>,
) -> Result<AppJson<UserView>> {
    let Path(id) = id?;
    let change = UserChange { role: body.role, disabled: body.disabled };
    let user = admin::update_user(&mut *ctx.db.acquire().await?, &actor, id, change).await?;
    Ok(AppJson(user.into()))
}
