//! Request extractors: who is calling (bearer token), from where, under which request id.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderName;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use lockers_core::accounts::tokens::SignedIn;
use lockers_core::accounts::users::{Role, User};
use lockers_core::audit::{Actor, Party};
use lockers_core::net;
use lockers_core::places::credentials;

use crate::ApiContext;
use crate::error::ApiError;
use crate::middleware::REQUEST_ID;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A `{id}` path segment; a malformed id answers `400 invalid_path`.
pub type PathId = Result<axum::extract::Path<uuid::Uuid>, axum::extract::rejection::PathRejection>;

/// Query parameters; malformed ones answer `400 invalid_query`.
pub type QueryOf<T> = Result<axum::extract::Query<T>, axum::extract::rejection::QueryRejection>;

/// The client's address, the one place it is worked out: the TCP peer, or,
/// when the peer is one of `TRUSTED_PROXIES`, the right-most address in
/// `X-Forwarded-For` that is not a trusted proxy (see [`net::client_ip`]).
/// Audit entries keep it whole; rate limits key it with [`ClientIp::key`].
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<ApiContext> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()) else {
            return Ok(Self(None));
        };
        let forwarded = parts.headers.get_all(X_FORWARDED_FOR).iter().filter_map(|v| v.to_str().ok());
        Ok(Self(Some(net::client_ip(peer, forwarded, &ctx.config.trusted_proxies.0))))
    }
}

impl ClientIp {
    /// A key for per-IP limits: the IPv4 address, or the IPv6 /64.
    pub fn key(&self) -> String {
        self.0.map(net::rate_limit_key).unwrap_or_else(|| "unknown".into())
    }
}

/// Who did it, for the audit log.
#[derive(Debug, Clone)]
pub struct Caller(pub Actor);

impl FromRequestParts<ApiContext> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, ctx).await?;
        // The id may come from the client: keep it only when short and plain.
        let request_id = parts
            .headers
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
            .map(str::to_owned);
        Ok(Self(Actor { party: Party::Anonymous, client_ip, request_id }))
    }
}

/// `caller` acting as `user`: as an admin or as a user, for the audit log.
pub fn acting(caller: Actor, user: &User) -> Actor {
    let party = if user.role == Role::Admin { Party::Admin(user.id) } else { Party::User(user.id) };
    caller.as_party(party)
}

/// A caller with a valid access token whose account is enabled and whose
/// session is live (`Accounts::signed_in`: read from the database on every
/// request, so changes and logouts apply at once).
#[derive(Debug, Clone)]
pub struct AuthSession(pub SignedIn);

impl FromRequestParts<ApiContext> for AuthSession {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(ApiError::Unauthorized)?;
        let token =
            header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).ok_or(ApiError::Unauthorized)?;
        Ok(Self(ctx.accounts.signed_in(&ctx.db, token.trim()).await?))
    }
}

/// The user of an `AuthSession`.
#[derive(Debug, Clone)]
pub struct AuthUser(pub User);

impl FromRequestParts<ApiContext> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        AuthSession::from_request_parts(parts, ctx).await.map(|AuthSession(s)| Self(s.user))
    }
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<ApiContext> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let AuthUser(user) = AuthUser::from_request_parts(parts, ctx).await?;
        if user.role != Role::Admin {
            return Err(ApiError::Forbidden);
        }
        Ok(Self(user))
    }
}

/// An authenticated admin, as the audit log records them.
#[derive(Debug, Clone)]
pub struct AdminActor(pub Actor);

impl FromRequestParts<ApiContext> for AdminActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let AdminUser(admin) = AdminUser::from_request_parts(parts, ctx).await?;
        let Caller(actor) = Caller::from_request_parts(parts, ctx).await?;
        Ok(Self(actor.as_party(Party::Admin(admin.id))))
    }
}

/// The bearer token of an `Authorization` header, if there is one.
fn bearer(parts: &Parts) -> Option<&str> {
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    header.strip_prefix("Bearer ").or_else(|| header.strip_prefix("bearer ")).map(str::trim)
}

/// A locker point's controller, by its controller token: the point's id.
#[derive(Debug, Clone, Copy)]
pub struct ControllerPoint(pub uuid::Uuid);

impl FromRequestParts<ApiContext> for ControllerPoint {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let mut conn = ctx.db.acquire().await?;
        let point = credentials::point_of_controller(&mut conn, token).await?;
        point
            .map(Self)
            .ok_or(ApiError::AuthFailed { code: "invalid_controller_token", message: "unknown controller token" })
    }
}

/// A locker point's screen, by its kiosk token: the point's id. Routes of
/// one point check that it is theirs with [`KioskPoint::require`].
#[derive(Debug, Clone, Copy)]
pub struct KioskPoint(pub uuid::Uuid);

impl FromRequestParts<ApiContext> for KioskPoint {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, ctx: &ApiContext) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ApiError::Unauthorized)?;
        let mut conn = ctx.db.acquire().await?;
        let point = credentials::point_of_kiosk(&mut conn, token).await?;
        point.map(Self).ok_or(ApiError::AuthFailed { code: "invalid_kiosk_token", message: "unknown kiosk token" })
    }
}

impl KioskPoint {
    /// Refuses a screen acting for another point: a code typed anywhere but
    /// at its own point opens nothing.
    pub fn require(self, point_id: uuid::Uuid) -> Result<(), ApiError> {
        if self.0 == point_id {
            return Ok(());
        }
        Err(ApiError::Refused { code: "wrong_point", message: "this screen belongs to another locker point" })
    }
}
