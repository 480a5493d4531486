//! What a visitor sees when a handler panics: a plain page that leaks nothing.

use std::any::Any;

use axum::body::Body;
use axum::http::{Response, StatusCode, header};

pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)");
    tracing::error!(panic = detail, "request handler panicked");
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(ERROR_PAGE))
        .unwrap_or_else(|_| Response::new(Body::from("Internal Server Error")))
}

const ERROR_PAGE: &str = r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Something went wrong · Baton</title></head>
<body><main>
<h1>Something went wrong</h1><p>Please try again in a few minutes. <a href="/">Go to the home page</a>.</p>
<h2 lang="es">Algo salió mal</h2><p lang="es">Intente de nuevo en unos minutos. <a href="/">Ir a la página de inicio</a>.</p>
</main></body></html>
"#;
