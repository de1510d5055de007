//! `ip-filter`: allow or forbid callers by address and address range, IPv4 and IPv6.

// `Failure` carries the prepared response by value; it is the pipeline's type.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::attrs;
use super::context::Context;
use super::error::{Failure, PolicyError};
use super::param::{json_error_response, Param, ParamValue};
use super::xml::Element;

/// Whether listed addresses are let in or kept out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpAction {
    /// Only listed addresses pass.
    Allow,
    /// Listed addresses are refused.
    Forbid,
}

impl ParamValue for IpAction {
    const EXPECTED: &'static str = "allow or forbid";
    fn parse_param(s: &str) -> Option<Self> {
        match s.trim() {
            a if a.eq_ignore_ascii_case("allow") => Some(IpAction::Allow),
            a if a.eq_ignore_ascii_case("forbid") => Some(IpAction::Forbid),
            _ => None,
        }
    }
}

impl ParamValue for IpAddr {
    const EXPECTED: &'static str = "an IPv4 or IPv6 address";
    fn parse_param(s: &str) -> Option<Self> {
        parse_ip(s)
    }
}

/// One `<address>` or `<address-range>`.
#[derive(Debug, Clone)]
pub enum IpRule {
    /// A single address (may be an expression).
    Address(Param<IpAddr>),
    /// An inclusive range of one family.
    Range {
        /// First address.
        from: IpAddr,
        /// Last address.
        to: IpAddr,
    },
}

/// `<ip-filter>`.
#[derive(Debug, Clone)]
pub struct IpFilter {
    /// Allow or forbid the listed addresses.
    pub action: Param<IpAction>,
    /// The listed addresses and ranges.
    pub rules: Vec<IpRule>,
}

/// Parses an address as a client IP may come: bare, or with a port, with IPv4
/// written as IPv6 (`::ffff:a.b.c.d`) folded to IPv4 so both spellings match.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let ip = s
        .parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            // `[::1]` without a port.
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(canonical(ip))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// The address as a number in its family, for range comparisons.
fn ordinal(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(v4) => (false, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (true, u128::from(v6)),
    }
}

impl IpFilter {
    /// Compiles `<ip-filter>`.
    pub fn from_element(el: &Element) -> Result<Self, PolicyError> {
        attrs::only(el, &["action"])?;
        attrs::only_children(el, &["address", "address-range"])?;
        let action = Param::required(el, "action")?;
        let mut rules = Vec::new();
        for c in el.elements() {
            if c.name == "address" {
                attrs::only(c, &[])?;
                rules.push(IpRule::Address(Param::text(c)?));
            } else {
                attrs::only(c, &["from", "to"])?;
                let addr = |name: &str| -> Result<IpAddr, PolicyError> {
                    let v = attrs::required(c, name)?;
                    parse_ip(v).ok_or_else(|| {
                        PolicyError::at(c, format!("'{name}' is not an IP address: '{v}'"))
                    })
                };
                let (from, to) = (addr("from")?, addr("to")?);
                let ((f6, f), (t6, t)) = (ordinal(from), ordinal(to));
                if f6 != t6 {
                    return Err(PolicyError::at(
                        c,
                        "'from' and 'to' must both be IPv4 or both IPv6",
                    ));
                }
                if f > t {
                    return Err(PolicyError::at(c, "'from' is after 'to'"));
                }
                rules.push(IpRule::Range { from, to });
            }
        }
        if rules.is_empty() {
            return Err(PolicyError::at(
                el,
                "at least one <address> or <address-range> is required",
            ));
        }
        Ok(IpFilter { action, rules })
    }

