//! `/kiosk/{id}/enrol?code=`: an admin opens the enrolment link on the
//! point's screen and confirms; the screen keeps the kiosk token it gets in
//! a cookie ([`super::screen`]). Nobody types the credential; without a
//! code in the link the page asks for one.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use lockers_core::places;
use lockers_core::places::enrolment::{self, EnrolmentCode, EnrolmentError};
use serde::Deserialize;
use uuid::Uuid;

use super::frame::{self, Frame, KioskQuery, Notice};
use super::screen;
use crate::ApiContext;
use crate::error::ApiError;
use crate::web::csrf::CsrfForm;
use crate::web::{Page, WebError};

/// The confirmation page.
pub async fn page(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    query: Result<Query<KioskQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let code = KioskQuery::from(query).code.unwrap_or_default();
    show(&ctx, &page, id, &code, None).await
}

#[derive(Deserialize)]
pub struct EnrolForm {
    code: String,
}

/// Redeems the code: the point's new kiosk token goes into this screen's cookie.
pub async fn redeem(
    State(ctx): State<ApiContext>,
    page: Page,
    path: Result<Path<Uuid>, PathRejection>,
    CsrfForm(form): CsrfForm<EnrolForm>,
) -> Result<Response, WebError> {
    let id = screen::point_id(path)?;
    let mut conn = ctx.db.acquire().await?;
    match enrolment::redeem(&mut conn, &page.actor, id, &form.code).await {
        Ok(token) => {
            let cookie = screen::keep(page.is_production(), id, token.expose());
            Ok(page.clone().with_cookie(cookie).redirect(&frame::base(id)))
        }
        Err(EnrolmentError::InvalidCode) => show(&ctx, &page, id, &form.code, Some(Notice::EnrolInvalid)).await,
        Err(EnrolmentError::Place(e)) => Err(ApiError::from(e).into()),
    }
}

async fn show(
    ctx: &ApiContext,
    page: &Page,
    id: Uuid,
    code: &str,
    notice: Option<Notice>,
) -> Result<Response, WebError> {
    let mut conn = ctx.db.acquire().await?;
    let point = places::point(&mut conn, id).await?.ok_or_else(WebError::not_found)?;
    // The language switch keeps a well-formed code (and only that) in its links.
    let (code, switch) = match EnrolmentCode::parse(code) {
        Some(code) => (code.display(), format!("/enrol?code={}", code.display())),
        None => (String::new(), "/enrol".to_owned()),
    };
    let frame = Frame::bare(id, Some(&point.name), &switch);
    Ok(frame.render(page, "kiosk/enrol.html", notice, minijinja::context! { code => code }))
}
