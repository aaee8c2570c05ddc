//! A throw-away CA and a server certificate for 127.0.0.1 signed by it.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A CA (as PEM, for the client to trust) and a leaf certificate for `127.0.0.1` and
/// `localhost` with its key (for the server). Kept across restarts of an [`crate::Intake`]
/// so the client's trust stays valid.
#[derive(Debug)]
pub struct TestPki {
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// The server certificate, DER.
    pub cert: CertificateDer<'static>,
    /// The server key, PKCS#8 DER.
    pub key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for TestPki {
    fn clone(&self) -> Self {
        TestPki {
            ca_pem: self.ca_pem.clone(),
            cert: self.cert.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl TestPki {
    /// Generates a fresh CA named after `name` and a leaf signed by it.
    pub fn new(name: &str) -> Result<Self, Error> {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
        let leaf_key = KeyPair::generate()?;
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?
            .signed_by(&leaf_key, &ca)?;
        Ok(TestPki {
            ca_pem: ca.pem(),
            cert: leaf.der().clone(),
            key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()),
        })
    }
}