    /// Whether `ip` is listed (expressions evaluated against `ctx`).
    pub fn listed(&self, ip: IpAddr, ctx: &Context) -> Result<bool, Failure> {
        let (six, n) = ordinal(canonical(ip));
        for r in &self.rules {
            let hit = match r {
                IpRule::Address(a) => canonical(a.resolve(ctx)?) == canonical(ip),
                IpRule::Range { from, to } => {
                    let ((f6, f), (_, t)) = (ordinal(*from), ordinal(*to));
                    f6 == six && f <= n && n <= t
                }
            };
            if hit {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The decision for the caller at `client_ip` (`context.Request.IpAddress`).
    pub fn check(&self, client_ip: &str, ctx: &Context) -> Result<(), Failure> {
        let Some(ip) = parse_ip(client_ip) else {
            return Err(denied(
                "FailedToParseCallerIP",
                "Failed to establish IP address for the caller. Access denied.".into(),
            ));
        };
        let listed = self.listed(ip, ctx)?;
        match (self.action.resolve(ctx)?, listed) {
            (IpAction::Allow, true) | (IpAction::Forbid, false) => Ok(()),
            (IpAction::Allow, false) => Err(denied(
                "CallerIpNotAllowed",
                format!("Caller IP address {ip} is not allowed. Access denied."),
            )),
            (IpAction::Forbid, true) => Err(denied(
                "CallerIpBlocked",
                "Caller IP address is blocked. Access denied.".into(),
            )),
        }
    }
}

fn denied(reason: &str, message: String) -> Failure {
    Failure {
        reason: reason.into(),
        message,
        response: Some(Box::new(json_error_response(403, "Forbidden", "Forbidden"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::xml;

    fn filter(src: &str) -> IpFilter {
        IpFilter::from_element(&xml::parse(src).expect("xml")).expect("compiles")
    }

    #[test]
    fn allow_list_v4_and_v6() {
        let f = filter(
            r#"<ip-filter action="allow">
                <address>13.66.201.169</address>
                <address-range from="13.66.140.128" to="13.66.140.143"/>
                <address>2001:db8::1</address>
                <address-range from="2001:db8:1::" to="2001:db8:1::ffff"/>
            </ip-filter>"#,
        );
        let ctx = Context::default();
        for ok in [
            "13.66.201.169",
            "13.66.140.128",
            "13.66.140.143",
            "13.66.140.130:5555",
            "::ffff:13.66.201.169",
            "2001:db8::1",
            "2001:DB8:0:0:0:0:0:1",
            "[2001:db8::1]:443",
            "[2001:db8::1]",
            "2001:db8:1::abcd",
            "2001:db8:1::ffff",
        ] {
            assert_eq!(f.check(ok, &ctx), Ok(()), "{ok}");
        }
        for no in [
            "13.66.140.144",
            "13.66.140.127",
            "2001:db8:1::1:0",
            "::1",
            "10.0.0.1",
        ] {
            let e = f.check(no, &ctx).expect_err(no);
            assert_eq!(e.reason, "CallerIpNotAllowed");
            assert!(e.message.contains("is not allowed. Access denied."));
            let r = e.response.expect("response");
            assert_eq!(r.status, 403);
            assert_eq!(
                r.body.as_deref(),
                Some(&br#"{ "statusCode": 403, "message": "Forbidden" }"#[..])
            );
        }
        let e = f.check("not-an-ip", &ctx).expect_err("garbage");
        assert_eq!(e.reason, "FailedToParseCallerIP");
        assert_eq!(
            f.check("", &ctx).expect_err("empty").reason,
            "FailedToParseCallerIP"
        );
    }

    #[test]
    fn forbid_list() {
        let f = filter(
            r#"<ip-filter action="forbid"><address-range from="::" to="::ffff"/><address>10.1.1.1</address></ip-filter>"#,
        );
        let ctx = Context::default();
        assert_eq!(
            f.check("::1", &ctx).expect_err("blocked").reason,
            "CallerIpBlocked"
        );
        assert_eq!(
            f.check("10.1.1.1", &ctx).expect_err("blocked").reason,
            "CallerIpBlocked"
        );
        assert_eq!(f.check("10.1.1.2", &ctx), Ok(()));
        assert_eq!(f.check("::1:0", &ctx), Ok(()));
        // IPv4 is never inside an IPv6 range by number alone.
        assert_eq!(f.check("0.0.0.1", &ctx), Ok(()));
    }

    #[test]
    fn bad_configs() {
        for bad in [
            r#"<ip-filter action="allow"/>"#,
            r#"<ip-filter action="maybe"><address>1.2.3.4</address></ip-filter>"#,
            r#"<ip-filter><address>1.2.3.4</address></ip-filter>"#,
            r#"<ip-filter action="allow"><address>1.2.3</address></ip-filter>"#,
            r#"<ip-filter action="allow"><address-range from="1.2.3.4"/></ip-filter>"#,
            r#"<ip-filter action="allow"><address-range from="1.2.3.4" to="::1"/></ip-filter>"#,
            r#"<ip-filter action="allow"><address-range from="1.2.3.5" to="1.2.3.4"/></ip-filter>"#,
            r#"<ip-filter action="allow"><cidr>1.2.3.0/24</cidr></ip-filter>"#,
        ] {
            assert!(
                IpFilter::from_element(&xml::parse(bad).expect("xml")).is_err(),
                "{bad}"
            );
        }
    }
}
