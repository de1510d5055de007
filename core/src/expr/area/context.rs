//! APIM's `context`: what an expression may read of a request (the
//! `ExprContext` trait, implemented by the policy pipeline's context), how
//! `context.Request.Headers`, `context.Variables` and the other paths are
//! resolved at compile time, and how they are read at run time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cert::ClientCertificate;
use crate::expr::area::certificate;
use crate::expr::area::convert::{cast, default_of};
use crate::expr::ast::{Arg, TypeRef};
use crate::expr::compile::{err, konst, Comp, Compiler};
use crate::expr::datetime;
use crate::expr::encoding;
use crate::expr::eval::{arr, fail, no_member, nre, s, str_arg, Frame, R};
use crate::expr::json;
use crate::expr::node::{
    BodySrc, CastTy, CtxDict, CtxProp, DictOp, ErrField, Member, MsgSrc, Node, SubField, UrlPart,
    UrlSrc,
};
use crate::expr::types::{method_of, method_ok, method_result, Ty};
use crate::expr::value::{Dict, Value};
use crate::expr::{EvalError, ExprError, Headers, Response, Url};

/// What an expression reads of a request: APIM's `context`. The policy
/// pipeline's context implements it, so expressions never name the
/// pipeline's own types.
pub trait ExprContext {
    /// `context.RequestId`.
    fn request_id(&self) -> &str;
    /// Randomness for `Guid.NewGuid()` and `Random` (an input, never the OS's).
    fn rng_seed(&self) -> u64;
    /// Wall-clock time for `DateTime.UtcNow`, milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
    /// `context.Elapsed`: time since the request arrived.
    fn elapsed(&self) -> Duration;
    /// `context.Request.Method`.
    fn request_method(&self) -> &str;
    /// `context.Request.IpAddress`.
    fn request_ip(&self) -> &str;
    /// `context.Request.Url`, `context.Request.OriginalUrl` or `context.Api.ServiceUrl`.
    fn url(&self, src: UrlSrc) -> &Url;
    /// `context.Request.Headers`.
    fn request_headers(&self) -> &Headers;
    /// `context.Request.Body`, when the pipeline buffered it.
    fn request_body(&self) -> Option<&Bytes>;
    /// `context.Request.MatchedParameters`.
    fn matched_parameters(&self) -> &[(String, String)];
    /// `context.Response`, once there is one.
    fn response(&self) -> Option<&Response>;
    /// `context.Variables`.
    fn variables(&self) -> &HashMap<String, Value>;
    /// A `context.Subscription` field (`None`: the request has no subscription).
    fn subscription(&self, f: SubField) -> Option<&str>;
    /// `context.Product`'s id and name (`None`: no product).
    fn product(&self) -> Option<(&str, &str)>;
    /// `context.Api.Id`.
    fn api_id(&self) -> &str;
    /// `context.Api.Name`.
    fn api_name(&self) -> &str;
    /// `context.Api.Path`.
    fn api_path(&self) -> &str;
    /// `context.Operation.Id`.
    fn operation_id(&self) -> &str;
    /// `context.Operation.Name`.
    fn operation_name(&self) -> &str;
    /// `context.Operation.Method`.
    fn operation_method(&self) -> &str;
    /// `context.Operation.UrlTemplate`.
    fn operation_url_template(&self) -> &str;
    /// `context.Deployment.GatewayId`.
    fn gateway_id(&self) -> Arc<str>;
    /// `context.Deployment.Region`.
    fn region(&self) -> Arc<str>;
    /// `context.Deployment.ServiceName`.
    fn service_name(&self) -> Arc<str>;
    /// A `context.LastError` field (`None`: not in `<on-error>`).
    fn last_error(&self, f: ErrField) -> Option<&str>;
    /// `context.Request.Certificate`: what the client sent during the TLS
    /// handshake (`None`: no certificate, or not over TLS).
    fn client_certificate(&self) -> Option<&Arc<ClientCertificate>> {
        None
    }
    /// `X509Certificate2.Verify()`: valid now, chained to a trusted CA, not revoked.
    fn verify_certificate(&self, _cert: &ClientCertificate) -> bool {
        false
    }
    /// `context.Deployment.Certificates`: the uploaded certificates.
    fn deployment_certificates(&self) -> &[Arc<ClientCertificate>] {
        &[]
    }
}

