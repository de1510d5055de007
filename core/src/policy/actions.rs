//! The leaf policies: what each one is after compilation, and which element
//! names exist at all.

use std::sync::Arc;
use std::time::Duration;

use super::attrs;
use super::auth_cert::AuthenticationCertificate;
use super::client_cert::ValidateClientCertificate;
use super::concurrency::LimitConcurrency;
use super::cors::Cors;
use super::emit_metric::EmitMetric;
use super::error::PolicyError;
use super::ip_filter::IpFilter;
use super::json_xml::{JsonToXml, XmlToJson};
use super::jwt::ValidateJwt;
use super::llm::{LlmEmitTokenMetric, LlmTokenLimit};
use super::program::SectionKind;
use super::quota::{Quota, QuotaByKey};
use super::rate_limit::{RateLimit, RateLimitByKey};
use super::respond::{CheckHeader, MockResponse, ReturnResponse, SetStatus, Trace};
use super::response_cache::{
    CacheLookup, CacheLookupValue, CacheRemoveValue, CacheStorePolicy, CacheStoreValue,
};
use super::send::SendRequest;
use super::transform::{
    AuthenticationBasic, FindAndReplace, RewriteUri, SetBackendService, SetBody, SetHeader,
    SetMethod, SetQueryParameter, SetVariable,
};
use super::xml::Element;
use super::xslt::XslTransform;

/// `forward-request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardSpec {
    /// Response timeout (the API's when absent).
    pub timeout: Option<Duration>,
    /// Follow redirects from the backend instead of returning them.
    pub follow_redirects: bool,
    /// Backend error statuses (400-599) go to `on-error`.
    pub fail_on_error_status: bool,
}

impl ForwardSpec {
    /// Compiles `<forward-request timeout follow-redirects buffer-request-body buffer-response fail-on-error-status-code http-version />`.
    pub fn compile(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(
            el,
            &[
                "timeout",
                "timeout-ms",
                "follow-redirects",
                "buffer-request-body",
                "buffer-response",
                "fail-on-error-status-code",
                "http-version",
            ],
        )?;
        if let Some(v) = el.attr("http-version") {
            if v.trim() != "1" && v.trim() != "1.1" {
                return Err(PolicyError::at(
                    el,
                    format!("http-version '{v}' is not supported (only HTTP/1.1)"),
                ));
            }
        }
        let timeout = match (
            attrs::parsed::<u64>(el, "timeout")?,
            attrs::parsed::<u64>(el, "timeout-ms")?,
        ) {
            (_, Some(ms)) => Some(Duration::from_millis(ms)),
            (Some(s), None) => Some(Duration::from_secs(s)),
            (None, None) => None,
        };
        // buffer-* are accepted for compatibility: the gateway buffers exactly
        // when a policy needs the body, and streams otherwise.
        attrs::boolean(el, "buffer-request-body", false)?;
        attrs::boolean(el, "buffer-response", true)?;
        Ok(ForwardSpec {
            timeout,
            follow_redirects: attrs::boolean(el, "follow-redirects", false)?,
            fail_on_error_status: attrs::boolean(el, "fail-on-error-status-code", false)?,
        })
    }

    /// The default `<forward-request />` of the global backend section.
    pub const DEFAULT: ForwardSpec = ForwardSpec {
        timeout: None,
        follow_redirects: false,
        fail_on_error_status: false,
    };
}

