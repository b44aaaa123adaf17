//! `GET /usage`: a day's messages, tokens and cost by model, for the fleet and each agent.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chatgptd_runtime::http::openapi::ErrorBody;
use chatgptd_runtime::http::{error_response as error, query_params};
use serde::Deserialize;
use serde_json::json;

use super::AgentsApi;
use crate::usage::{day_usage, today, valid_day};

/// The query of `GET /usage`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct DayParam {
    /// The UTC day, `YYYY-MM-DD` (default: today). Days are kept 35 days.
    #[param(example = "2026-01-31")]
    day: Option<String>,
}

/// A day's usage: messages answered, input and output tokens by model, and their cost in USD
/// (tokens times `model.prices`; `cost: null` for a model without a price), for the whole
/// fleet (`totals`), each fleet and each agent.
#[utoipa::path(get, path = "/usage", tag = "agents", params(DayParam), responses(
    (status = 200, description = "`{\"day\", \"currency\", \"totals\", \"fleets\", \"agents\": [...]}`", body = serde_json::Value),
    (status = 400, description = "a day that is not YYYY-MM-DD", body = ErrorBody),
    (status = 503, description = "memory is unavailable", body = ErrorBody),
))]
pub(super) async fn usage(
    State(state): State<AgentsApi>,
    params: Result<Query<DayParam>, QueryRejection>,
) -> Response {
    let params = match query_params(params) {
        Ok(params) => params,
        Err(response) => return *response,
    };
    let day = params.day.unwrap_or_else(today);
    if !valid_day(&day) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid day",
            json!({"detail": "day must be a date, YYYY-MM-DD (UTC)", "day": day}),
        );
    }
    let registry = state.registry();
    match day_usage(state.memory.as_ref(), &registry, &state.prices, &day, None).await {
        Ok(usage) => Json(usage).into_response(),
        Err(err) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "memory unavailable",
            json!({"detail": err.to_string()}),
        ),
    }
}
