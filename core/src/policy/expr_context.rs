//! The pipeline's `Context` as the expressions' `ExprContext`: what
//! `context.*` reads in an `@(...)` expression.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::context::{Context, Headers, Response, Url};
use crate::cert::ClientCertificate;
use crate::expr::{ErrField, ExprContext, SubField, UrlSrc, Value};

impl ExprContext for Context {
    fn request_id(&self) -> &str {
        &self.request_id
    }

    fn rng_seed(&self) -> u64 {
        self.rng_seed
    }

    fn now_unix_ms(&self) -> i64 {
        self.now_unix_ms
    }

    fn elapsed(&self) -> Duration {
        self.elapsed
    }

    fn request_method(&self) -> &str {
        &self.request.method
    }

    fn request_ip(&self) -> &str {
        &self.request.ip_address
    }

    fn url(&self, src: UrlSrc) -> &Url {
        match src {
            UrlSrc::Request => &self.request.url,
            UrlSrc::Original => &self.request.original_url,
            UrlSrc::Service => &self.fixed.api.service_url,
        }
    }

    fn request_headers(&self) -> &Headers {
        &self.request.headers
    }

    fn request_body(&self) -> Option<&Bytes> {
        self.request.body.as_ref()
    }

    fn matched_parameters(&self) -> &[(String, String)] {
        &self.request.matched_parameters
    }

    fn response(&self) -> Option<&Response> {
        self.response.as_ref()
    }

    fn variables(&self) -> &HashMap<String, Value> {
        &self.variables
    }

    fn subscription(&self, f: SubField) -> Option<&str> {
        let sub = self.fixed.subscription.as_deref()?;
        Some(match f {
            SubField::Id => &sub.id,
            SubField::Name => &sub.name,
            SubField::Key => &sub.key,
            SubField::PrimaryKey => &sub.primary_key,
            SubField::SecondaryKey => &sub.secondary_key,
        })
    }

    fn product(&self) -> Option<(&str, &str)> {
        let p = self.fixed.product.as_deref()?;
        Some((&p.id, &p.name))
    }

    fn api_id(&self) -> &str {
        &self.fixed.api.id
    }

    fn api_name(&self) -> &str {
        &self.fixed.api.name
    }

    fn api_path(&self) -> &str {
        &self.fixed.api.path
    }

    fn operation_id(&self) -> &str {
        &self.fixed.operation.id
    }

    fn operation_name(&self) -> &str {
        &self.fixed.operation.name
    }

    fn operation_method(&self) -> &str {
        &self.fixed.operation.method
    }

    fn operation_url_template(&self) -> &str {
        &self.fixed.operation.url_template
    }

    fn gateway_id(&self) -> Arc<str> {
        self.fixed.gateway_id.clone()
    }

    fn region(&self) -> Arc<str> {
        self.fixed.region.clone()
    }

    fn service_name(&self) -> Arc<str> {
        self.fixed.service_name.clone()
    }

    fn last_error(&self, f: ErrField) -> Option<&str> {
        let e = self.last_error.as_ref()?;
        Some(match f {
            ErrField::Source => &e.source,
            ErrField::Reason => &e.reason,
            ErrField::Message => &e.message,
            ErrField::Scope => &e.scope,
            ErrField::Section => &e.section,
            ErrField::Path => &e.path,
            ErrField::PolicyId => &e.policy_id,
        })
    }

    fn client_certificate(&self) -> Option<&Arc<ClientCertificate>> {
        self.request.certificate.as_ref()
    }

    fn verify_certificate(&self, cert: &ClientCertificate) -> bool {
        self.fixed.certificates.verify(cert, self.now_unix_ms)
    }

    fn deployment_certificates(&self) -> &[Arc<ClientCertificate>] {
        self.fixed.certificates.deployment_certificates()
    }
}
