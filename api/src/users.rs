//! `/users`: the admin's view of accounts.

use axum::extract::{Path, State};
use lockers_core::accounts::admin::{self, UserChange};
use lockers_core::accounts::users::Role;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiContext;
use crate::auth::UserView;
use crate::error::{AppJson, ErrorBody, Result};
use crate::extract::{AdminActor, AdminUser, PathId, QueryOf};
use crate::pagination::{List, PageQuery};

pub fn router() -> OpenApiRouter<ApiContext> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(update))
}

/// Every account, oldest first (stable paging while accounts are added).
#[utoipa::path(get, path = "/users", tag = "users", params(PageQuery), security(("bearer" = []), ("oauth2" = [])),
    responses(
    (status = 200, body = List<UserView>),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 422, description = "`page_too_deep`", body = ErrorBody),
))]
async fn list(
    State(ctx): State<ApiContext>,
    _admin: AdminUser,
    query: QueryOf<PageQuery>,
) -> Result<AppJson<List<UserView>>> {
    let page = query?.0.parse()?;
    let (items, total) = admin::list_users(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    Ok(AppJson(List::new(items.into_iter().map(UserView::from).collect(), page, total)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"role": "admin"}))]
struct UpdateBody {
    role: Option<Role>,
    disabled: Option<bool>,
}

/// Changes a user's role or disabled state (`admin::update_user`).
#[utoipa::path(patch, path = "/users/{id}", tag = "users", request_body = UpdateBody,
    params(("id" = Uuid, Path, description = "The user")), security(("bearer" = []), ("oauth2" = [])), responses(
    (status = 200, body = UserView),
    (status = 403, description = "`forbidden`: admins only", body = ErrorBody),
    (status = 404, description = "`not_found`", body = ErrorBody),
    (status = 409, description = "`cannot_modify_self`", body = ErrorBody),
    (status = 422, description = "`nothing_to_change`", body = ErrorBody),
))]
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
