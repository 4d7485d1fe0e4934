//! Raw HTTP access to a node's API: `Http` (headers and body text visible, unlike
//! `LedgerClient`) and `Resp` with the contract assertions shared by the tests.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

use super::HTTP_TIMEOUT;

/// A response with everything a contract test checks.
#[derive(Debug, Clone)]
pub struct Resp {
    /// HTTP status.
    pub status: u16,
    /// `X-Ledger-Index`, when present and numeric.
    pub index: Option<u64>,
    /// All headers.
    pub headers: HeaderMap,
    /// Raw body text.
    pub text: String,
    /// Body as JSON (`Null` when not JSON).
    pub body: Value,
}

impl Resp {
    /// 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `error.code` of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// True when the outcome is not known (the request may or may not have taken effect):
    /// 5xx answers. Transport errors are handled by the caller.
    pub fn retryable(&self) -> bool {
        self.status >= 500
    }

    /// Asserts the JSON error shape `{"error": {"code", "message", "details"}}`.
    pub fn assert_error_shape(&self, what: &str) {
        let e = &self.body["error"];
        assert!(
            e.is_object(),
            "{what}: error body is not the JSON shape: {} {}",
            self.status,
            self.text
        );
        assert!(
            e["code"].as_str().is_some_and(|c| !c.is_empty()),
            "{what}: no error.code: {}",
            self.text
        );
        assert!(
            e["message"].is_string(),
            "{what}: no error.message: {}",
            self.text
        );
        assert!(
            e.get("details").is_some(),
            "{what}: no error.details: {}",
            self.text
        );
    }

    /// Asserts status and error code, and the error shape.
    pub fn expect_error(&self, what: &str, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "{what}: expected {status} {code}, got {} {}",
            self.status, self.text
        );
        self.assert_error_shape(what);
        assert_eq!(
            self.code(),
            code,
            "{what}: wrong error code in {}",
            self.text
        );
    }
}

/// A raw HTTP client on one node's API (headers and text visible, unlike `LedgerClient`).
#[derive(Clone)]
pub struct Http {
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
}

impl Http {
    /// A client for `base`.
    pub fn new(base: &str) -> Self {
        Self::with_timeout(base, HTTP_TIMEOUT)
    }

    /// A client for `base` sending through `client` (e.g. one trusting a TLS cluster's CA).
    pub fn with_client(base: &str, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    /// A client whose requests time out after `timeout`.
    pub fn with_timeout(base: &str, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .expect("reqwest client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        }
    }

    async fn read(r: reqwest::Response) -> Result<Resp, reqwest::Error> {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let index = headers
            .get("x-ledger-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = r.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Resp {
            status,
            index,
            headers,
            text,
            body,
        })
    }

    /// POSTs JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Resp, reqwest::Error> {
        Self::read(
            self.client
                .post(format!("{}{path}", self.base))
                .json(body)
                .send()
                .await?,
        )
        .await
    }

    /// POSTs raw bytes as `application/json` with extra headers.
    pub async fn post_raw(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<Resp, reqwest::Error> {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Self::read(req.send().await?).await
    }

    /// Sends `method path` with exactly the given content type (none when `None`) and body,
    /// panicking on a transport error.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> Resp {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method token");
        let mut req = self
            .client
            .request(m, format!("{}{path}", self.base))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let sent = req.send().await;
        let r = sent.unwrap_or_else(|e| panic!("{method} {}{path}: {e}", self.base));
        Self::read(r)
            .await
            .unwrap_or_else(|e| panic!("{method} {}{path}: reading the answer: {e}", self.base))
    }

    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Result<Resp, reqwest::Error> {
        Self::read(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await?,
        )
        .await
    }

    /// GETs `path`, panicking on a transport error.
    pub async fn must_get(&self, path: &str) -> Resp {
        self.get(path)
            .await
            .unwrap_or_else(|e| panic!("GET {}{path}: {e}", self.base))
    }

    /// POSTs JSON, panicking on a transport error.
    pub async fn must_post(&self, path: &str, body: &Value) -> Resp {
        self.post(path, body)
            .await
            .unwrap_or_else(|e| panic!("POST {}{path}: {e}", self.base))
    }
}
