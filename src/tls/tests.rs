//! Loading the TLS files, their mistakes, reloads and the subject of a
//! client certificate, on certificates openssl makes for each test.

use super::certs::{Certs, CLIENT_SUBJECT};
use super::*;

fn files(certs: &Certs, cert: &str, key: &str, client_ca: Option<&str>) -> TlsFiles {
    TlsFiles {
        cert: certs.path(cert),
        key: certs.path(key),
        client_ca: client_ca.map(|ca| certs.path(ca)),
    }
}

fn error(files: &TlsFiles) -> String {
    match server_config(files) {
        Ok(_) => panic!("{files:?} loaded"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_certificate_and_its_key_load_with_or_without_a_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    server_config(&files(&certs, "server.pem", "server.key", None)).unwrap();
    server_config(&files(&certs, "server.pem", "server.key", Some("ca.pem"))).unwrap();
    // The chain may follow the certificate in the same file.
    let chain = [
        std::fs::read(certs.path("server.pem")).unwrap(),
        std::fs::read(certs.path("ca.pem")).unwrap(),
    ]
    .concat();
    std::fs::write(certs.path("chain.pem"), chain).unwrap();
    server_config(&files(&certs, "chain.pem", "server.key", None)).unwrap();
}

#[test]
fn rsa_and_ec_keys_load_in_their_traditional_forms_too() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    certs.openssl(&["genrsa", "-traditional", "-out", "rsa.key", "2048"]);
    certs.openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "ec.key",
    ]);
    for key in ["rsa", "ec"] {
        let header = std::fs::read_to_string(certs.path(&format!("{key}.key"))).unwrap();
        assert!(
            header.starts_with(&format!("-----BEGIN {} PRIVATE KEY", key.to_uppercase())),
            "{header}"
        );
        certs.openssl(&[
            "req",
            "-x509",
            "-key",
            &format!("{key}.key"),
            "-out",
            &format!("{key}.pem"),
            "-subj",
            "/CN=localhost",
            "-days",
            "1",
        ]);
        server_config(&files(
            &certs,
            &format!("{key}.pem"),
            &format!("{key}.key"),
            None,
        ))
        .unwrap();
    }
}

#[test]
fn file_mistakes_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    std::fs::write(certs.path("garbage"), "not a certificate\n").unwrap();

    let missing = error(&files(&certs, "absent.pem", "server.key", None));
    assert!(
        missing.contains("cannot read certificate") && missing.contains("absent.pem"),
        "{missing}"
    );
    let missing = error(&files(&certs, "server.pem", "absent.key", None));
    assert!(missing.contains("cannot read private key"), "{missing}");

    let garbage = error(&files(&certs, "garbage", "server.key", None));
    assert!(
        garbage.ends_with("garbage holds no PEM certificate"),
        "{garbage}"
    );
    // A certificate where the key should be.
    let no_key = error(&files(&certs, "server.pem", "server.pem", None));
    assert!(no_key.contains("holds no PEM private key"), "{no_key}");

    let mismatch = error(&files(&certs, "server.pem", "client.key", None));
    assert!(
        mismatch.contains("client.key is not the key of the certificate in --tls-cert"),
        "{mismatch}"
    );

    let no_ca = error(&files(&certs, "server.pem", "server.key", Some("garbage")));
    assert!(
        no_ca.ends_with("garbage holds no PEM CA certificate"),
        "{no_ca}"
    );
}

#[test]
fn a_failed_reload_keeps_the_configuration_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    std::fs::copy(certs.path("server.pem"), certs.path("live.pem")).unwrap();
    std::fs::copy(certs.path("server.key"), certs.path("live.key")).unwrap();
    let tls = Tls::load(files(&certs, "live.pem", "live.key", None)).unwrap();
    let first = tls.current();

    std::fs::write(certs.path("live.pem"), "half written").unwrap();
    assert!(tls.reload().is_err());
    assert!(Arc::ptr_eq(&first, &tls.current()));

    // A renewed certificate, same key.
    certs.openssl(&[
        "req",
        "-x509",
        "-key",
        "live.key",
        "-out",
        "live.pem",
        "-subj",
        "/CN=localhost",
        "-days",
        "1",
    ]);
    tls.reload().unwrap();
    assert!(!Arc::ptr_eq(&first, &tls.current()));
}

fn subject_of(certs: &Certs, file: &str) -> Option<String> {
    let cert = CertificateDer::from_pem_file(certs.path(file)).unwrap();
    subject_dn(cert.as_ref())
}

#[test]
fn a_client_certificate_names_its_subject_as_kafka_does() {
    let dir = tempfile::tempdir().unwrap();
    let certs = Certs::generate(dir.path());
    assert_eq!(CLIENT_SUBJECT, "/O=acme/OU=eng/CN=alice");
    assert_eq!(
        subject_of(&certs, "client.pem").as_deref(),
        Some("CN=alice,OU=eng,O=acme")
    );
    assert_eq!(
        subject_of(&certs, "ca.pem").as_deref(),
        Some("CN=StreamHouse test CA")
    );

    // Escapes, a multi-valued name, and an attribute Java names by OID.
    certs.openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "odd.key",
        "-out",
        "odd.pem",
        "-days",
        "1",
        "-multivalue-rdn",
        "-subj",
        "/C=FR/O=Acme, Inc./OU=a\\+b/CN=bob+UID=b42/emailAddress=bob@example.com",
    ]);
    assert_eq!(
        subject_of(&certs, "odd.pem").as_deref(),
        Some(
            "1.2.840.113549.1.9.1=#160f626f62406578616d706c652e636f6d,\
             CN=bob+UID=b42,OU=a\\+b,O=Acme\\, Inc.,C=FR"
        )
    );
}
