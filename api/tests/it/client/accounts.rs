//! Client methods for `/auth` and `/users`: one per endpoint, so a test reads
//! as a story (`app.login(EMAIL, PASSWORD)`). The `_from` variants call from
//! a given client address (`X-Forwarded-For`, believed from the loopback
//! proxy the tests run behind only when configured as trusted).

use reqwest::Response;
use serde_json::{Value, json};

use crate::harness::TestApp;

impl TestApp {
    /// POSTs `body` to `path`, with a bearer token and a forwarded address when given.
    async fn call_accounts(&self, path: &str, token: Option<&str>, ip: Option<&str>, body: &Value) -> Response {
        let mut request = self.http.post(self.url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(ip) = ip {
            request = request.header("x-forwarded-for", ip);
        }
        request.send().await.expect("POST")
    }

    pub async fn signup(&self, name: &str, email: &str, phone: Option<&str>, password: &str) -> Response {
        self.signup_with(&signup_body(name, email, phone, password)).await
    }

    /// Signup with a body as given (bad input included).
    pub async fn signup_with(&self, body: &Value) -> Response {
        self.call_accounts("/api/v1/auth/signup", None, None, body).await
    }

    pub async fn signup_from(&self, ip: &str, name: &str, email: &str, password: &str) -> Response {
        self.call_accounts("/api/v1/auth/signup", None, Some(ip), &signup_body(name, email, None, password)).await
    }

    pub async fn request_verification(&self, identifier: &str) -> Response {
        self.call_accounts("/api/v1/auth/verify/request", None, None, &json!({ "identifier": identifier })).await
    }

    /// Asks for a verification code signed in (a phone's needs its account's session).
    pub async fn request_verification_as(&self, token: &str, identifier: &str) -> Response {
        self.call_accounts("/api/v1/auth/verify/request", Some(token), None, &json!({ "identifier": identifier })).await
    }

    pub async fn verify(&self, identifier: &str, code: &str) -> Response {
        self.call_accounts("/api/v1/auth/verify", None, None, &json!({ "identifier": identifier, "code": code })).await
    }

    /// Proves an email giving the signup password along, so it is kept.
    pub async fn verify_keeping_password(&self, email: &str, code: &str, password: &str) -> Response {
        let body = json!({ "identifier": email, "code": code, "password": password });
        self.call_accounts("/api/v1/auth/verify", None, None, &body).await
    }

    /// Proves a contact signed in (a phone's code is its account's).
    pub async fn verify_as(&self, token: &str, identifier: &str, code: &str) -> Response {
        let body = json!({ "identifier": identifier, "code": code });
        self.call_accounts("/api/v1/auth/verify", Some(token), None, &body).await
    }

    pub async fn login(&self, identifier: &str, password: &str) -> Response {
        self.login_from_opt(None, identifier, password).await
    }

    pub async fn login_from(&self, ip: &str, identifier: &str, password: &str) -> Response {
        self.login_from_opt(Some(ip), identifier, password).await
    }

    async fn login_from_opt(&self, ip: Option<&str>, identifier: &str, password: &str) -> Response {
        let body = json!({ "identifier": identifier, "password": password });
        self.call_accounts("/api/v1/auth/login", None, ip, &body).await
    }

    /// The OAuth2 password form Swagger UI sends.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> Response {
        self.http.post(self.url("/api/v1/auth/token")).form(form).send().await.expect("POST")
    }

    pub async fn request_login_code(&self, identifier: &str) -> Response {
        self.request_login_code_from_opt(None, identifier).await
    }

    pub async fn request_login_code_from(&self, ip: &str, identifier: &str) -> Response {
        self.request_login_code_from_opt(Some(ip), identifier).await
    }

    async fn request_login_code_from_opt(&self, ip: Option<&str>, identifier: &str) -> Response {
        self.call_accounts("/api/v1/auth/otp/request", None, ip, &json!({ "identifier": identifier })).await
    }

    pub async fn login_with_code(&self, identifier: &str, code: &str) -> Response {
        self.login_with_code_from_opt(None, identifier, code).await
    }

    pub async fn login_with_code_from(&self, ip: &str, identifier: &str, code: &str) -> Response {
        self.login_with_code_from_opt(Some(ip), identifier, code).await
    }

    async fn login_with_code_from_opt(&self, ip: Option<&str>, identifier: &str, code: &str) -> Response {
        let body = json!({ "identifier": identifier, "code": code });
        self.call_accounts("/api/v1/auth/otp/verify", None, ip, &body).await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.call_accounts("/api/v1/auth/refresh", None, None, &json!({ "refresh_token": refresh_token })).await
    }

    /// Logs out; `token` is the access token, if any.
    pub async fn logout(&self, token: Option<&str>, refresh_token: &str) -> Response {
        self.call_accounts("/api/v1/auth/logout", token, None, &json!({ "refresh_token": refresh_token })).await
    }

    pub async fn forgot_password(&self, identifier: &str) -> Response {
        self.call_accounts("/api/v1/auth/password/forgot", None, None, &json!({ "identifier": identifier })).await
    }

    pub async fn reset_password(&self, identifier: &str, code: &str, new_password: &str) -> Response {
        let body = json!({ "identifier": identifier, "code": code, "new_password": new_password });
        self.call_accounts("/api/v1/auth/password/reset", None, None, &body).await
    }

    /// `GET /auth/me`, with `token` if any.
    pub async fn me(&self, token: Option<&str>) -> Response {
        match token {
            Some(token) => self.get_as("/api/v1/auth/me", token).await,
            None => self.get("/api/v1/auth/me").await,
        }
    }

    /// `GET /users` with a query string (`""` for none), with `token` if any.
    pub async fn list_users(&self, token: Option<&str>, query: &str) -> Response {
        let path = format!("/api/v1/users{query}");
        match token {
            Some(token) => self.get_as(&path, token).await,
            None => self.get(&path).await,
        }
    }

    /// `PATCH /users/{id}`; `id` is taken as typed, so malformed ids can be sent.
    pub async fn patch_user(&self, token: &str, id: &str, body: &Value) -> Response {
        self.patch_as(&format!("/api/v1/users/{id}"), token, body).await
    }
}

fn signup_body(name: &str, email: &str, phone: Option<&str>, password: &str) -> Value {
    let mut body = json!({ "name": name, "email": email, "password": password });
    if let Some(phone) = phone {
        body["phone"] = json!(phone);
    }
    body
}
