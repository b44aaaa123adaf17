//! The OpenAPI document of a process's API. Each handler describes itself with
//! `#[utoipa::path]` and each worker hands its description over with its routes
//! ([`super::Routes::documented`]); who may call a route is added here from what the route
//! declared, so the document's security cannot drift from the check requests go through.

use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use super::routes::{Access, Declared};

/// The name of the bearer-token security scheme in the document.
pub const TOKEN_SCHEME: &str = "token";

/// The JSON body of every error answer: what went wrong, and fields that say more (`detail`,
/// the offending `agent`, the `scope` a token lacks...): other fields are allowed.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used: error bodies are built by `error_response`.
pub struct ErrorBody {
    /// What went wrong, for a person.
    error: String,
}

/// `doc` completed for the routes `declared`: title and version, the token scheme, each
/// operation's security (the scope its route declared, or none for a public route), and the
/// 401 and 403 answers a scoped route can give.
pub fn document(mut doc: OpenApi, declared: &[Declared]) -> OpenApi {
    doc.info = InfoBuilder::new()
        .title("chatgptd")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "GPT agents on an event stream. Send `Authorization: Bearer <token>`; each \
             operation names the scope its token needs.",
        ))
        .build();
    let mut components = doc
        .components
        .take()
        .unwrap_or_else(|| ComponentsBuilder::new().build());
    components.add_security_scheme(
        TOKEN_SCHEME,
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
    );
    let (name, schema) = (ErrorBody::name(), ErrorBody::schema());
    components.schemas.insert(name.to_string(), schema);
    doc.components = Some(components);

    for route in declared {
        let Some(method) = http_method(&route.method) else {
            continue;
        };
        let Some(operation) = operation_mut(&mut doc, &route.path, method) else {
            continue;
        };
        match route.access {
            Access::Public => operation.security = Some(vec![SecurityRequirement::default()]),
            Access::Scope(scope) => {
                operation.security = Some(vec![SecurityRequirement::new(
                    TOKEN_SCHEME,
                    [scope.as_str()],
                )]);
                for (status, why) in [
                    ("401", "no token, or a token this process does not know"),
                    ("403", "the token lacks the scope this operation needs"),
                ] {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error_response(why));
                }
            }
        }
    }
    doc
}

/// An error answer, its body an [`ErrorBody`].
pub fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .build()
        .into()
}

/// Every (method, path) the document describes, for checking it against the routes.
pub fn operations(doc: &OpenApi) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in &doc.paths.paths {
        for (method, operation) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if operation.is_some() {
                found.push((method.to_string(), path.clone()));
            }
        }
    }
    found
}

fn http_method(method: &axum::http::Method) -> Option<HttpMethod> {
    Some(match *method {
        axum::http::Method::GET => HttpMethod::Get,
        axum::http::Method::POST => HttpMethod::Post,
        axum::http::Method::PUT => HttpMethod::Put,
        axum::http::Method::PATCH => HttpMethod::Patch,
        axum::http::Method::DELETE => HttpMethod::Delete,
        _ => return None,
    })
}

fn operation_mut<'a>(
    doc: &'a mut OpenApi,
    path: &str,
    method: HttpMethod,
) -> Option<&'a mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        HttpMethod::Get => item.get.as_mut(),
        HttpMethod::Post => item.post.as_mut(),
        HttpMethod::Put => item.put.as_mut(),
        HttpMethod::Patch => item.patch.as_mut(),
        HttpMethod::Delete => item.delete.as_mut(),
        _ => None,
    }
}
