//! A bearer-token JSON client for API tests against a running `hood`,
//! asserting on every error that it is RFC 9457 problem JSON.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// Password of the users the helpers below create.
pub const PASSWORD: &str = "correct horse battery staple";

pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
}

pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub text: String,
    pub body: Value,
}

impl Api {
    pub fn new(base: String) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            assert_eq!(
                content_type, "application/problem+json",
                "{path}: errors are problem JSON, got {status} {text}"
            );
            assert_eq!(body["status"], status.as_u16(), "{path}: {text}");
        }
        Resp {
            status,
            content_type,
            text,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, token, Some(body)).await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Resp {
        self.call(Method::DELETE, path, token, None).await
    }

    /// The value of an unlabelled metric on `/metrics` (`hood_` prefix
    /// included), 0 when absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics body");
        metric_in(&text, name).unwrap_or(0.0)
    }

    /// Signs a user in; returns the access token.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let resp = self
            .http
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("login");
        assert_eq!(resp.status(), StatusCode::OK, "login {email}");
        let pair: Value = resp.json().await.expect("token pair");
        pair["access_token"]
            .as_str()
            .expect("access token")
            .to_owned()
    }

    /// Adds a user with [`PASSWORD`] to `org` and signs them in.
    pub async fn user(&self, admin: &str, org: &str, email: &str, role: &str) -> String {
        let r = self
            .post(
                &format!("/api/v1/orgs/{org}/users"),
                admin,
                json!({"email": email, "role": role, "password": PASSWORD}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        self.login(email, PASSWORD).await
    }
}

/// A second organization (`globex`) with an admin user `bob@globex.test`;
/// returns bob's access token.
pub async fn second_org(api: &Api, admin: &str) -> String {
    let r = api
        .post(
            "/api/v1/orgs",
            admin,
            json!({"slug": "globex", "name": "Globex"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let org = r.body["id"].as_str().expect("org id").to_owned();
    api.user(admin, &org, "bob@globex.test", "admin").await
}

/// The value of an unlabelled metric in a `/metrics` text.
pub fn metric_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|v| v.trim().parse().ok())
}
