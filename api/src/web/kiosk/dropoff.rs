//! The sender's drop-off at the point's screen: the code from their booking
//! opens the reserved locker's door. The use case is
//! `deposit::drop_off_by_code`, as for `POST /api/v1/locker-points/{id}/dropoff`.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use lockers_core::exchange::deposit::{self, DropoffError};
use serde::Deserialize;
use uuid::Uuid;

use super::frame::{Frame, KioskQuery, Notice};
use super::home::not_set_up;
use super::screen;
use crate::ApiContext;
use crate::error::ApiError;
use crate::extract::ClientIp;
use crate::web::csrf::CsrfForm;
use crate::web::{Page, WebError};

fn code_form(page: &Page, frame: &Frame, notice: Option<Notice>) -> Response {
    frame.render(page, "kiosk/dropoff.html", notice, minijinja::context! {})
}

/// `GET /kiosk/{id}/dropoff`.
pub async fn page(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<KioskQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::from(query), "/dropoff");
    Ok(code_form(&page, &frame, screen.offline_notice()))
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /kiosk/{id}/dropoff`: the reserved door opens.
pub async fn drop_off(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    ip: ClientIp,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::default(), "/dropoff");
    let rules = ctx.deposit_rules();
    let mut conn = ctx.db.acquire().await?;
    let notice = match deposit::drop_off_by_code(&mut conn, &page.actor, rules, id, &ip.key(), form.code.trim()).await {
        Ok(done) => return Ok(super::door_open(&page, &screen, done.door_no, "door_put")),
        Err(DropoffError::InvalidCode | DropoffError::NotFound) => Notice::WrongCode,
        Err(DropoffError::RateLimited(limited)) => Notice::TooMany(limited.retry_after),
        Err(DropoffError::NotReserved) => Notice::DropoffNotReserved,
        Err(DropoffError::DeadlinePassed) => Notice::DropoffDeadline,
        Err(DropoffError::PointOffline) => Notice::Offline,
        Err(e) => return Err(ApiError::from(e).into()),
    };
    Ok(code_form(&page, &frame, Some(notice)))
}
