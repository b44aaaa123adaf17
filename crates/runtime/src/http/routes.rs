//! Routes that say who may call them. A worker builds its routes with [`Routes`], naming the
//! scope of each method next to its handler, so the declaration cannot drift from the route;
//! the process checks every request against these declarations once ([`super::auth`]).

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use utoipa::openapi::OpenApi;

use super::token::Scope;

/// What a route requires of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A token holding this scope (or `admin`).
    Scope(Scope),
    /// Nothing: the route authenticates its callers itself (the webhooks, by signature).
    Public,
}

/// One declared method of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub method: Method,
    /// The route as axum matches it: `/agents/{id}`.
    pub path: String,
    pub access: Access,
}

/// A router whose every route declares what it requires. A route added through
/// [`Routes::map`] declares nothing, and the process then requires `admin` for it.
pub struct Routes<S = ()> {
    router: Router<S>,
    declared: Vec<Declared>,
    /// What the handlers say of themselves (`#[utoipa::path]`), for the OpenAPI document.
    doc: OpenApi,
}

impl<S> Default for Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    fn default() -> Self {
        Routes {
            router: Router::new(),
            declared: Vec::new(),
            doc: OpenApi::default(),
        }
    }
}

impl<S> Routes<S>
where
    S: Clone + Send + Sync + 'static,
{
    /// No routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// `GET path` (and `HEAD`), requiring `scope`.
    pub fn get<H, T>(self, path: &str, scope: Scope, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route(
            path,
            Method::GET,
            Access::Scope(scope),
            axum::routing::get(handler),
        )
    }

    /// `POST path`, requiring `scope`.
    pub fn post<H, T>(self, path: &str, scope: Scope, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route(
            path,
            Method::POST,
            Access::Scope(scope),
            axum::routing::post(handler),
        )
    }

    /// `PATCH path`, requiring `scope`.
    pub fn patch<H, T>(self, path: &str, scope: Scope, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route(
            path,
            Method::PATCH,
            Access::Scope(scope),
            axum::routing::patch(handler),
        )
    }

    /// `DELETE path`, requiring `scope`.
    pub fn delete<H, T>(self, path: &str, scope: Scope, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.route(
            path,
            Method::DELETE,
            Access::Scope(scope),
            axum::routing::delete(handler),
        )
    }

    /// `method path` served by `method_router`, requiring `access`. Methods of the same path
    /// are merged, as axum merges them.
    pub fn route(
        mut self,
        path: &str,
        method: Method,
        access: Access,
        method_router: MethodRouter<S>,
    ) -> Self {
        self.router = self.router.route(path, method_router);
        self.declared.push(Declared {
            method,
            path: path.to_string(),
            access,
        });
        self
    }

    /// Both sets of routes.
    pub fn merge(mut self, other: Routes<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.declared.extend(other.declared);
        self.doc.merge(other.doc);
        self
    }

    /// The routes with their handlers' description (a `#[derive(utoipa::OpenApi)]` naming
    /// their `#[utoipa::path]`s) added to the OpenAPI document.
    pub fn documented(mut self, doc: OpenApi) -> Self {
        self.doc.merge(doc);
        self
    }

    /// The OpenAPI document of these routes: what the handlers described, with the security
    /// each route declared ([`super::openapi::document`]).
    pub fn openapi(&self) -> OpenApi {
        super::openapi::document(self.doc.clone(), &self.declared)
    }

    /// The router changed by `change`: for layers, such as a body limit. Routes it adds are
    /// not declared, so they require `admin`.
    pub fn map(mut self, change: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = change(self.router);
        self
    }

    /// The routes with their state given.
    pub fn with_state<S2>(self, state: S) -> Routes<S2> {
        Routes {
            router: self.router.with_state(state),
            declared: self.declared,
            doc: self.doc,
        }
    }

    /// What every route declared.
    pub fn declared(&self) -> &[Declared] {
        &self.declared
    }

    /// The router and the declarations.
    pub fn into_parts(self) -> (Router<S>, Vec<Declared>) {
        (self.router, self.declared)
    }

    /// The router alone, for tests of a worker's handlers.
    pub fn into_router(self) -> Router<S> {
        self.router
    }
}
