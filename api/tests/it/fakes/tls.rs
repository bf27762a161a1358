//! A private certificate authority for tests: the CA a server's certificate
//! comes from, for the door controller over HTTPS and the mail relay.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// A private certificate authority and one server certificate it issued.
pub struct TestCa {
    ca_pem: String,
    leaf_der: CertificateDer<'static>,
    leaf_pem: String,
    leaf_key_der: Vec<u8>,
    leaf_key_pem: String,
}

impl TestCa {
    /// A CA named `name` and a server certificate for 127.0.0.1 and localhost.
    pub fn new(name: &str) -> TestCa {
        Self::issuing(name, &["localhost"], true)
    }

    /// A CA named `name` and a server certificate for the DNS `names`, and for
    /// 127.0.0.1 when `loopback`.
    pub fn issuing(name: &str, names: &[&str], loopback: bool) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        if loopback {
            leaf.subject_alt_names.push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
        }
        leaf.distinguished_name.push(DnType::CommonName, "test server");
        let leaf_cert = leaf.signed_by(&leaf_key, &ca_cert, &ca_key).unwrap();
        TestCa {
            ca_pem: ca_cert.pem(),
            leaf_der: leaf_cert.der().clone(),
            leaf_pem: leaf_cert.pem(),
            leaf_key_der: leaf_key.serialize_der(),
            leaf_key_pem: leaf_key.serialize_pem(),
        }
    }

    /// The CA certificate in a PEM file, for `CONTROLLER_CA_FILE` or `SMTP_CA_FILE`.
    pub fn write_pem(&self) -> PathBuf {
        temp_file("ca", &self.ca_pem)
    }

    /// The server certificate and its key in PEM files, for a server that is
    /// not ours to configure in Rust (certificate, key).
    pub fn write_server_pem(&self) -> (PathBuf, PathBuf) {
        (temp_file("cert", &self.leaf_pem), temp_file("key", &self.leaf_key_pem))
    }

    pub fn server_config(&self) -> rustls::ServerConfig {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.leaf_key_der.clone()));
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![self.leaf_der.clone()], key)
            .unwrap()
    }
}

fn temp_file(what: &str, content: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("lockers-test-{what}-{}.pem", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, content).unwrap();
    path
}
