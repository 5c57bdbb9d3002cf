//! CIBA ping mode (OpenID Connect CIBA Core 1.0 §10.2): once the user decided, the app's
//! client notification endpoint is told `{"auth_req_id": ...}` with the bearer token the app
//! chose; it then fetches the result at the token endpoint. The core decides and records;
//! this sends, off the request that decided (the user's page does not wait on the app).

use std::time::Duration;

use crate::store::ClientNotification;

/// Sends ping notifications: no redirects (the endpoint is exactly the declared one), a short
/// timeout, a few retries for an app that is briefly away.
#[derive(Clone)]
pub struct ClientNotifier {
    http: reqwest::Client,
}

/// Attempts per notification, and the wait before the second (doubling).
const ATTEMPTS: u32 = 3;
const FIRST_RETRY: Duration = Duration::from_millis(500);

impl ClientNotifier {
    pub fn new() -> Result<ClientNotifier, reqwest::Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(ClientNotifier { http })
    }

    /// Notifies in the background.
    pub fn send(&self, notification: ClientNotification) {
        let http = self.http.clone();
        tokio::spawn(async move {
            let body = serde_json::json!({ "auth_req_id": notification.auth_req_id });
            let mut wait = FIRST_RETRY;
            for attempt in 1..=ATTEMPTS {
                let sent = http.post(&notification.endpoint).bearer_auth(&notification.token).json(&body).send().await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        tracing::info!(endpoint = %notification.endpoint, "CIBA ping notification delivered");
                        return;
                    }
                    Ok(response) => {
                        tracing::warn!(endpoint = %notification.endpoint, status = response.status().as_u16(), attempt, "CIBA ping notification refused");
                    }
                    Err(e) => {
                        tracing::warn!(endpoint = %notification.endpoint, error = %e, attempt, "CIBA ping notification failed");
                    }
                }
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        });
    }
}