// ---- compile time ----

/// Context objects that are not values themselves.
#[derive(Debug, Clone)]
pub(crate) enum CtxObj {
    Context,
    Request,
    Response,
    Url(UrlSrc),
    Dict(CtxDict),
    Body(BodySrc),
    Subscription,
    Product,
    Api,
    Operation,
    Deployment,
    LastError,
    User,
}

impl CtxObj {
    /// The C# path of the object, for error messages.
    pub(crate) fn path(&self) -> &'static str {
        match self {
            CtxObj::Context => "context",
            CtxObj::Request => "context.Request",
            CtxObj::Response => "context.Response",
            CtxObj::Url(UrlSrc::Request) => "context.Request.Url",
            CtxObj::Url(UrlSrc::Original) => "context.Request.OriginalUrl",
            CtxObj::Url(UrlSrc::Service) => "context.Api.ServiceUrl",
            CtxObj::Dict(CtxDict::Headers(MsgSrc::Request)) => "context.Request.Headers",
            CtxObj::Dict(CtxDict::Headers(MsgSrc::Response)) => "context.Response.Headers",
            CtxObj::Dict(CtxDict::Query(_)) => "Url.Query",
            CtxObj::Dict(CtxDict::Matched) => "context.Request.MatchedParameters",
            CtxObj::Dict(CtxDict::Variables) => "context.Variables",
            CtxObj::Body(BodySrc::Ctx(MsgSrc::Request)) => "context.Request.Body",
            CtxObj::Body(BodySrc::Ctx(MsgSrc::Response)) => "context.Response.Body",
            CtxObj::Body(BodySrc::Value(_)) => "IResponse.Body",
            CtxObj::Subscription => "context.Subscription",
            CtxObj::Product => "context.Product",
            CtxObj::Api => "context.Api",
            CtxObj::Operation => "context.Operation",
            CtxObj::Deployment => "context.Deployment",
            CtxObj::LastError => "context.LastError",
            CtxObj::User => "context.User",
        }
    }
}

/// `dict[key]` on a context dictionary.
pub(crate) fn ctx_index(d: CtxDict, k: Node) -> Comp {
    let ty = match d {
        CtxDict::Headers(_) | CtxDict::Query(_) => Ty::Array,
        CtxDict::Matched => Ty::Str,
        CtxDict::Variables => Ty::Any,
    };
    Comp::Val(Node::CtxDict(d, DictOp::Index, vec![k], None), ty)
}

/// Whether `m` is a property of an `IResponse`.
pub(crate) fn response_member_ok(m: Member) -> bool {
    matches!(
        m,
        Member::StatusCode | Member::StatusReason | Member::Headers
    )
}

impl Compiler {
    /// A context object used as a value (`context.Request.Url` as a string...).
    pub(crate) fn ctx_value(&mut self, obj: CtxObj, pos: usize) -> Result<(Node, Ty), ExprError> {
        Ok(match obj {
            CtxObj::Url(src) => (Node::Ctx(CtxProp::Url(src, UrlPart::Whole)), Ty::Str),
            CtxObj::Dict(d) => (Node::Ctx(CtxProp::Dict(d)), Ty::Dict),
            CtxObj::Response => (Node::Ctx(CtxProp::ResponseValue), Ty::Response),
            CtxObj::Body(BodySrc::Ctx(m)) => {
                self.mark_body(m);
                (Node::Ctx(CtxProp::BodyRaw(m)), Ty::Bytes)
            }
            CtxObj::Subscription => (Node::Ctx(CtxProp::Subscription(None)), Ty::Dict),
            CtxObj::Product => (Node::Ctx(CtxProp::Product(None)), Ty::Dict),
            CtxObj::LastError => (Node::Ctx(CtxProp::LastError(None)), Ty::Dict),
            CtxObj::User => (Node::Const(Value::Null), Ty::Null),
            other => {
                return Err(err(
                    pos,
                    format!("unsupported use of '{}' as a value", other.path()),
                ))
            }
        })
    }

