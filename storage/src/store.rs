//! Object stores built from a URL.
//!
//! | URL | store |
//! |-----|-------|
//! | `file:///abs/path` or `file://rel/path` | a local folder (fsync on write; see [`crate::folder`]) |
//! | `memory://` | in-process memory (tests) |
//! | `s3://bucket?endpoint=..&region=..&allow_http=true&path_style=true&prefix=p` | S3 or an S3-compatible server |
//!
//! S3 credentials come from the usual AWS environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`).
//!
//! What a request may tell any store beyond object_store's options (a put that
//! is background work) is in [`crate::background`].

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::{Certificate, ClientOptions, ObjectStore};
use url::Url;

use crate::folder::FolderStore;
use crate::StorageError;

/// Builds the store a URL names. Errors say what is wrong with the URL.
pub fn open_store(url: &str) -> Result<Arc<dyn ObjectStore>, StorageError> {
    let invalid = |reason: String| StorageError::InvalidStoreUrl {
        url: url.to_string(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        if path.is_empty() {
            return Err(invalid("a file:// URL needs a folder path".into()));
        }
        std::fs::create_dir_all(path)
            .map_err(|e| invalid(format!("cannot create folder '{path}': {e}")))?;
        let store =
            FolderStore::new(std::path::Path::new(path)).map_err(|e| invalid(e.to_string()))?;
        return Ok(Arc::new(store));
    }
    let parsed = Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "memory" => Ok(Arc::new(InMemory::new())),
        "s3" => open_s3(&parsed).map_err(invalid),
        other => Err(invalid(format!(
            "unsupported scheme '{other}' (expected file://, memory:// or s3://)"
        ))),
    }
}

fn open_s3(url: &Url) -> Result<Arc<dyn ObjectStore>, String> {
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or("an s3:// URL needs a bucket name: s3://BUCKET?...")?;
    // A private CA (an S3-compatible store inside the company), trusted
    // beside the system's roots. Client options go in first: the settings
    // below and the environment's add to them, and would be lost if they
    // were replaced afterwards.
    let mut client = None;
    for (key, value) in url.query_pairs() {
        if key == "ca_file" {
            let mut options = client.unwrap_or_else(ClientOptions::new);
            for certificate in ca_bundle(&value)? {
                options = options.with_root_certificate(certificate);
            }
            client = Some(options);
        }
    }
    let mut builder = builder_from_env(client).with_bucket_name(bucket);
    let mut prefix = None;
    for (key, value) in url.query_pairs() {
        builder = match key.as_ref() {
            "endpoint" => builder.with_endpoint(value.to_string()),
            "region" => builder.with_region(value.to_string()),
            "allow_http" => builder.with_allow_http(parse_bool(&key, &value)?),
            "path_style" => builder.with_virtual_hosted_style_request(!parse_bool(&key, &value)?),
            "prefix" => {
                prefix = Some(value.to_string());
                builder
            }
            "ca_file" => builder,
            other => {
                return Err(format!(
                    "unknown parameter '{other}' (expected endpoint, region, allow_http, path_style, prefix, ca_file)"
                ))
            }
        };
    }
    let store = builder.build().map_err(|e| e.to_string())?;
    Ok(match prefix {
        Some(prefix) => Arc::new(PrefixStore::new(store, prefix)),
        None => Arc::new(store),
    })
}

/// `AmazonS3Builder::from_env` on top of `client`'s options.
fn builder_from_env(client: Option<ClientOptions>) -> AmazonS3Builder {
    let Some(client) = client else {
        return AmazonS3Builder::from_env();
    };
    let mut builder = AmazonS3Builder::new().with_client_options(client);
    // As from_env: variables that are not UTF-8 are skipped, not a panic.
    for (key, value) in std::env::vars_os() {
        let (Some(key), Some(value)) = (key.to_str(), value.to_str()) else {
            continue;
        };
        if !key.starts_with("AWS_") {
            continue;
        }
        if let Ok(config_key) = key.to_ascii_lowercase().parse() {
            builder = builder.with_config(config_key, value);
        }
    }
    builder
}

/// The certificates of a PEM file, at least one.
fn ca_bundle(path: &str) -> Result<Vec<Certificate>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file '{path}': {e}"))?;
    match Certificate::from_pem_bundle(&pem) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err(format!("ca_file '{path}' holds no PEM certificate")),
        Err(e) => Err(format!(
            "ca_file '{path}' is not a PEM certificate bundle: {e}"
        )),
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!(
            "parameter '{key}' must be true or false, not '{value}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_scheme_is_explained() {
        let err = open_store("ftp://x").unwrap_err().to_string();
        assert!(err.contains("unsupported scheme 'ftp'"), "{err}");
    }

    #[test]
    fn s3_without_bucket_is_explained() {
        let err = open_store("s3://?region=x").unwrap_err().to_string();
        assert!(err.contains("bucket"), "{err}");
    }

    #[test]
    fn s3_unknown_parameter_is_explained() {
        let err = open_store("s3://b?colour=red").unwrap_err().to_string();
        assert!(err.contains("unknown parameter 'colour'"), "{err}");
    }

    #[test]
    fn s3_bad_boolean_is_explained() {
        let err = open_store("s3://b?allow_http=maybe")
            .unwrap_err()
            .to_string();
        assert!(err.contains("must be true or false"), "{err}");
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = open_store(&format!("s3://b?ca_file={}", missing.display()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read ca_file"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = open_store(&format!("s3://b?ca_file={}", empty.display()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }

    #[test]
    fn file_and_memory_stores_open() {
        let dir = tempfile::tempdir().unwrap();
        open_store(&format!("file://{}", dir.path().display())).unwrap();
        open_store("memory://").unwrap();
    }
}
