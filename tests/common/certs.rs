//! Certificates for the TLS tests, made with the `openssl` command at test
//! time so that no key is ever committed: a CA, a server certificate for
//! localhost and 127.0.0.1, a client certificate of `CN=alice,OU=eng,O=acme`
//! from that CA, and a second CA with a client certificate of the same name
//! that the broker does not trust.
//!
//! Also compiled into the library's unit tests (`src/tls/mod.rs`), which load
//! these files.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Certs {
    dir: PathBuf,
}

/// The client certificates' subject, as openssl takes it (first to last).
pub const CLIENT_SUBJECT: &str = "/O=acme/OU=eng/CN=alice";

impl Certs {
    /// Makes every file in `dir`.
    pub fn generate(dir: &Path) -> Certs {
        let certs = Certs {
            dir: dir.to_path_buf(),
        };
        certs.authority("ca", "/CN=StreamHouse test CA");
        certs.authority("other-ca", "/CN=Someone else's CA");
        certs.issue(
            "server",
            "/CN=localhost",
            "ca",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        );
        certs.issue(
            "client",
            CLIENT_SUBJECT,
            "ca",
            "extendedKeyUsage=clientAuth\n",
        );
        certs.issue(
            "stranger",
            CLIENT_SUBJECT,
            "other-ca",
            "extendedKeyUsage=clientAuth\n",
        );
        certs
    }

    /// `NAME.pem` or `NAME.key`, as given.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A self-signed CA: NAME.pem and NAME.key.
    fn authority(&self, name: &str, subject: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            subject,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
    }

    /// NAME.pem (signed by `ca`, with `extensions`) and NAME.key (PKCS#8).
    fn issue(&self, name: &str, subject: &str, ca: &str, extensions: &str) {
        let ext = format!("{name}.ext");
        std::fs::write(
            self.dir.join(&ext),
            format!("basicConstraints=CA:FALSE\n{extensions}"),
        )
        .unwrap();
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            subject,
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ]);
    }

    pub fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .output()
            .expect("run openssl (the TLS tests need the openssl command)");
        assert!(
            output.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
