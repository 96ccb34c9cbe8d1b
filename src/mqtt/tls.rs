//! TLS for `mqtts://`: rustls with the ring provider, the CA, the client certificate and key;
//! every error names the key and the file.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

use super::MqttSettings;

pub(super) fn read_file(key: &str, p: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("{key} {}: cannot read it", p.display()))
}

/// The rustls client configuration for `mqtts://`; errors name the key and the file.
pub fn tls_config(s: &MqttSettings) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    match &s.ca {
        Some(p) => {
            let pem = read_file("mqtt_ca", p)?;
            let mut n = 0;
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| {
                    anyhow::anyhow!("mqtt_ca {}: not a PEM certificate: {e}", p.display())
                })?;
                roots.add(c).map_err(|e| {
                    anyhow::anyhow!("mqtt_ca {}: not a usable CA certificate: {e}", p.display())
                })?;
                n += 1;
            }
            anyhow::ensure!(n > 0, "mqtt_ca {}: no PEM certificate in it", p.display());
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            anyhow::ensure!(
                !roots.is_empty(),
                "mqtts: no system CA certificates found; give the broker's CA with mqtt_ca (--mqtt-ca)"
            );
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots);
    let cfg = match (&s.cert, &s.key) {
        (Some(cp), Some(kp)) => {
            let pem = read_file("mqtt_cert", cp)?;
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| anyhow::anyhow!("mqtt_cert {}: not PEM: {e}", cp.display()))?;
            anyhow::ensure!(
                !certs.is_empty(),
                "mqtt_cert {}: no PEM certificate in it",
                cp.display()
            );
            let kpem = read_file("mqtt_key", kp)?;
            let key = PrivateKeyDer::from_pem_slice(&kpem).map_err(|e| {
                anyhow::anyhow!("mqtt_key {}: not a PEM private key: {e}", kp.display())
            })?;
            builder.with_client_auth_cert(certs, key).map_err(|e| {
                anyhow::anyhow!(
                    "mqtt_cert {} / mqtt_key {}: {e}",
                    cp.display(),
                    kp.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}