/// A compiled leaf policy.
#[derive(Debug, Clone)]
pub enum Action {
    /// `set-header`.
    SetHeader(SetHeader),
    /// `set-query-parameter`.
    SetQueryParameter(SetQueryParameter),
    /// `rewrite-uri`.
    RewriteUri(RewriteUri),
    /// `set-method`.
    SetMethod(SetMethod),
    /// `set-body`.
    SetBody(SetBody),
    /// `find-and-replace`.
    FindAndReplace(FindAndReplace),
    /// `set-backend-service`.
    SetBackendService(SetBackendService),
    /// `set-variable`.
    SetVariable(SetVariable),
    /// `authentication-basic`.
    AuthenticationBasic(AuthenticationBasic),
    /// `authentication-certificate`.
    AuthenticationCertificate(AuthenticationCertificate),
    /// `set-status`.
    SetStatus(SetStatus),
    /// `return-response`.
    ReturnResponse(ReturnResponse),
    /// `mock-response`.
    MockResponse(MockResponse),
    /// `check-header`.
    CheckHeader(CheckHeader),
    /// `trace`.
    Trace(Trace),
    /// `forward-request`.
    Forward(ForwardSpec),
    /// `send-request` / `send-one-way-request`.
    Send(SendRequest),
    /// `ip-filter`.
    IpFilter(IpFilter),
    /// `rate-limit`.
    RateLimit(Arc<RateLimit>),
    /// `rate-limit-by-key`.
    RateLimitByKey(Arc<RateLimitByKey>),
    /// `quota`.
    Quota(Arc<Quota>),
    /// `quota-by-key`.
    QuotaByKey(Arc<QuotaByKey>),
    /// `validate-jwt`.
    ValidateJwt(Box<ValidateJwt>),
    /// `validate-client-certificate`.
    ValidateClientCertificate(Box<ValidateClientCertificate>),
    /// Entering a `limit-concurrency` block (slot numbers the block).
    LimitConcurrency(LimitConcurrency, u16),
    /// `cors`.
    Cors(Box<Cors>),
    /// `cache-lookup`.
    CacheLookup(Arc<CacheLookup>),
    /// `cache-store`.
    CacheStore(CacheStorePolicy),
    /// `cache-lookup-value`.
    CacheLookupValue(CacheLookupValue),
    /// `cache-store-value`.
    CacheStoreValue(CacheStoreValue),
    /// `cache-remove-value`.
    CacheRemoveValue(CacheRemoveValue),
    /// `json-to-xml`.
    JsonToXml(Box<JsonToXml>),
    /// `xml-to-json`.
    XmlToJson(Box<XmlToJson>),
    /// `xsl-transform`.
    XslTransform(Box<XslTransform>),
    /// `emit-metric`.
    EmitMetric(Box<EmitMetric>),
    /// `llm-token-limit`.
    LlmTokenLimit(Arc<LlmTokenLimit>),
    /// `llm-emit-token-metric`.
    LlmEmitTokenMetric(Box<LlmEmitTokenMetric>),
    /// A `wait` of `send-request`s, in flight at once.
    WaitCalls(Box<super::wait::WaitCalls>),
    /// `validate-content`, `validate-parameters`, `validate-headers`, `validate-status-code`.
    Validate(super::validate::Validate),
}

/// Policies that only Azure can run; named in errors so users know why.
const AZURE_ONLY: &[&str] = &[
    "authentication-managed-identity",
    "log-to-eventhub",
    "publish-to-dapr",
    "invoke-dapr-binding",
    "set-backend-service-dapr",
    "azure-openai-token-limit",
    "azure-openai-emit-token-metric",
    "azure-openai-semantic-cache-lookup",
    "azure-openai-semantic-cache-store",
    "get-authorization-context",
    "send-service-bus-message",
];

