//! The console's static files, compiled into the binary (no CDN, no
//! external fonts: the console works air-gapped). URLs carry a hash of the
//! content, so browsers may keep a file forever and still see a new build.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: &[Asset] = &[
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/app.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/app.js"),
    },
    Asset {
        name: "terminal.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/terminal.js"),
    },
    // The terminal page's emulator, vendored unmodified (assets/vendor/README.md).
    Asset {
        name: "xterm.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/vendor/xterm.js"),
    },
    Asset {
        name: "xterm.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/vendor/xterm.css"),
    },
    Asset {
        name: "addon-fit.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../assets/vendor/addon-fit.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../assets/favicon.svg"),
    },
];

/// The first 16 hex digits of each asset's SHA-256, by position.
static VERSIONS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| hex16(&Sha256::digest(a.body.as_bytes())))
        .collect()
});

fn hex16(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The URL of an asset, versioned by its content.
pub(crate) fn url(name: &str) -> String {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => format!("/console/assets/{name}?v={}", VERSIONS[i]),
        None => format!("/console/assets/{name}"),
    }
}

pub(crate) async fn serve(Path(name): Path<String>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_versioned_by_content() {
        let u = url("app.js");
        assert!(u.starts_with("/console/assets/app.js?v="));
        assert_eq!(u.len(), "/console/assets/app.js?v=".len() + 16);
        assert_ne!(url("app.js"), url("app.css").replace("app.css", "app.js"));
    }

    #[test]
    fn the_script_has_no_eval_and_loads_nothing_remote() {
        for name in ["app.js", "terminal.js"] {
            let js = ASSETS.iter().find(|a| a.name == name).unwrap().body;
            assert!(!js.contains("eval("), "{name}");
            assert!(
                !js.contains("http://") && !js.contains("https://"),
                "{name}"
            );
        }
        let css = ASSETS.iter().find(|a| a.name == "app.css").unwrap().body;
        assert!(!css.contains("http://") && !css.contains("https://") && !css.contains("@import"));
    }

    #[test]
    fn vendored_files_are_the_packages_unmodified() {
        let readme = include_str!("../assets/vendor/README.md");
        for name in ["xterm.js", "xterm.css", "addon-fit.js"] {
            let body = ASSETS.iter().find(|a| a.name == name).unwrap().body;
            let sum: String = Sha256::digest(body.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let row = readme
                .lines()
                .find(|l| l.starts_with(&format!("| `{name}`")))
                .unwrap_or_else(|| panic!("{name} is not in the vendor README"));
            assert!(row.contains(&sum), "{name}: {sum} is not the README's sum");
        }
    }
}
