//! `OPTIONS` and `405 Method Not Allowed` (with `Allow`) for the library's
//! paths; Rocket alone would answer 404.

use rocket::Route;
use rocket::http::Status;
use rocket::request::Request;

/// For every library path: `OPTIONS` answering with `Allow`, and 405 with
/// `Allow` for the methods the path does not take (Rocket alone says 404).
pub(crate) fn method_routes(routes: &[Route]) -> Vec<Route> {
    use rocket::http::Method;
    let mut by_path: std::collections::BTreeMap<String, Vec<Method>> = Default::default();
    for r in routes {
        by_path
            .entry(r.uri.path().to_string())
            .or_default()
            .push(r.method);
    }
    let mut out = Vec::new();
    for (path, mut methods) in by_path {
        if methods.contains(&Method::Get) {
            methods.push(Method::Head);
        }
        methods.push(Method::Options);
        methods.sort_by_key(|m| m.as_str());
        methods.dedup();
        let allow = methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for m in [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Patch,
            Method::Trace,
            Method::Options,
        ] {
            if m != Method::Options && methods.contains(&m) {
                continue;
            }
            let handler = MethodAnswer {
                allow: allow.clone(),
                options: m == Method::Options,
            };
            out.push(Route::ranked(100, m, &path, handler));
        }
    }
    out
}

#[derive(Clone)]
struct MethodAnswer {
    allow: String,
    options: bool,
}

#[rocket::async_trait]
impl rocket::route::Handler for MethodAnswer {
    async fn handle<'r>(
        &self,
        _req: &'r Request<'_>,
        _data: rocket::Data<'r>,
    ) -> rocket::route::Outcome<'r> {
        let status = if self.options {
            Status::Ok
        } else {
            Status::MethodNotAllowed
        };
        let res = rocket::Response::build()
            .status(status)
            .header(rocket::http::Header::new("Allow", self.allow.clone()))
            .finalize();
        rocket::outcome::Outcome::Success(res)
    }
}
