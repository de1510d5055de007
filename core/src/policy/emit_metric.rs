//! `emit-metric`: a custom metric sample per request, with dimensions.
//!
//! The policy only decides the sample ([`MetricSample`]); it leaves the
//! pipeline as a side output and the connection hands it to the gateway's
//! `telemetry::RecordSink`, which keeps it (Prometheus `/metrics`, with a cap
//! on distinct dimension sets: `telemetry::custom_metrics`).
//! `llm-emit-token-metric` emits its samples the same way.

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::param::{eval_text, Param, ParamValue};
use super::xml::Element;
use crate::expr::Template;

/// APIM's limit on dimensions per policy.
pub const MAX_DIMENSIONS: usize = 10;

/// The namespace when the policy names none (APIM's default).
pub const DEFAULT_NAMESPACE: &str = "API Management";

/// One sample of a custom metric, as a policy emitted it.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSample {
    /// The metric's namespace.
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// The value added.
    pub value: f64,
    /// `(dimension name, value)` in the policy's order.
    pub dimensions: Vec<(String, String)>,
}

/// A metric value: a number (a .NET double).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricValue(pub f64);

impl ParamValue for MetricValue {
    const EXPECTED: &'static str = "a number";
    fn parse_param(s: &str) -> Option<Self> {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(MetricValue)
    }
}

/// The dimensions APIM fills in when a `<dimension>` gives no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultDimension {
    /// `API ID`.
    ApiId,
    /// `Operation ID`.
    OperationId,
    /// `Product ID`.
    ProductId,
    /// `User ID` (the subscription's owner; empty: unknown to the gateway).
    UserId,
    /// `Subscription ID`.
    SubscriptionId,
    /// `Location` (the gateway's region).
    Location,
    /// `Gateway ID`.
    GatewayId,
    /// `Backend ID` (the backend's host; outbound).
    BackendId,
}

impl DefaultDimension {
    /// The default dimension called `name` (APIM's names, any case).
    pub fn named(name: &str) -> Option<Self> {
        use DefaultDimension::*;
        let n = name.trim().to_ascii_lowercase();
        Some(match n.as_str() {
            "api id" => ApiId,
            "operation id" => OperationId,
            "product id" => ProductId,
            "user id" => UserId,
            "subscription id" => SubscriptionId,
            "location" => Location,
            "gateway id" => GatewayId,
            "backend id" => BackendId,
            _ => return None,
        })
    }

    /// Its value for the request in `ctx`.
    pub fn value(self, ctx: &Context) -> String {
        let f = &ctx.fixed;
        match self {
            DefaultDimension::ApiId => f.api.id.clone(),
            DefaultDimension::OperationId => f.operation.id.clone(),
            DefaultDimension::ProductId => {
                f.product.as_ref().map_or(String::new(), |p| p.id.clone())
            }
            // The gateway knows subscriptions, not their owners.
            DefaultDimension::UserId => String::new(),
            DefaultDimension::SubscriptionId => f
                .subscription
                .as_ref()
                .map_or(String::new(), |s| s.id.clone()),
            DefaultDimension::Location => f.region.to_string(),
            DefaultDimension::GatewayId => f.gateway_id.to_string(),
            DefaultDimension::BackendId => ctx.request.url.host.clone(),
        }
    }
}

/// A `<dimension>`: its name and where its value comes from.
#[derive(Debug, Clone)]
pub struct Dimension {
    /// The name (literal or expression).
    pub name: Template,
    /// The value; `None`: the default dimension of that name.
    pub value: Option<Template>,
    /// The default dimension its literal name is, if any.
    pub default: Option<DefaultDimension>,
}

impl Dimension {
    /// Compiles the `<dimension>` children of `el` (at most [`MAX_DIMENSIONS`]).
    pub fn compile_all(el: &Element) -> Result<Vec<Dimension>, PolicyError> {
        let mut out: Vec<Dimension> = Vec::new();
        for d in el.children_named("dimension") {
            attrs::only(d, &["name", "value"])?;
            attrs::only_children(d, &[])?;
            let name = attrs::required_template(d, "name")?;
            let default = name.literal().and_then(DefaultDimension::named);
            let value = attrs::template(d, "value")?;
            if value.is_none() && default.is_none() {
                return Err(PolicyError::at(
                    d,
                    format!(
                        "dimension '{}' needs a value (only API ID, Operation ID, Product ID, User ID, Subscription ID, Location, Gateway ID and Backend ID may omit it)",
                        name.literal().unwrap_or("(expression)")
                    ),
                ));
            }
            if let Some(n) = name.literal() {
                if out
                    .iter()
                    .any(|o| o.name.literal().is_some_and(|m| m.eq_ignore_ascii_case(n)))
                {
                    return Err(PolicyError::at(d, format!("dimension '{n}' appears twice")));
                }
            }
            out.push(Dimension {
                name,
                value,
                default,
            });
        }
        if out.len() > MAX_DIMENSIONS {
            return Err(PolicyError::at(
                el,
                format!(
                    "{} dimensions: at most {MAX_DIMENSIONS} are allowed",
                    out.len()
                ),
            ));
        }
        Ok(out)
    }

