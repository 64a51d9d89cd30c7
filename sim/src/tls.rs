//! Certificates for the simulated fleet: one test CA per fleet, and per host either a self-signed
//! leaf (cPanel's default, which clients pin) or a leaf signed by that CA. Both carry the host
//! name, `localhost`, 127.0.0.1 and the host's own loopback address so a client connecting to the loopback address can verify them.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use crate::spec::{CertMode, TestCaPem};

pub(crate) struct TestCa {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn generate() -> anyhow::Result<TestCa> {
        let key = KeyPair::generate().context("generating the test CA key")?;
        let params = ca_params()?;
        let cert = params.self_signed(&key).context("signing the test CA")?;
        Ok(TestCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Generate a CA and return it as PEM, for simulator processes that must share it.
    pub fn generate_pem() -> anyhow::Result<TestCaPem> {
        let key = KeyPair::generate().context("generating the test CA key")?;
        let cert = ca_params()?
            .self_signed(&key)
            .context("signing the test CA")?;
        Ok(TestCaPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA another process generated: the same distinguished name and key sign leaves that
    /// chain to its certificate (the issuer name and key identifier come from those two).
    pub fn from_pem(ca: &TestCaPem) -> anyhow::Result<TestCa> {
        let key = KeyPair::from_pem(&ca.key_pem).context("reading the test CA key")?;
        Ok(TestCa {
            pem: ca.cert_pem.clone(),
            issuer: Issuer::new(ca_params()?, key),
        })
    }
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "cpanel-sim test CA");
    dn.push(DnType::OrganizationName, "tokenfleet cpanel-sim");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

pub(crate) struct HostCert {
    pub der: Vec<u8>,
    pub config: Arc<ServerConfig>,
}

/// `address`: the host's own loopback address (per-host addressing), also put in the SANs.
pub(crate) fn host_cert(
    name: &str,
    address: &str,
    mode: CertMode,
    ca: &TestCa,
) -> anyhow::Result<HostCert> {
    let key = KeyPair::generate().context("generating a host key")?;
    let mut sans = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    if address != "127.0.0.1" {
        sans.push(address.to_string());
    }
    if name != "localhost" {
        sans.insert(0, name.to_string());
    }
    let mut params = CertificateParams::new(sans)
        .with_context(|| format!("host name “{name}” cannot go into a certificate"))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let cert = match mode {
        CertMode::SelfSigned => params.self_signed(&key)?,
        CertMode::CaSigned => params.signed_by(&key, &ca.issuer)?,
    };
    let der = cert.der().to_vec();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    Ok(HostCert {
        der,
        config: Arc::new(config),
    })
}

/// `sha256:AB:CD:…`: uppercase hex with colons, over the leaf certificate's DER.
pub(crate) fn pin_of(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha256:{}", hex.join(":"))
}
