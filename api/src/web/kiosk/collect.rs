//! Collecting (or, for the sender of an expired item, taking it back) at the
//! point's screen: a phone or email, then the code sent to it, then the door.
//! The use cases are `Collection::request` and `Collection::collect`, as for
//! `POST /api/v1/locker-points/{id}/pickup/*`. The request's answer is the
//! same whether or not anything waits for the contact.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use lockers_core::accounts::contact::Contact;
use lockers_core::exchange::collection::{CollectError, Place, RequestError};
use lockers_core::messaging::codes::CodeError;
use serde::Deserialize;
use uuid::Uuid;

use super::frame::{self, Frame, KioskQuery, Notice};
use super::home::not_set_up;
use super::screen;
use crate::ApiContext;
use crate::error::ApiError;
use crate::web::csrf::CsrfForm;
use crate::web::{Page, WebError};

/// The contact form, with what was typed and what went wrong.
fn contact_form(page: &Page, frame: &Frame, contact: &str, notice: Option<Notice>) -> Response {
    frame.render(page, "kiosk/collect.html", notice, minijinja::context! { contact => contact })
}

/// The code form.
fn code_form(page: &Page, frame: &Frame, notice: Option<Notice>) -> Response {
    frame.render(page, "kiosk/code.html", notice, minijinja::context! {})
}

/// `GET /kiosk/{id}/collect`.
pub async fn contact_page(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<KioskQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::from(query), "/collect");
    Ok(contact_form(&page, &frame, "", screen.offline_notice()))
}

#[derive(Deserialize)]
pub struct ContactForm {
    contact: String,
}

/// `POST /kiosk/{id}/collect`: codes go out (or not), then the code form.
pub async fn request_code(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<ContactForm>,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::default(), "/collect");
    if let Some(offline) = screen.offline_notice() {
        return Ok(contact_form(&page, &frame, "", Some(offline)));
    }
    let Ok(contact) = Contact::parse(&form.contact) else {
        return Ok(contact_form(&page, &frame, &form.contact, Some(Notice::ContactInvalid)));
    };
    let mut conn = ctx.db.acquire().await?;
    let notice = match ctx.collection().request(&mut conn, &page.actor, Place::Point(id), &contact).await {
        Ok(()) => return Ok(page.redirect(&format!("{}/collect/code", frame::base(id)))),
        Err(RequestError::RateLimited(limited)) => Notice::TooMany(limited.retry_after),
        Err(RequestError::CountryNotAllowed) => Notice::CountryNotAllowed,
        Err(RequestError::Code(CodeError::SmsBudgetExhausted)) => Notice::SmsUnavailable,
        Err(e) => return Err(ApiError::from(e).into()),
    };
    Ok(contact_form(&page, &frame, &form.contact, Some(notice)))
}

/// `GET /kiosk/{id}/collect/code`.
pub async fn code_page(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<KioskQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::from(query), "/collect/code");
    Ok(code_form(&page, &frame, screen.offline_notice()))
}

#[derive(Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /kiosk/{id}/collect/code`: a right code opens its item's door.
pub async fn collect(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    headers: HeaderMap,
    CsrfForm(form): CsrfForm<CodeForm>,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let Some(screen) = screen::enrolled(&ctx, &headers, id).await? else { return Ok(not_set_up(&page, id)) };
    let frame = Frame::of(&screen, &KioskQuery::default(), "/collect/code");
    // A door that cannot open now must not spend the code.
    if let Some(offline) = screen.offline_notice() {
        return Ok(code_form(&page, &frame, Some(offline)));
    }
    let mut conn = ctx.db.acquire().await?;
    let notice = match ctx.collection().collect(&mut conn, &page.actor, Place::Point(id), form.code.trim()).await {
        Ok(opening) => return Ok(super::door_open(&page, &screen, opening.door_no, "door_take")),
        Err(CollectError::InvalidCode) => Notice::WrongCode,
        Err(CollectError::RateLimited(limited)) => Notice::TooMany(limited.retry_after),
        Err(CollectError::ItemUnavailable) => Notice::ItemUnavailable,
        // Went offline between the page and the collect: the code is not spent.
        Err(CollectError::PointOffline) => Notice::Offline,
        Err(e) => return Err(ApiError::from(e).into()),
    };
    Ok(code_form(&page, &frame, Some(notice)))
}