    /// `(name, value)` for the request in `ctx`.
    pub fn resolve(&self, ctx: &Context) -> Result<(String, String), Failure> {
        let name = eval_text(&self.name, ctx)?;
        let value = match (&self.value, self.default) {
            (Some(v), _) => eval_text(v, ctx)?,
            (None, Some(d)) => d.value(ctx),
            (None, None) => match DefaultDimension::named(&name) {
                Some(d) => d.value(ctx),
                None => String::new(),
            },
        };
        Ok((name, value))
    }
}

/// Rejects an expression in an attribute APIM takes only as text.
fn literal_attr(el: &Element, name: &str) -> Result<Option<String>, PolicyError> {
    match el.attr(name) {
        Some(v) if v.trim_start().starts_with("@(") || v.trim_start().starts_with("@{") => {
            Err(PolicyError::at(
                el,
                format!("attribute '{name}' does not allow policy expressions"),
            ))
        }
        Some(v) if v.trim().is_empty() => Err(PolicyError::at(
            el,
            format!("attribute '{name}' must not be empty"),
        )),
        Some(v) => Ok(Some(v.trim().to_string())),
        None => Ok(None),
    }
}

/// The `namespace` attribute, or APIM's default.
pub fn namespace(el: &Element) -> Result<String, PolicyError> {
    Ok(literal_attr(el, "namespace")?.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()))
}

/// `<emit-metric>`.
#[derive(Debug, Clone)]
pub struct EmitMetric {
    /// The metric's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// The value (default 1).
    pub value: Param<MetricValue>,
    /// Its dimensions.
    pub dimensions: Vec<Dimension>,
}

impl EmitMetric {
    /// Compiles `<emit-metric name namespace value><dimension .../></emit-metric>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["name", "namespace", "value"])?;
        attrs::only_children(el, &["dimension"])?;
        let name = literal_attr(el, "name")?
            .ok_or_else(|| PolicyError::at(el, "attribute 'name' is required"))?;
        let dimensions = Dimension::compile_all(el)?;
        if dimensions.is_empty() {
            return Err(PolicyError::at(el, "at least one <dimension> is required"));
        }
        Ok(EmitMetric {
            name,
            namespace: namespace(el)?,
            value: Param::attr_or(el, "value", MetricValue(1.0))?,
            dimensions,
        })
    }

    /// The sample for the request in `ctx`.
    pub fn sample(&self, ctx: &Context) -> Result<MetricSample, Failure> {
        let mut dimensions = Vec::with_capacity(self.dimensions.len());
        for d in &self.dimensions {
            dimensions.push(d.resolve(ctx)?);
        }
        Ok(MetricSample {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            value: self.value.resolve(ctx)?.0,
            dimensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    fn compile(src: &str) -> Result<EmitMetric, PolicyError> {
        EmitMetric::from_element(&xml::parse(src).unwrap())
    }

    #[test]
    fn compiles_apim_defaults() {
        let m = compile(r#"<emit-metric name="Request"><dimension name="API ID" /><dimension name="Client IP" value="@(context.Request.IpAddress)" /></emit-metric>"#).unwrap();
        assert_eq!(m.namespace, "API Management");
        assert_eq!(m.value.literal(), Some(&MetricValue(1.0)));
        assert_eq!(m.dimensions[0].default, Some(DefaultDimension::ApiId));
        assert!(m.dimensions[1].value.is_some());
    }

    #[test]
    fn bad_documents_are_refused_with_the_reason() {
        for (src, want) in [
            (
                r#"<emit-metric namespace="n"><dimension name="API ID"/></emit-metric>"#,
                "'name' is required",
            ),
            (r#"<emit-metric name="m" />"#, "at least one <dimension>"),
            (
                r#"<emit-metric name="m"><dimension name="Tenant" /></emit-metric>"#,
                "needs a value",
            ),
            (
                r#"<emit-metric name="m" value="lots"><dimension name="API ID" /></emit-metric>"#,
                "must be a number",
            ),
            (
                r#"<emit-metric name="@(1)"><dimension name="API ID" /></emit-metric>"#,
                "does not allow policy expressions",
            ),
            (
                r#"<emit-metric name="m"><dimension name="API ID" /><dimension name="api id" /></emit-metric>"#,
                "appears twice",
            ),
            (
                r#"<emit-metric name="m"><dimension name="API ID"><x/></dimension></emit-metric>"#,
                "x",
            ),
        ] {
            let e = compile(src).unwrap_err();
            assert!(e.message.contains(want), "{src}: {e:?}");
        }
        let eleven: String = (0..11)
            .map(|i| format!(r#"<dimension name="d{i}" value="v" />"#))
            .collect();
        let e = compile(&format!(r#"<emit-metric name="m">{eleven}</emit-metric>"#)).unwrap_err();
        assert!(e.message.contains("at most 10"), "{e:?}");
    }
}
