//! `/admin/users`: every account, a page at a time; an admin changes another
//! user's role or disables and enables them (`accounts::admin::update_user`,
//! audited there; disabling ends the user's sessions at once).

use axum::extract::{Path, Query, State};
use axum::response::Response;
use lockers_core::accounts::admin::{self, UserChange};
use lockers_core::accounts::users::Role;
use minijinja::context;
use serde::Deserialize;
use uuid::Uuid;

use super::listing::{self, Params};
use super::notice::Notice;
use super::places::path_id;
use crate::ApiContext;
use crate::error::ApiError;
use crate::web::WebError;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleAdmin;

pub async fn list(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, WebError> {
    let params = listing::params(query);
    render(&ctx, &admin, &params, Notice::done(listing::field(&params, "done"))).await
}

async fn render(ctx: &ApiContext, admin: &ConsoleAdmin, params: &Params, notice: Notice) -> Result<Response, WebError> {
    let (page, notice) = match listing::page(params) {
        Ok(page) => (page, notice),
        Err(refused) => (listing::first_page(), refused),
    };
    let (users, total) = admin::list_users(&mut *ctx.db.acquire().await?, page.limit(), page.offset()).await?;
    let users: Vec<_> = users
        .iter()
        .map(|u| {
            context! {
                id => u.id.to_string(), name => &u.name, email => &u.email, role => if u.role == Role::Admin { "admin" } else { "user" },
                disabled => u.is_disabled(), verified => u.email_verified_at.is_some(),
                created_at => listing::when(u.created_at), is_self => u.id == admin.user.id,
            }
        })
        .collect();
    let context = context! {
        section => "users",
        notice => notice.value(),
        users => users,
        pager => listing::pager("/admin/users", params, &[], page, total),
    };
    Ok(admin.page.render_status(notice.status(), "admin/users.html", context))
}

/// One of the two changes a row's forms send: a role, or disabled on/off.
#[derive(Deserialize)]
pub struct UserForm {
    role: Option<String>,
    disabled: Option<String>,
}

pub async fn update(
    State(ctx): State<ApiContext>,
    admin: ConsoleAdmin,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<UserForm>,
) -> Result<Response, WebError> {
    let id: Uuid = path_id(&id)?;
    let role = match form.role.as_deref() {
        None => None,
        Some("user") => Some(Role::User),
        Some("admin") => Some(Role::Admin),
        Some(_) => return Err(WebError::bad_form()),
    };
    let disabled = match form.disabled.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(WebError::bad_form()),
    };
    let change = UserChange { role, disabled };
    let result =
        async { Ok::<_, ApiError>(admin::update_user(&mut *ctx.db.acquire().await?, &admin.actor, id, change).await?) }
            .await;
    match result {
        Ok(_) => Ok(admin.page.redirect("/admin/users?done=user_updated")),
        Err(error) => render(&ctx, &admin, &Params::new(), Notice::from_error(error)?).await,
    }
}
