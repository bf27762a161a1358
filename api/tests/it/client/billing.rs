//! One method per endpoint of the billing ledger; queries are the text after
//! `?` (empty for none).

use crate::harness::TestApp;

fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
}

impl TestApp {
    /// `GET /me/transactions`; `None` sends no token.
    pub async fn my_transactions(&self, token: Option<&str>, query: &str) -> reqwest::Response {
        let path = with_query("/api/v1/me/transactions", query);
        match token {
            Some(token) => self.get_as(&path, token).await,
            None => self.get(&path).await,
        }
    }

    /// `GET /admin/transactions`.
    pub async fn admin_transactions(&self, token: &str, query: &str) -> reqwest::Response {
        self.get_as(&with_query("/api/v1/admin/transactions", query), token).await
    }
}