/// Compiles a leaf policy element of `section`.
pub fn compile(el: &Element, section: SectionKind) -> Result<Action, PolicyError> {
    let only_in = |allowed: &[SectionKind]| -> Result<(), PolicyError> {
        if allowed.contains(&section) {
            Ok(())
        } else {
            let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
            Err(PolicyError::at(
                el,
                format!(
                    "<{}> is not allowed in <{}> (only in {})",
                    el.name,
                    section.name(),
                    names.join(", ")
                ),
            ))
        }
    };
    use SectionKind::*;
    let action = match el.name.as_str() {
        "set-header" => Action::SetHeader(SetHeader::compile(el, section)?),
        "set-query-parameter" => {
            only_in(&[Inbound, Backend])?;
            Action::SetQueryParameter(SetQueryParameter::compile(el)?)
        }
        "rewrite-uri" => {
            only_in(&[Inbound, Backend])?;
            Action::RewriteUri(RewriteUri::compile(el)?)
        }
        "set-method" => {
            only_in(&[Inbound, Backend, OnError])?;
            Action::SetMethod(SetMethod::compile(el)?)
        }
        "set-body" => Action::SetBody(SetBody::compile(el, section)?),
        "find-and-replace" => Action::FindAndReplace(FindAndReplace::compile(el, section)?),
        "set-backend-service" => {
            only_in(&[Inbound, Backend])?;
            Action::SetBackendService(SetBackendService::compile(el)?)
        }
        "set-variable" => Action::SetVariable(SetVariable::compile(el)?),
        "authentication-basic" => {
            only_in(&[Inbound])?;
            Action::AuthenticationBasic(AuthenticationBasic::compile(el)?)
        }
        "authentication-certificate" => {
            only_in(&[Inbound, Backend])?;
            Action::AuthenticationCertificate(AuthenticationCertificate::compile(el)?)
        }
        "set-status" => Action::SetStatus(SetStatus::compile(el)?),
        "return-response" => Action::ReturnResponse(ReturnResponse::compile(el)?),
        "mock-response" => {
            only_in(&[Inbound, Outbound, OnError])?;
            Action::MockResponse(MockResponse::compile(el)?)
        }
        "check-header" => {
            only_in(&[Inbound])?;
            Action::CheckHeader(CheckHeader::compile(el)?)
        }
        "trace" => Action::Trace(Trace::compile(el)?),
        "forward-request" => {
            only_in(&[Backend])?;
            Action::Forward(ForwardSpec::compile(el)?)
        }
        "send-request" | "send-one-way-request" => Action::Send(SendRequest::compile(el)?),
        "ip-filter" => {
            only_in(&[Inbound])?;
            Action::IpFilter(IpFilter::from_element(el)?)
        }
        "rate-limit" => {
            only_in(&[Inbound])?;
            Action::RateLimit(Arc::new(RateLimit::from_element(el)?))
        }
        "rate-limit-by-key" => {
            only_in(&[Inbound])?;
            Action::RateLimitByKey(Arc::new(RateLimitByKey::from_element(el)?))
        }
        "quota" => {
            only_in(&[Inbound])?;
            Action::Quota(Arc::new(Quota::from_element(el)?))
        }
        "quota-by-key" => {
            only_in(&[Inbound])?;
            Action::QuotaByKey(Arc::new(QuotaByKey::from_element(el)?))
        }
        "cors" => {
            only_in(&[Inbound])?;
            Action::Cors(Box::new(Cors::from_element(el)?))
        }
        "cache-lookup" => {
            only_in(&[Inbound])?;
            Action::CacheLookup(Arc::new(CacheLookup::from_element(el)?))
        }
        "cache-store" => {
            only_in(&[Outbound])?;
            Action::CacheStore(CacheStorePolicy::from_element(el)?)
        }
        "cache-lookup-value" => Action::CacheLookupValue(CacheLookupValue::from_element(el)?),
        "cache-store-value" => Action::CacheStoreValue(CacheStoreValue::from_element(el)?),
        "cache-remove-value" => Action::CacheRemoveValue(CacheRemoveValue::from_element(el)?),
        "validate-jwt" => {
            only_in(&[Inbound])?;
            Action::ValidateJwt(Box::new(ValidateJwt::from_element(el)?))
        }
        "emit-metric" => Action::EmitMetric(Box::new(EmitMetric::from_element(el)?)),
        "llm-token-limit" => {
            only_in(&[Inbound])?;
            Action::LlmTokenLimit(Arc::new(LlmTokenLimit::from_element(el)?))
        }
        "llm-emit-token-metric" => {
            only_in(&[Inbound])?;
            Action::LlmEmitTokenMetric(Box::new(LlmEmitTokenMetric::from_element(el)?))
        }
        "validate-azure-ad-token" => {
            only_in(&[Inbound])?;
            Action::ValidateJwt(Box::new(super::azure_ad::compile(el)?))
        }
        "validate-client-certificate" => {
            only_in(&[Inbound])?;
            Action::ValidateClientCertificate(Box::new(ValidateClientCertificate::from_element(
                el,
            )?))
        }
        "json-to-xml" => {
            only_in(&[Inbound, Outbound, OnError])?;
            Action::JsonToXml(Box::new(JsonToXml::compile(el, section)?))
        }
        "xml-to-json" => {
            only_in(&[Inbound, Outbound, OnError])?;
            Action::XmlToJson(Box::new(XmlToJson::compile(el, section)?))
        }
        "xsl-transform" => {
            only_in(&[Inbound, Outbound, OnError])?;
            Action::XslTransform(Box::new(XslTransform::compile(el, section)?))
        }
        "validate-content"
        | "validate-parameters"
        | "validate-headers"
        | "validate-status-code" => {
            Action::Validate(super::validate::Validate::compile(el, section)?)
        }
        name if AZURE_ONLY.contains(&name) => {
            return Err(PolicyError::at(
                el,
                format!("<{name}> needs Azure services and is not supported by Portcullis"),
            ))
        }
        name => {
            return Err(PolicyError::at(
                el,
                format!("unknown or unsupported policy <{name}>"),
            ))
        }
    };
    Ok(action)
}