    fn mark_body(&mut self, m: MsgSrc) {
        match m {
            MsgSrc::Request => self.req_body = true,
            MsgSrc::Response => self.resp_body = true,
        }
    }

    /// `obj.name` on a context object.
    pub(crate) fn ctx_member(
        &mut self,
        obj: CtxObj,
        name: &str,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        use CtxProp as P;
        let v = |p: CtxProp, t: Ty| Ok(Comp::Val(Node::Ctx(p), t));
        match (&obj, name) {
            (CtxObj::Context, "Request") => Ok(Comp::Ctx(CtxObj::Request)),
            (CtxObj::Context, "Response") => Ok(Comp::Ctx(CtxObj::Response)),
            (CtxObj::Context, "Variables") => Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Variables))),
            (CtxObj::Context, "Subscription") => Ok(Comp::Ctx(CtxObj::Subscription)),
            (CtxObj::Context, "Product") => Ok(Comp::Ctx(CtxObj::Product)),
            (CtxObj::Context, "Api") => Ok(Comp::Ctx(CtxObj::Api)),
            (CtxObj::Context, "Operation") => Ok(Comp::Ctx(CtxObj::Operation)),
            (CtxObj::Context, "Deployment") => Ok(Comp::Ctx(CtxObj::Deployment)),
            (CtxObj::Context, "LastError") => Ok(Comp::Ctx(CtxObj::LastError)),
            (CtxObj::Context, "User") => Ok(Comp::Ctx(CtxObj::User)),
            (CtxObj::Context, "RequestId") => v(P::RequestId, Ty::Str),
            (CtxObj::Context, "Elapsed") => v(P::Elapsed, Ty::TimeSpan),
            (CtxObj::Context, "Timestamp") => v(P::Timestamp, Ty::DateTime),
            (CtxObj::Context, "Tracing") => Ok(konst(false, Ty::Bool)),
            (CtxObj::Request, "Method") => v(P::RequestMethod, Ty::Str),
            (CtxObj::Request, "Url") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Request))),
            (CtxObj::Request, "OriginalUrl") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Original))),
            (CtxObj::Request, "Headers") => {
                Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Headers(MsgSrc::Request))))
            }
            (CtxObj::Request, "IpAddress") => v(P::RequestIp, Ty::Str),
            (CtxObj::Request, "Body") => Ok(Comp::Ctx(CtxObj::Body(BodySrc::Ctx(MsgSrc::Request)))),
            (CtxObj::Request, "MatchedParameters") => Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Matched))),
            (CtxObj::Request, "Certificate") => v(P::Certificate, Ty::Cert),
            (CtxObj::Response, "StatusCode") => v(P::StatusCode, Ty::Int),
            (CtxObj::Response, "StatusReason") => v(P::StatusReason, Ty::Str),
            (CtxObj::Response, "Headers") => {
                Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Headers(MsgSrc::Response))))
            }
            (CtxObj::Response, "Body") => {
                Ok(Comp::Ctx(CtxObj::Body(BodySrc::Ctx(MsgSrc::Response))))
            }
            (CtxObj::Url(src), _) => {
                let part = match name {
                    "Scheme" => UrlPart::Scheme,
                    "Host" => UrlPart::Host,
                    "Port" => UrlPart::Port,
                    "Path" => UrlPart::Path,
                    "QueryString" => UrlPart::QueryString,
                    "Query" => return Ok(Comp::Ctx(CtxObj::Dict(CtxDict::Query(*src)))),
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                let ty = if part == UrlPart::Port {
                    Ty::Int
                } else {
                    Ty::Str
                };
                v(P::Url(*src, part), ty)
            }
            (CtxObj::Dict(d), "Count") => Ok(Comp::Val(
                Node::CtxDict(*d, DictOp::Count, Vec::new(), None),
                Ty::Int,
            )),
            (CtxObj::Dict(d), "Keys") => Ok(Comp::Val(
                Node::CtxDict(*d, DictOp::Keys, Vec::new(), None),
                Ty::Array,
            )),
            (CtxObj::Subscription, _) => {
                let f = match name {
                    "Id" => SubField::Id,
                    "Name" => SubField::Name,
                    "Key" => SubField::Key,
                    "PrimaryKey" => SubField::PrimaryKey,
                    "SecondaryKey" => SubField::SecondaryKey,
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                v(P::Subscription(Some(f)), Ty::Str)
            }
            (CtxObj::Product, "Id") => v(P::Product(Some(true)), Ty::Str),
            (CtxObj::Product, "Name") => v(P::Product(Some(false)), Ty::Str),
            (CtxObj::Api, "Id") => v(P::ApiId, Ty::Str),
            (CtxObj::Api, "Name") => v(P::ApiName, Ty::Str),
            (CtxObj::Api, "Path") => v(P::ApiPath, Ty::Str),
            (CtxObj::Api, "ServiceUrl") => Ok(Comp::Ctx(CtxObj::Url(UrlSrc::Service))),
            (CtxObj::Operation, "Id") => v(P::OpId, Ty::Str),
            (CtxObj::Operation, "Name") => v(P::OpName, Ty::Str),
            (CtxObj::Operation, "Method") => v(P::OpMethod, Ty::Str),
            (CtxObj::Operation, "UrlTemplate") => v(P::OpUrlTemplate, Ty::Str),
            (CtxObj::Deployment, "GatewayId") => v(P::GatewayId, Ty::Str),
            (CtxObj::Deployment, "Region") => v(P::Region, Ty::Str),
            (CtxObj::Deployment, "ServiceName") => v(P::ServiceName, Ty::Str),
            (CtxObj::Deployment, "Certificates") => v(P::DeploymentCertificates, Ty::Dict),
            (CtxObj::LastError, _) => {
                let f = match name {
                    "Source" => ErrField::Source,
                    "Reason" => ErrField::Reason,
                    "Message" => ErrField::Message,
                    "Scope" => ErrField::Scope,
                    "Section" => ErrField::Section,
                    "Path" => ErrField::Path,
                    "PolicyId" => ErrField::PolicyId,
                    _ => return Err(self.no_member(&obj, name, pos)),
                };
                v(P::LastError(Some(f)), Ty::Str)
            }
            (
                CtxObj::User,
                "Id" | "Email" | "FirstName" | "LastName" | "Note" | "Groups" | "Identities"
                | "RegistrationDate",
            ) => v(P::User, Ty::Str),
            _ => Err(self.no_member(&obj, name, pos)),
        }
    }

    /// The error for a member a context object does not have.
    pub(crate) fn no_member(&self, obj: &CtxObj, name: &str, pos: usize) -> ExprError {
        err(pos, format!("unsupported member '{}.{name}'", obj.path()))
    }

    /// `obj.name(args)` on a context object.
    pub(crate) fn ctx_call(
        &mut self,
        obj: CtxObj,
        name: &str,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        match (&obj, name) {
            (CtxObj::Dict(d), "GetValueOrDefault" | "ContainsKey") => {
                let op = if name == "ContainsKey" {
                    DictOp::Has
                } else {
                    DictOp::Get
                };
                let t = self.targ(targs)?;
                if t.is_some() && *d != CtxDict::Variables {
                    return Err(err(
                        pos,
                        format!("'{name}<T>' is only supported on context.Variables"),
                    ));
                }
                let max = if op == DictOp::Has { 1 } else { 2 };
                if args.is_empty() || args.len() > max {
                    return Err(err(pos, format!("wrong number of arguments to '{name}'")));
                }
                let a = self.args(args, pos)?;
                let ty = match (op, d, t) {
                    (DictOp::Has, _, _) => Ty::Bool,
                    (_, CtxDict::Variables, Some(c)) => Ty::of_cast(c),
                    (_, CtxDict::Variables, None) => Ty::Any,
                    _ => Ty::Str,
                };
                Ok(Comp::Val(Node::CtxDict(*d, op, a, t), ty))
            }
            (CtxObj::Dict(d), "TryGetValue") => {
                self.try_get_value(Node::Ctx(CtxProp::Dict(*d)), args, pos)
            }
            (CtxObj::Url(src), "ToString") if args.is_empty() => Ok(Comp::Val(
                Node::Ctx(CtxProp::Url(*src, UrlPart::Whole)),
                Ty::Str,
            )),
            (CtxObj::Body(src), "As") => {
                let t = self
                    .targ(targs)?
                    .ok_or_else(|| err(pos, "As<T>() needs a type argument"))?;
                for a in args {
                    match a.name.as_deref() {
                        Some("preserveContent") | None => {}
                        Some(other) => {
                            return Err(err(a.value.pos, format!("unsupported argument '{other}'")))
                        }
                    }
                }
                let t = match t {
                    CastTy::Str
                    | CastTy::JObject
                    | CastTy::JArray
                    | CastTy::JToken
                    | CastTy::Bytes
                    | CastTy::XDocument
                    | CastTy::XElement => t,
                    _ => {
                        return Err(err(
                            targs.first().map(|t| t.pos).unwrap_or(pos),
                            format!(
                                "unsupported type '{}' in Body.As<T>()",
                                targs.first().map(|t| t.name.as_str()).unwrap_or("?")
                            ),
                        ))
                    }
                };
                let src = self.body_src(src.clone());
                Ok(Comp::Val(Node::BodyAs(src, t), Ty::of_cast(t)))
            }
            (CtxObj::Body(src), "AsFormUrlEncodedContent") => {
                let src = self.body_src(src.clone());
                Ok(Comp::Val(Node::BodyForm(src), Ty::Dict))
            }
            (CtxObj::Context, "Trace") => {
                let a = self.args(args, pos)?;
                Ok(Comp::Val(Node::Nop(a), Ty::Null))
            }
            _ => {
                // Treat the object as a value (a URL's ToString(), a dictionary's LINQ...).
                match self.materialize(Comp::Ctx(obj.clone()), pos) {
                    Ok((node, ty)) => {
                        let Some(m) = method_of(name) else {
                            return Err(err(
                                pos,
                                format!("unsupported method '{name}' on {}", obj.path()),
                            ));
                        };
                        if !method_ok(ty, m) {
                            return Err(err(
                                pos,
                                format!("unsupported method '{name}' on {}", obj.path()),
                            ));
                        }
                        let t = self.targ(targs)?;
                        let a = self.args(args, pos)?;
                        Ok(Comp::Val(
                            Node::Method(Box::new(node), m, a, t),
                            method_result(ty, m),
                        ))
                    }
                    Err(_) => Err(err(
                        pos,
                        format!("unsupported method '{name}' on {}", obj.path()),
                    )),
                }
            }
        }
    }

    fn body_src(&mut self, src: BodySrc) -> BodySrc {
        if let BodySrc::Ctx(m) = &src {
            self.mark_body(*m);
        }
        src
    }
}

