//! Deposit at a chosen point (`POST /api/v1/items` with a point and a size):
//! the receiver's phone and/or email, a size (a larger one allowed) and the
//! item's name. The answer is the reserved item with its drop-off code, shown
//! once; a refusal (e.g. `locker_unavailable`) is a message on the form.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use lockers_core::accounts::contact::{Email, Phone};
use lockers_core::exchange::deposit::{self, Description, ItemName, NewDeposit, Place, Receiver};
use lockers_core::places::lockers::Size;
use minijinja::{Value, context};
use serde::Deserialize;
use uuid::Uuid;

use super::items::{ShownItem, item_page};
use super::refusal::{self, Refusal};
use super::search::{ShownPoint, point};
use super::shown::{parse_size, size_code};
use crate::ApiContext;
use crate::web::csrf::CsrfForm;
use crate::web::session::ConsoleUser;
use crate::web::{Page, WebError};

#[derive(Deserialize)]
pub struct SizeQuery {
    size: Option<String>,
}

/// The form as typed, shown back with a refusal.
#[derive(Deserialize, Default)]
pub struct DepositForm {
    #[serde(default)]
    size: String,
    #[serde(default)]
    allow_larger: Option<String>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    receiver_phone: String,
    #[serde(default)]
    receiver_email: String,
}

impl DepositForm {
    /// The deposit at `point_id`, or the refusal of the first field that does not parse.
    fn parse(&self, point_id: Uuid) -> Result<NewDeposit, Refusal> {
        let size: Size = parse_size(Some(&self.size)).ok_or(Refusal::invalid("app.err_invalid_size"))?;
        let name = ItemName::parse(&self.name).ok_or(Refusal::invalid("app.err_invalid_item_name"))?;
        let description =
            Description::parse(&self.description).map_err(|_| Refusal::invalid("app.err_invalid_description"))?;
        let phone = match self.receiver_phone.trim() {
            "" => None,
            raw => Some(Phone::parse(raw).map_err(|_| Refusal::invalid("app.err_invalid_phone"))?),
        };
        let email = match self.receiver_email.trim() {
            "" => None,
            raw => Some(Email::parse(raw).map_err(|_| Refusal::invalid("app.err_invalid_email"))?),
        };
        let receiver = Receiver::new(phone, email).ok_or(Refusal::invalid("app.err_receiver_required"))?;
        let place = Place::Point { point_id, size, allow_larger: self.allows_larger() };
        Ok(NewDeposit { place, name, description, receiver })
    }

    fn allows_larger(&self) -> bool {
        self.allow_larger.as_deref().is_some_and(|v| !v.is_empty())
    }

    fn value(&self) -> Value {
        context! {
            size => &self.size, allow_larger => self.allows_larger(), name => &self.name,
            description => &self.description, receiver_phone => &self.receiver_phone,
            receiver_email => &self.receiver_email,
        }
    }
}

fn deposit_form(page: &Page, point: &ShownPoint, form: &DepositForm, refusal: Option<Refusal>) -> Response {
    let status = refusal.map_or(StatusCode::OK, |r| r.status);
    let context = context! { point => point.value(), form => form.value(), error => refusal.map(|r| r.key) };
    page.render_status(status, "app/deposit.html", context)
}

async fn point_or_404(ctx: &ApiContext, id: &str) -> Result<ShownPoint, WebError> {
    let id = Uuid::parse_str(id).map_err(|_| WebError::not_found())?;
    point(ctx, id).await?.ok_or_else(WebError::not_found)
}

/// The deposit form at a point, with the size chosen in the search.
pub async fn form(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    Path(id): Path<String>,
    query: Result<Query<SizeQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let point = point_or_404(&ctx, &id).await?;
    let size = parse_size(query.ok().and_then(|Query(q)| q.size).as_deref()).unwrap_or(Size::M);
    let form = DepositForm { size: size_code(size).to_owned(), ..DepositForm::default() };
    Ok(deposit_form(&user.page, &point, &form, None))
}

/// Reserves a locker and shows the item with its drop-off code.
pub async fn deposit(
    State(ctx): State<ApiContext>,
    user: ConsoleUser,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<DepositForm>,
) -> Result<Response, WebError> {
    let point = point_or_404(&ctx, &id).await?;
    let new = match form.parse(point.id) {
        Ok(new) => new,
        Err(refusal) => return Ok(deposit_form(&user.page, &point, &form, Some(refusal))),
    };
    let mut conn = ctx.db.acquire().await?;
    let (item, code) = match deposit::reserve(&mut conn, &user.actor, ctx.deposit_rules(), new).await {
        Ok(reserved) => reserved,
        Err(e) => return Ok(deposit_form(&user.page, &point, &form, Some(refusal::deposit(e)?))),
    };
    let shown = ShownItem::load(&ctx, &mut conn, user.user.id, item.id).await?;
    Ok(item_page(&user.page, StatusCode::CREATED, &shown, context! { dropoff_code => code.expose() }))
}
