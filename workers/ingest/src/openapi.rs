//! The webhooks' part of the OpenAPI document. Their handlers are closures over the source,
//! so the description is built here, from the same routes and headers the gateway uses.

use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem, PathsBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, OpenApiBuilder, Required, ResponseBuilder};

use crate::source::{self, Source};

/// `POST /webhooks/{jira,servicenow,github}`.
pub(crate) fn webhooks() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for source in Source::ALL {
        let (what, headers): (&str, &[(&str, &str)]) = match source {
            Source::Jira => (
                "A Jira Cloud webhook (`jira:issue_created`, `jira:issue_updated`, `comment_created`).",
                &[
                    (
                        source::JIRA_SIGNATURE_HEADER,
                        "`sha256=<hex HMAC-SHA256 of the body>`",
                    ),
                    (
                        source::JIRA_DELIVERY_HEADER,
                        "the delivery id, the same across retries",
                    ),
                ],
            ),
            Source::GitHub => (
                "A GitHub webhook (`issues`, `issue_comment`; `ping` is acknowledged).",
                &[
                    (
                        source::GITHUB_SIGNATURE_HEADER,
                        "`sha256=<hex HMAC-SHA256 of the body>`",
                    ),
                    (
                        source::GITHUB_DELIVERY_HEADER,
                        "the delivery id, the same on a redelivery",
                    ),
                    (source::GITHUB_EVENT_HEADER, "the event name"),
                ],
            ),
            Source::ServiceNow => (
                "An incident posted by a ServiceNow Business Rule, signed with `generateMac` \
                 (base64 HMAC-SHA256) in the configured header.",
                &[],
            ),
        };
        let mut operation = OperationBuilder::new()
            .tag("webhooks")
            .summary(Some(format!("Receive a {source} webhook")))
            .description(Some(format!(
                "{what} Authenticated by its signature, not by an API token. Answered 202 \
                 only once Kafka holds the event; a redelivery is answered 200 and produces \
                 nothing."
            )))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                            .build(),
                    )
                    .build(),
            ));
        for (name, description) in headers {
            operation = operation.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(*description))
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
            );
        }
        for (status, description) in [
            ("202", "accepted: Kafka holds the event"),
            (
                "200",
                "a duplicate delivery, or an event that is not a ticket change: ignored",
            ),
            ("400", "not a payload of this source"),
            (
                "401",
                "no signature, a wrong one, or no secret configured for this source",
            ),
            (
                "403",
                "a project or repository the gateway is not told to accept",
            ),
            ("413", "the body is larger than the limit"),
            ("429", "over the rate limit: retry after `Retry-After`"),
            (
                "503",
                "Kafka or memory unavailable: retry after `Retry-After`",
            ),
        ] {
            operation = operation.response(status, json_response(description));
        }
        paths = paths.path(
            source::route(source),
            PathItem::new(HttpMethod::Post, operation.build()),
        );
    }
    OpenApiBuilder::new().paths(paths.build()).build()
}

fn json_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build(),
        )
        .build()
}