// ---- run time ----

fn query_dict(u: &Url) -> Dict {
    let mut d = Dict::default();
    for (k, v) in &u.query {
        push_multi(&mut d, k, v, false);
    }
    d
}

fn push_multi(d: &mut Dict, k: &str, v: &str, ignore_case: bool) {
    let found = d.entries.iter_mut().find(|(n, _)| {
        if ignore_case {
            n.eq_ignore_ascii_case(k)
        } else {
            &**n == k
        }
    });
    match found {
        Some((_, Value::Array(items))) => Arc::make_mut(items).push(s(v)),
        _ => d.entries.push((k.into(), arr(vec![s(v)]))),
    }
}

fn headers_dict(h: &Headers) -> Dict {
    let mut d = Dict {
        entries: Vec::new(),
        ignore_case: true,
    };
    for (k, v) in h.iter() {
        push_multi(&mut d, k, v, true);
    }
    d
}

fn response_value(r: &Response) -> Value {
    Value::Response(Arc::new(r.clone()))
}

impl<'c> Frame<'c> {
    /// A context property as a value.
    pub(crate) fn ctx_prop(&mut self, p: CtxProp) -> R<Value> {
        let ctx = self.ctx;
        Ok(match p {
            CtxProp::RequestMethod => s(ctx.request_method()),
            CtxProp::RequestIp => s(ctx.request_ip()),
            CtxProp::Url(src, part) => {
                let u = ctx.url(src);
                match part {
                    UrlPart::Scheme => s(u.scheme.as_str()),
                    UrlPart::Host => s(u.host.as_str()),
                    UrlPart::Port => Value::Int(u.port as i64),
                    UrlPart::Path => s(u.path.as_str()),
                    UrlPart::QueryString => s(u.query_string()),
                    UrlPart::Whole => s(u.to_url_string()),
                }
            }
            CtxProp::Dict(d) => match d {
                CtxDict::Headers(m) => Value::Dict(Arc::new(headers_dict(self.headers(m)?))),
                CtxDict::Query(src) => Value::Dict(Arc::new(query_dict(ctx.url(src)))),
                CtxDict::Matched => Value::Dict(Arc::new(Dict {
                    entries: ctx
                        .matched_parameters()
                        .iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), s(v.as_str())))
                        .collect(),
                    ignore_case: true,
                })),
                CtxDict::Variables => {
                    let mut entries: Vec<(Arc<str>, Value)> = ctx
                        .variables()
                        .iter()
                        .map(|(k, v)| (Arc::from(k.as_str()), v.clone()))
                        .collect();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    Value::Dict(Arc::new(Dict {
                        entries,
                        ignore_case: false,
                    }))
                }
            },
            CtxProp::StatusCode => match ctx.response() {
                Some(r) => Value::Int(r.status as i64),
                None => return nre("context.Response"),
            },
            CtxProp::StatusReason => match ctx.response() {
                Some(r) => s(r.reason.as_str()),
                None => return nre("context.Response"),
            },
            CtxProp::ResponseValue => match ctx.response() {
                Some(r) => response_value(r),
                None => Value::Null,
            },
            CtxProp::BodyRaw(m) => {
                let body = match m {
                    MsgSrc::Request => ctx.request_body(),
                    MsgSrc::Response => ctx.response().and_then(|r| r.body.as_ref()),
                };
                body.map(|b| Value::Bytes(b.clone())).unwrap_or(Value::Null)
            }
            CtxProp::Subscription(f) => match (ctx.subscription(SubField::Id), f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.Subscription"),
                (Some(_), Some(f)) => s(ctx.subscription(f).unwrap_or_default()),
                (Some(id), None) => Value::Dict(Arc::new(Dict {
                    entries: vec![
                        ("Id".into(), s(id)),
                        (
                            "Name".into(),
                            s(ctx.subscription(SubField::Name).unwrap_or_default()),
                        ),
                    ],
                    ignore_case: false,
                })),
            },
            CtxProp::Product(f) => match (ctx.product(), f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.Product"),
                (Some((id, _)), Some(true)) => s(id),
                (Some((_, name)), Some(false)) => s(name),
                (Some((id, name)), None) => Value::Dict(Arc::new(Dict {
                    entries: vec![("Id".into(), s(id)), ("Name".into(), s(name))],
                    ignore_case: false,
                })),
            },
            CtxProp::ApiId => s(ctx.api_id()),
            CtxProp::ApiName => s(ctx.api_name()),
            CtxProp::ApiPath => s(ctx.api_path()),
            CtxProp::OpId => s(ctx.operation_id()),
            CtxProp::OpName => s(ctx.operation_name()),
            CtxProp::OpMethod => s(ctx.operation_method()),
            CtxProp::OpUrlTemplate => s(ctx.operation_url_template()),
            CtxProp::GatewayId => Value::Str(ctx.gateway_id()),
            CtxProp::Region => Value::Str(ctx.region()),
            CtxProp::ServiceName => Value::Str(ctx.service_name()),
            CtxProp::LastError(f) => match (ctx.last_error(ErrField::Source), f) {
                (None, None) => Value::Null,
                (None, Some(_)) => return nre("context.LastError"),
                (Some(_), Some(f)) => s(ctx.last_error(f).unwrap_or_default()),
                (Some(source), None) => {
                    let field = |f| s(ctx.last_error(f).unwrap_or_default());
                    Value::Dict(Arc::new(Dict {
                        entries: vec![
                            ("Source".into(), s(source)),
                            ("Reason".into(), field(ErrField::Reason)),
                            ("Message".into(), field(ErrField::Message)),
                        ],
                        ignore_case: false,
                    }))
                }
            },
            CtxProp::User => return nre("context.User"),
            CtxProp::RequestId => s(ctx.request_id()),
            CtxProp::Certificate => match ctx.client_certificate() {
                Some(c) => certificate::value(c),
                None => Value::Null,
            },
            CtxProp::DeploymentCertificates => Value::Dict(Arc::new(certificate::deployment_dict(
                ctx.deployment_certificates(),
            ))),
            CtxProp::Elapsed => {
                Value::TimeSpan(i64::try_from(ctx.elapsed().as_millis()).unwrap_or(i64::MAX))
            }
            CtxProp::Timestamp => {
                let e = i64::try_from(ctx.elapsed().as_millis()).unwrap_or(0);
                Value::DateTime(
                    ctx.now_unix_ms()
                        .saturating_sub(e)
                        .clamp(datetime::MIN_MS, datetime::MAX_MS),
                )
            }
        })
    }

    /// A message's header fields (`context.Response` must exist).
    pub(crate) fn headers(&self, m: MsgSrc) -> R<&'c Headers> {
        match m {
            MsgSrc::Request => Ok(self.ctx.request_headers()),
            MsgSrc::Response => match self.ctx.response() {
                Some(r) => Ok(&r.headers),
                None => nre("context.Response"),
            },
        }
    }

    /// A lookup (`GetValueOrDefault`, `ContainsKey`, `[k]`, `Count`, `Keys`) on a context dictionary.
    pub(crate) fn ctx_dict(
        &mut self,
        d: CtxDict,
        op: DictOp,
        args: &[Node],
        t: Option<CastTy>,
    ) -> R<Value> {
        // Inline: a lookup takes one or two arguments, and this runs per request.
        let mut vals: smallvec::SmallVec<[Value; 2]> = smallvec::SmallVec::new();
        for a in args {
            vals.push(self.eval(a)?);
        }
        let key = match vals.first() {
            Some(k) => Some(str_arg(k, "key")?),
            None => None,
        };
        let dflt = vals.get(1).cloned();
        let ctx = self.ctx;
        match d {
            CtxDict::Headers(m) => {
                let h = self.headers(m)?;
                match (op, key) {
                    (DictOp::Get, Some(k)) => {
                        let mut found = h.get_all(&k);
                        Ok(match (found.next(), found.next()) {
                            // One field (the usual case): its value, copied once.
                            (Some(one), None) => s(one),
                            (None, _) => dflt.unwrap_or(Value::Null),
                            _ => h.get_joined(&k).map(s).unwrap_or(Value::Null),
                        })
                    }
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(h.contains(&k))),
                    (DictOp::Index, Some(k)) => {
                        let all: Vec<Value> = h.get_all(&k).map(s).collect();
                        if all.is_empty() {
                            fail(format!(
                                "The given key '{k}' was not present in the dictionary."
                            ))
                        } else {
                            Ok(arr(all))
                        }
                    }
                    (DictOp::Count, _) => Ok(Value::Int(h.names().len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(h.names().into_iter().map(s).collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Query(src) => {
                let u = ctx.url(src);
                let all = |k: &str| -> Vec<&str> {
                    u.query
                        .iter()
                        .filter(|(n, _)| n == k)
                        .map(|(_, v)| v.as_str())
                        .collect()
                };
                match (op, key) {
                    (DictOp::Get, Some(k)) => {
                        let v = all(&k);
                        Ok(if v.is_empty() {
                            dflt.unwrap_or(Value::Null)
                        } else {
                            s(v.join(","))
                        })
                    }
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(!all(&k).is_empty())),
                    (DictOp::Index, Some(k)) => {
                        let v = all(&k);
                        if v.is_empty() {
                            fail(format!(
                                "The given key '{k}' was not present in the dictionary."
                            ))
                        } else {
                            Ok(arr(v.into_iter().map(s).collect()))
                        }
                    }
                    (DictOp::Count, _) => Ok(Value::Int(query_dict(u).entries.len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(query_dict(u)
                        .entries
                        .into_iter()
                        .map(|(k, _)| Value::Str(k))
                        .collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Matched => {
                let mp = ctx.matched_parameters();
                let find = |k: &str| {
                    mp.iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(k))
                        .map(|(_, v)| v.as_str())
                };
                match (op, key) {
                    (DictOp::Get, Some(k)) => Ok(find(&k).map(s).or(dflt).unwrap_or(Value::Null)),
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(find(&k).is_some())),
                    (DictOp::Index, Some(k)) => match find(&k) {
                        Some(v) => Ok(s(v)),
                        None => fail(format!(
                            "The given key '{k}' was not present in the dictionary."
                        )),
                    },
                    (DictOp::Count, _) => Ok(Value::Int(mp.len() as i64)),
                    (DictOp::Keys, _) => Ok(arr(mp.iter().map(|(k, _)| s(k.as_str())).collect())),
                    _ => fail("missing key"),
                }
            }
            CtxDict::Variables => {
                let vars = ctx.variables();
                match (op, key) {
                    (DictOp::Get, Some(k)) => match vars.get(&*k) {
                        Some(v) => match t {
                            Some(t) => cast(v.clone(), t, true),
                            None => Ok(v.clone()),
                        },
                        None => Ok(dflt.unwrap_or_else(|| default_of(t))),
                    },
                    (DictOp::Has, Some(k)) => Ok(Value::Bool(vars.contains_key(&*k))),
                    (DictOp::Index, Some(k)) => match vars.get(&*k) {
                        Some(v) => Ok(v.clone()),
                        None => fail(format!(
                            "The given key '{k}' was not present in the dictionary."
                        )),
                    },
                    (DictOp::Count, _) => Ok(Value::Int(vars.len() as i64)),
                    (DictOp::Keys, _) => {
                        let mut keys: Vec<&String> = vars.keys().collect();
                        keys.sort();
                        Ok(arr(keys.into_iter().map(|k| s(k.as_str())).collect()))
                    }
                    _ => fail("missing key"),
                }
            }
        }
    }

    fn body_bytes(&mut self, src: &BodySrc) -> R<Bytes> {
        match src {
            BodySrc::Ctx(MsgSrc::Request) => match self.ctx.request_body() {
                Some(b) => Ok(b.clone()),
                None => nre("context.Request.Body"),
            },
            BodySrc::Ctx(MsgSrc::Response) => match self.ctx.response().map(|r| &r.body) {
                Some(Some(b)) => Ok(b.clone()),
                Some(None) => nre("context.Response.Body"),
                None => nre("context.Response"),
            },
            BodySrc::Value(n) => match self.eval(n)? {
                Value::Response(r) => match &r.body {
                    Some(b) => Ok(b.clone()),
                    None => nre("the response's Body"),
                },
                Value::Null => nre("the response"),
                other => fail(format!("'{}' has no Body", other.type_name())),
            },
        }
    }

    /// `Body.As<T>()`: the body as a string, JSON or bytes.
    pub(crate) fn body_as(&mut self, src: &BodySrc, t: CastTy) -> R<Value> {
        let b = self.body_bytes(src)?;
        if t == CastTy::Bytes {
            return Ok(Value::Bytes(b));
        }
        let text = String::from_utf8_lossy(&b);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        match t {
            CastTy::Str => Ok(s(text)),
            CastTy::JObject => json::parse(text, "JObject")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
            CastTy::JArray => json::parse(text, "JArray")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
            CastTy::XDocument | CastTy::XElement => super::xml::parse_as(text, t),
            _ => json::parse(text, "JToken")
                .map(json::token)
                .map_err(|m| EvalError { message: m }),
        }
    }

    /// `Body.AsFormUrlEncodedContent()`.
    pub(crate) fn body_form(&mut self, src: &BodySrc) -> R<Value> {
        let b = self.body_bytes(src)?;
        let text = String::from_utf8_lossy(&b);
        let mut d = Dict::default();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let k = encoding::uri_unescape(k, true);
            let v = encoding::uri_unescape(v, true);
            push_multi(&mut d, &k, &v, false);
        }
        Ok(Value::Dict(Arc::new(d)))
    }
}

/// `StatusCode`, `StatusReason`, `Headers` of an `IResponse` value.
pub(crate) fn response_member(r: &Response, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    match m {
        M::StatusCode => Ok(Value::Int(r.status as i64)),
        M::StatusReason => Ok(s(r.reason.as_str())),
        M::Headers => Ok(Value::Dict(Arc::new(headers_dict(&r.headers)))),
        _ => no_member(v, m),
    }
}
