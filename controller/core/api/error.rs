//! The error answer of every route.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure an error answer reports; each has one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ErrorCode {
    /// The request itself is malformed (400).
    BadRequest,
    /// A missing or wrong credential (401).
    Unauthorized,
    /// The caller is known but may not do this (403).
    Forbidden,
    /// The object does not exist (404).
    NotFound,
    /// The route does not take this method (405).
    MethodNotAllowed,
    /// The request conflicts with the current state or with a concurrent
    /// writer (409).
    Conflict,
    /// The objects are invalid (422).
    Invalid,
    /// A fault of the server (500).
    Internal,
    /// The server cannot serve now, e.g. its store is unavailable (503).
    Unavailable,
}

impl ErrorCode {
    /// The HTTP status of this code.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::Invalid => 422,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }

    /// The code of an HTTP status, for answers that carry no body (a proxy,
    /// a body limit).
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            422 => ErrorCode::Invalid,
            503 => ErrorCode::Unavailable,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        }
    }
}

/// An error answer: `{"code": "notFound", "message": "services \"x\" not found"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// An error of `code` saying `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `KIND "NAME" not found`, as kubectl says it.
    pub fn not_found(kind_plural: &str, name: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("{kind_plural} \"{name}\" not found"),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
