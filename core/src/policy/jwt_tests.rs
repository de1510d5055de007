use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::policy::xml;

/// RSA-2048 test key (PKCS#8), generated once with `openssl genpkey` for these tests only.
const RSA_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEugIBADANBgkqhkiG9w0BAQEFAASCBKQwggSgAgEAAoIBAQCSe7qgU9BWK7/h
1qmJqemWRJ4lOOg3VMKKqxVbJqKxsrbctPoaH9JIcmO4k+O/PfkmbQX5pGCfrM2i
xLmbrINa+vtDJIh00j75Ooq4ZAs8QqXzdzafrK5w2h+BLc6KdVbdlDTSPDucpkcA
y2Gzk7rV7GwMFVzppW0IXmt3HliNjtCKSZDKJSF5H1pyRma18Bp1mVlJBWV0N2Rz
EhoFlx5PSVwW/JHs7UUZ6dOT5w32oKZnRJgqNrvMA7w2kuHLG2Oo3+57z0jJg6o7
xGxdHdiXxMWrrNJF++rKKN+UhDgRs0CmuQbTX8JxG4uG8RgG4MVssqcjyYjfSD/v
tEfgIkHVAgMBAAECgf9E2mb7HhYi+ZYDYDu58l8lBjD4T7GTWkMxTeopRopbUlWT
TQymwW0sR2fd68zcqL8NKr7Sb904qLxKbBWlMa517bi29lCvaBPFHdOdLmyRdHfy
37eO5qUoa3JEyi1fm3vyw3QAcYg4+I5Y0666LGsmv+sQIPDNEvxLJCoMv4CQ4dEU
7povrrvdEZnwHlApOU6IzLNYH30PFW7v8z5X2JdekE+cyA2MhixaHEDvvWjoJKPd
owti+ZozEWkhPbrtGnG1lzaZAwJj2Rao+l6pDvMEGL99NKMaJsINlv0vRAaXmSZH
NWW823lNg8AeAz2Grh5NNVATJ04QQhiC3CcYlzECgYEAzMW5dmOhJ5oTfRjzdevJ
+cVkbzPgNF287gYcKqoLnv+qUpmIf6motG/tiswqjy8X7lQ7iGDRu90VZhP28SIB
duaR5b2AdLzmO6R+tgefUfNtGGQ8SNmDI+yMWlqohaaBZGqV1ugCUozhR7SMf7r+
J2dnnpGLjwaiBDKBYQP6IFECgYEAtyD886H0t/2kF4eUV/ms1nPjCH1m2hvFblXt
hL0MYXc29fEAGNubRvVkG+WDmMVZD70GdyPKIW7Qd08al39RPq4uecUzgKzhb0Ks
NB/JqzIOZ7gXO28JImwd8vPntE9T/bcw/7VXPM1NIVxdtSuLJvFkAn7e2osZWv15
H03HzEUCgYBgkRYHKLDE9joeknetsoZLTbUxY+tlhpckQKljzVExqCvwTAs8+Qtg
HDCPdfzUDUdh00NH6zC9QWNoAh5AVOMP6WgASb+cTcDde5Nt0GZnxT47dHmheUII
3PLLYVl7vavjaQhEkqEVwO40XIatbceRWYhaFRUVW/FnvVGaKL/6IQKBgEr+6HiB
7+1Vo1i7fmXU6xJcHTMB4BgcXWtFJ2M/5I0ZvFlWHBsR/HI/1oKSKKVs1H9cgwRR
lNrCPf9OVu6KBmSsAn594wykQCJHZKxoBDfm5P1W57TAUTZWnqE7f71Y62WxGxDt
W8+bqCWsZPfn4DHPk4xuFqfbZUPdIDhQqy0dAoGAND2nXNDTU4pAFIq7ICG91m01
o2btzAdsckojYjRRxzNoC1kW3fwhuMTEBuTfhjs8P5kVAqvl6Y7RXP4vDFd/7Kd+
R2fxY8OiD9juIg1+4S+uQ6sMJp/bkd2PPX1FxwtLKXRiNTgT+rmCHJ5KiPybchxY
ftZUjB/tKLbtJOkQwjM=
-----END PRIVATE KEY-----";
/// Its public modulus and exponent, base64url.
const RSA_N: &str = "knu6oFPQViu_4dapianplkSeJTjoN1TCiqsVWyaisbK23LT6Gh_SSHJjuJPjvz35Jm0F-aRgn6zNosS5m6yDWvr7QySIdNI--TqKuGQLPEKl83c2n6yucNofgS3OinVW3ZQ00jw7nKZHAMths5O61exsDBVc6aVtCF5rdx5YjY7QikmQyiUheR9ackZmtfAadZlZSQVldDdkcxIaBZceT0lcFvyR7O1FGenTk-cN9qCmZ0SYKja7zAO8NpLhyxtjqN_ue89IyYOqO8RsXR3Yl8TFq6zSRfvqyijflIQ4EbNAprkG01_CcRuLhvEYBuDFbLKnI8mI30g_77RH4CJB1Q";
const RSA_E: &str = "AQAB";
/// The modulus of another RSA key: tokens signed with `RSA_PEM` must fail with it.
const OTHER_RSA_N: &str = "x8pSE6mUYbP5k3i8aSvy_xQmxU_Cld0HcH7sRZv8nTGv6L8gXHf66M2NPRwmpbhvnnRZJ6sLOhEPw8ejZc4yxwSAW8Yww4rc6GftJI0jh3uZu3pCNzJbEfNcNBxcqeuNM6_1SRPipYcgznRzJPjE0i9zG4g3ePLpdI8H8AYuBJPyrkzf9-LcFm42wSAPIr87O__V9TRXuSliXsR298WEZfs4NUxRzhHV--AJxTFS_rUWCCfR8lbBrRvXQQxLgVynjL_OjZNrCilrnqUfTVE7lFpbYaYAsW-1Xu-wn-wjOuc5SM_4d0lQbUbTO6bg1WANA1IXSXqnuWQdJtdXI1lpKw";
/// P-256 test key (PKCS#8), generated once with `openssl genpkey` for these tests only.
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgy2ivFf09hCW2Y2RL
E4s8RWQ0tmki1JcmtCLm7/aPJF6hRANCAASm4l5Srvs22yShVGFiIqVi3RSaMOO/
lbUagDfK94+zKYp5oH/OGaa8tF00kxUQLKhAiStRleQkCUAuAHQ/zsYO
-----END PRIVATE KEY-----";
/// Its public point, base64url.
const EC_X: &str = "puJeUq77NtskoVRhYiKlYt0UmjDjv5W1GoA3yvePsyk";
const EC_Y: &str = "inmgf84Zpry0XTSTFRAsqECJK1GV5CQJQC4AdD_Oxg4";

const NOW: i64 = 1_700_000_000;
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

fn secret_b64() -> String {
    STANDARD.encode(SECRET)
}

fn policy(src: &str) -> ValidateJwt {
    ValidateJwt::from_element(&xml::parse(src).expect("xml")).expect("compiles")
}

fn compile_err(src: &str) -> PolicyError {
    ValidateJwt::from_element(&xml::parse(src).expect("xml")).expect_err(src)
}

fn hs256(claims: &Json) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("encode")
}

fn with_kid(alg: Algorithm, kid: &str) -> Header {
    let mut h = Header::new(alg);
    h.kid = Some(kid.into());
    h
}

fn rs(alg: Algorithm, claims: &Json) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("rsa pem");
    encode(&Header::new(alg), claims, &key).expect("encode")
}

fn es256(kid: &str, claims: &Json) -> String {
    let key = EncodingKey::from_ec_pem(EC_PEM.as_bytes()).expect("ec pem");
    encode(&with_kid(Algorithm::ES256, kid), claims, &key).expect("encode")
}

fn bearer(token: &str) -> Context {
    let mut ctx = Context::default();
    ctx.request
        .headers
        .append("Authorization", format!("Bearer {token}"));
    ctx
}

fn hs_policy(extra_attrs: &str, extra_children: &str) -> ValidateJwt {
    policy(&format!(
        r#"<validate-jwt header-name="Authorization" {extra_attrs}>
            <issuer-signing-keys><key>{}</key></issuer-signing-keys>
            {extra_children}
        </validate-jwt>"#,
        secret_b64()
    ))
}

fn reason(r: Result<ValidatedJwt, Failure>) -> String {
    match r {
        Ok(v) => panic!("validated: {v:?}"),
        Err(f) => f.reason,
    }
}

#[test]
fn valid_hs256_token_gives_its_claims() {
    let p = hs_policy(r#"require-scheme="Bearer""#, "");
    let token = hs256(&json!({"sub": "alice", "exp": NOW + 60}));
    let v = p
        .validate(&bearer(&token), &KeySets::new(), NOW)
        .expect("valid");
    assert_eq!(v.claims.get("sub"), Some(&json!("alice")));
    assert_eq!(v.header.get("alg"), Some(&json!("HS256")));
    assert_eq!(v.raw, token);
    // The scheme is case-insensitive.
    let mut ctx = Context::default();
    ctx.request
        .headers
        .append("authorization", format!("bearer {token}"));
    assert!(p.validate(&ctx, &KeySets::new(), NOW).is_ok());
}

#[test]
fn missing_token_and_wrong_scheme() {
    let p = hs_policy(r#"require-scheme="Bearer""#, "");
    let f = p
        .validate(&Context::default(), &KeySets::new(), NOW)
        .expect_err("absent");
    assert_eq!(f.reason, "TokenNotPresent");
    assert_eq!(f.message, "JWT not present.");
    let r = f.response.expect("response");
    assert_eq!((r.status, r.reason.as_str()), (401, "Unauthorized"));
    assert_eq!(
        r.body.as_deref(),
        Some(&br#"{ "statusCode": 401, "message": "JWT not present." }"#[..])
    );
    let token = hs256(&json!({"exp": NOW + 60}));
    let mut ctx = Context::default();
    ctx.request
        .headers
        .append("Authorization", format!("Basic {token}"));
    assert_eq!(
        reason(p.validate(&ctx, &KeySets::new(), NOW)),
        "TokenNotPresent"
    );
    // Without require-scheme any scheme is stripped; a bare token works too.
    let lax = hs_policy("", "");
    assert!(lax.validate(&ctx, &KeySets::new(), NOW).is_ok());
    let mut bare = Context::default();
    bare.request.headers.append("Authorization", token.clone());
    assert!(lax.validate(&bare, &KeySets::new(), NOW).is_ok());
}

#[test]
fn wrong_key_fails_with_configured_code_and_message() {
    let p = hs_policy(
        r#"failed-validation-httpcode="403" failed-validation-error-message="Nope.""#,
        "",
    );
    let other = encode(
        &Header::new(Algorithm::HS256),
        &json!({"exp": NOW + 60}),
        &EncodingKey::from_secret(b"another secret entirely, 32 bytes"),
    )
    .expect("encode");
    let f = p
        .validate(&bearer(&other), &KeySets::new(), NOW)
        .expect_err("bad signature");
    assert_eq!(f.reason, "TokenSignatureInvalid");
    let r = f.response.expect("response");
    assert_eq!((r.status, r.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        r.body.as_deref(),
        Some(&br#"{ "statusCode": 403, "message": "Nope." }"#[..])
    );
    // Default body for invalid tokens.
    let d = hs_policy("", "");
    let f = d
        .validate(&bearer(&other), &KeySets::new(), NOW)
        .expect_err("bad signature");
    assert_eq!(
        f.response.and_then(|r| r.body),
        Some(br#"{ "statusCode": 401, "message": "Invalid JWT." }"#[..].into())
    );
    // A tampered payload fails too.
    let good = hs256(&json!({"sub": "a", "exp": NOW + 60}));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"admin","exp":9999999999}"#);
    assert_eq!(
        reason(d.validate(&bearer(&parts.join(".")), &KeySets::new(), NOW)),
        "TokenSignatureInvalid"
    );
}

#[test]
fn expiry_with_and_without_clock_skew() {
    let strict = hs_policy("", "");
    let skewed = hs_policy(r#"clock-skew="30""#, "");
    let timespan = hs_policy(r#"clock-skew="00:00:30""#, "");
    let expired_10s_ago = hs256(&json!({"exp": NOW - 10}));
    let expired_60s_ago = hs256(&json!({"exp": NOW - 60}));
    let ks = KeySets::new();
    assert_eq!(
        reason(strict.validate(&bearer(&expired_10s_ago), &ks, NOW)),
        "TokenExpired"
    );
    assert!(skewed.validate(&bearer(&expired_10s_ago), &ks, NOW).is_ok());
    assert!(timespan
        .validate(&bearer(&expired_10s_ago), &ks, NOW)
        .is_ok());
    assert_eq!(
        reason(skewed.validate(&bearer(&expired_60s_ago), &ks, NOW)),
        "TokenExpired"
    );
    // Expiring exactly now is still valid.
    assert!(strict
        .validate(&bearer(&hs256(&json!({"exp": NOW}))), &ks, NOW)
        .is_ok());
    // Not yet valid, unless within the skew.
    let early = hs256(&json!({"exp": NOW + 600, "nbf": NOW + 20}));
    assert_eq!(
        reason(strict.validate(&bearer(&early), &ks, NOW)),
        "JwtInvalid"
    );
    assert!(skewed.validate(&bearer(&early), &ks, NOW).is_ok());
    // exp is required by default.
    let no_exp = hs256(&json!({"sub": "x"}));
    let f = strict
        .validate(&bearer(&no_exp), &ks, NOW)
        .expect_err("no exp");
    assert_eq!(f.reason, "JwtInvalid");
    assert!(f.message.contains("Expiration Time"), "{}", f.message);
    let lenient = hs_policy(r#"require-expiration-time="false""#, "");
    assert!(lenient.validate(&bearer(&no_exp), &ks, NOW).is_ok());
    // A non-numeric exp is invalid.
    let text_exp = hs256(&json!({"exp": "tomorrow"}));
    assert_eq!(
        reason(lenient.validate(&bearer(&text_exp), &ks, NOW)),
        "JwtInvalid"
    );
}

#[test]
fn audience_and_issuer() {
    let p = hs_policy(
        "",
        r#"<audiences><audience>api://one</audience><audience>api://two</audience></audiences>
           <issuers><issuer>https://idp.example/</issuer></issuers>"#,
    );
    let ks = KeySets::new();
    let ok = hs256(&json!({"exp": NOW + 60, "aud": "api://two", "iss": "https://idp.example/"}));
    assert!(p.validate(&bearer(&ok), &ks, NOW).is_ok());
    let arr =
        hs256(&json!({"exp": NOW + 60, "aud": ["x", "api://one"], "iss": "https://idp.example/"}));
    assert!(p.validate(&bearer(&arr), &ks, NOW).is_ok());
    let wrong_aud =
        hs256(&json!({"exp": NOW + 60, "aud": "api://three", "iss": "https://idp.example/"}));
    assert_eq!(
        reason(p.validate(&bearer(&wrong_aud), &ks, NOW)),
        "TokenAudienceNotAllowed"
    );
    let no_aud = hs256(&json!({"exp": NOW + 60, "iss": "https://idp.example/"}));
    assert_eq!(
        reason(p.validate(&bearer(&no_aud), &ks, NOW)),
        "TokenAudienceNotAllowed"
    );
    let wrong_iss = hs256(&json!({"exp": NOW + 60, "aud": "api://one", "iss": "https://evil/"}));
    assert_eq!(
        reason(p.validate(&bearer(&wrong_iss), &ks, NOW)),
        "TokenIssuerNotAllowed"
    );
}

#[test]
fn required_claims() {
    let p = hs_policy(
        "",
        r#"<required-claims>
            <claim name="group" match="any"><value>finance</value><value>logistics</value></claim>
            <claim name="scp" match="all" separator=" "><value>read</value><value>write</value></claim>
            <claim name="tid"/>
        </required-claims>"#,
    );
    let ks = KeySets::new();
    let ok = hs256(
        &json!({"exp": NOW + 60, "group": ["hr", "finance"], "scp": "read write admin", "tid": 7}),
    );
    assert!(p.validate(&bearer(&ok), &ks, NOW).is_ok());
    let missing = hs256(&json!({"exp": NOW + 60, "group": "finance"}));
    let f = p
        .validate(&bearer(&missing), &ks, NOW)
        .expect_err("missing");
    assert_eq!(f.reason, "TokenClaimNotFound");
    assert_eq!(
        f.message,
        "JWT token is missing the following claims: scp, tid. Access denied."
    );
    let wrong_group =
        hs256(&json!({"exp": NOW + 60, "group": "hr", "scp": "read write", "tid": 1}));
    let f = p
        .validate(&bearer(&wrong_group), &ks, NOW)
        .expect_err("group");
    assert_eq!(f.reason, "TokenClaimValueNotAllowed");
    assert_eq!(
        f.message,
        "Claim group value of hr is not allowed. Access denied."
    );
    let partial_scope =
        hs256(&json!({"exp": NOW + 60, "group": "finance", "scp": "read", "tid": 1}));
    assert_eq!(
        reason(p.validate(&bearer(&partial_scope), &ks, NOW)),
        "TokenClaimValueNotAllowed"
    );
}

#[test]
fn unsigned_tokens() {
    let none_token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"x","exp":{}}}"#, NOW + 60))
    );
    let ks = KeySets::new();
    let p = hs_policy("", "");
    assert_eq!(
        reason(p.validate(&bearer(&none_token), &ks, NOW)),
        "TokenSignatureInvalid"
    );
    let lax = hs_policy(r#"require-signed-tokens="false""#, "");
    assert!(lax.validate(&bearer(&none_token), &ks, NOW).is_ok());
    // "None" spelled differently is still unsigned.
    let none_caps = none_token.replacen(
        &URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        &URL_SAFE_NO_PAD.encode(br#"{"alg":"None"}"#),
        1,
    );
    assert_eq!(
        reason(p.validate(&bearer(&none_caps), &ks, NOW)),
        "TokenSignatureInvalid"
    );
    for garbage in ["abc", "a.b.c", "a.b.c.d.e", "....", "eyJ.eyJ.", ""] {
        let f = p.validate(&bearer(garbage), &ks, NOW);
        assert!(f.is_err(), "{garbage}");
    }
}

#[test]
fn rsa_keys_inline() {
    let p = policy(&format!(
        r#"<validate-jwt header-name="Authorization">
            <issuer-signing-keys><key n="{RSA_N}" e="{RSA_E}"/></issuer-signing-keys>
        </validate-jwt>"#
    ));
    let ks = KeySets::new();
    let claims = json!({"exp": NOW + 60});
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
    ] {
        assert!(
            p.validate(&bearer(&rs(alg, &claims)), &ks, NOW).is_ok(),
            "{alg:?}"
        );
    }
    // The wrong RSA key.
    let other = policy(&format!(
        r#"<validate-jwt header-name="Authorization">
            <issuer-signing-keys><key n="{OTHER_RSA_N}" e="{RSA_E}"/></issuer-signing-keys>
        </validate-jwt>"#
    ));
    assert_eq!(
        reason(other.validate(&bearer(&rs(Algorithm::RS256, &claims)), &ks, NOW)),
        "TokenSignatureInvalid"
    );
    // An HS256 token against RSA keys only: no key of that family.
    assert_eq!(
        reason(p.validate(&bearer(&hs256(&claims)), &ks, NOW)),
        "TokenSignatureKeyNotFound"
    );
    // Algorithm confusion: HMAC keyed with the public modulus is refused.
    let n_bytes = URL_SAFE_NO_PAD.decode(RSA_N).expect("n");
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&n_bytes),
    )
    .expect("encode");
    assert_eq!(
        reason(p.validate(&bearer(&forged), &ks, NOW)),
        "TokenSignatureKeyNotFound"
    );
}

#[test]
fn openid_key_sets_by_kid() {
    let url = "https://idp.example/.well-known/openid-configuration";
    let p = policy(&format!(
        r#"<validate-jwt header-name="Authorization">
            <openid-config url="{url}"/>
            <audiences><audience>api</audience></audiences>
        </validate-jwt>"#
    ));
    assert_eq!(p.openid_urls(), &[url.to_string()]);
    let mut ks = KeySets::new();
    let claims = json!({"exp": NOW + 60, "aud": "api", "iss": "https://idp.example/"});
    let token = es256("ec-1", &claims);
    // Nothing fetched yet.
    assert_eq!(
        reason(p.validate(&bearer(&token), &ks, NOW)),
        "TokenSignatureKeyNotFound"
    );
    let issuer = Some("https://idp.example/".to_owned());
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec-0", "x": EC_X, "y": "AAAA"},
        {"kty": "RSA", "kid": "rsa-1", "n": RSA_N, "e": RSA_E, "use": "sig"},
        {"kty": "RSA", "kid": "enc-1", "n": RSA_N, "e": RSA_E, "use": "enc"},
        {"kty": "EC", "crv": "P-521", "kid": "big", "x": "AA", "y": "AA"},
        {"kty": "weird"}
    ]});
    let n = ks
        .install(url, issuer.clone(), jwks.to_string().as_bytes())
        .expect("jwks");
    assert_eq!(n, 1, "short point, enc key, P-521 and unknown kty skipped");
    let f = p
        .validate(&bearer(&token), &ks, NOW)
        .expect_err("kid not there");
    assert_eq!(f.reason, "TokenSignatureKeyNotFound");
    assert!(f.message.contains("ec-1"), "{}", f.message);
    // RS256 with kid rsa-1 works.
    let rsa_token = {
        let key = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("pem");
        encode(&with_kid(Algorithm::RS256, "rsa-1"), &claims, &key).expect("encode")
    };
    assert!(p.validate(&bearer(&rsa_token), &ks, NOW).is_ok());
    // Rotation: the new set has ec-1.
    let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": EC_X, "y": EC_Y, "alg": "ES256"}]});
    assert_eq!(
        ks.install(url, issuer.clone(), jwks.to_string().as_bytes()),
        Ok(1)
    );
    let v = p.validate(&bearer(&token), &ks, NOW).expect("valid");
    assert_eq!(v.claims.get("aud"), Some(&json!("api")));
    // The issuer from the configuration is enforced.
    let other_iss = es256(
        "ec-1",
        &json!({"exp": NOW + 60, "aud": "api", "iss": "https://evil/"}),
    );
    assert_eq!(
        reason(p.validate(&bearer(&other_iss), &ks, NOW)),
        "TokenIssuerNotAllowed"
    );
    // The old RSA key is gone.
    assert_eq!(
        reason(p.validate(&bearer(&rsa_token), &ks, NOW)),
        "TokenSignatureKeyNotFound"
    );
    // Broken documents are errors, and leave the set alone.
    assert!(ks.install(url, None, b"not json").is_err());
    assert!(ks.install(url, None, br#"{"nokeys":1}"#).is_err());
    assert!(p.validate(&bearer(&token), &ks, NOW).is_ok());
}

/// APIM checks the issuer an OpenID configuration names even when the policy
/// lists no issuers: a token signed with the provider's keys (which Entra ID
/// shares across tenants) but issued for another tenant is refused.
#[test]
fn openid_config_issuer_is_enforced_without_issuers() {
    let url = "https://idp.example/.well-known/openid-configuration";
    let mut ks = KeySets::new();
    let jwks =
        json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "ec-1", "x": EC_X, "y": EC_Y}]});
    ks.install(
        url,
        Some("https://idp.example/".into()),
        jwks.to_string().as_bytes(),
    )
    .expect("install");
    let only_config = policy(&format!(
        r#"<validate-jwt header-name="Authorization"><openid-config url="{url}"/></validate-jwt>"#
    ));
    let with_aud = policy(&format!(
        r#"<validate-jwt header-name="Authorization"><openid-config url="{url}"/>
            <audiences><audience>api</audience></audiences></validate-jwt>"#
    ));
    let lax_exp = policy(&format!(
        r#"<validate-jwt header-name="Authorization" require-expiration-time="false"><openid-config url="{url}"/></validate-jwt>"#
    ));
    let listed = policy(&format!(
        r#"<validate-jwt header-name="Authorization"><openid-config url="{url}"/>
            <issuers><issuer>https://partner.example/</issuer></issuers></validate-jwt>"#
    ));
    let token = |claims: serde_json::Value| bearer(&es256("ec-1", &claims));
    let ours = json!({"exp": NOW + 60, "aud": "api", "iss": "https://idp.example/"});
    let theirs = json!({"exp": NOW + 60, "aud": "api", "iss": "https://other-tenant/"});
    let none = json!({"exp": NOW + 60, "aud": "api"});
    let theirs_no_exp = json!({"aud": "api", "iss": "https://other-tenant/"});
    let partner = json!({"exp": NOW + 60, "iss": "https://partner.example/"});
    assert!(only_config.validate(&token(ours.clone()), &ks, NOW).is_ok());
    assert!(with_aud.validate(&token(ours.clone()), &ks, NOW).is_ok());
    for (p, claims) in [
        (&only_config, &theirs),
        (&only_config, &none),
        (&with_aud, &theirs),
        (&lax_exp, &theirs_no_exp),
        (&listed, &theirs),
    ] {
        assert_eq!(
            reason(p.validate(&token(claims.clone()), &ks, NOW)),
            "TokenIssuerNotAllowed",
            "{claims}"
        );
    }
    // Listed issuers count alongside the configuration's.
    assert!(listed.validate(&token(partner), &ks, NOW).is_ok());
    assert!(listed.validate(&token(ours), &ks, NOW).is_ok());
    // A configuration without an issuer accepts only the listed ones.
    ks.install(url, None, jwks.to_string().as_bytes())
        .expect("install");
    let anyone = json!({"exp": NOW + 60, "iss": "https://idp.example/"});
    assert_eq!(
        reason(only_config.validate(&token(anyone), &ks, NOW)),
        "TokenIssuerNotAllowed"
    );
}

#[test]
fn a_token_with_an_unknown_key_asks_for_a_key_set_refresh() {
    // When a refresh may happen is tested in core/tests/key_set_refresh.rs
    // (it needs a clock reading).
    let mut ks = KeySets::new();
    let a = "https://a/c".to_owned();
    ks.install(&a, None, br#"{"keys":[]}"#).expect("install");
    let p = policy(&format!(
        r#"<validate-jwt header-name="Authorization"><openid-config url="{a}"/></validate-jwt>"#
    ));
    let unknown = p
        .validate(&bearer(&es256("new", &json!({"exp": NOW + 60}))), &ks, NOW)
        .expect_err("no keys");
    assert!(p.wants_key_refresh(&unknown));
    let inline = policy(&format!(
        r#"<validate-jwt header-name="Authorization"><issuer-signing-keys><key>{}</key></issuer-signing-keys></validate-jwt>"#,
        secret_b64()
    ));
    let f = inline
        .validate(&bearer(&es256("x", &json!({"exp": NOW + 60}))), &ks, NOW)
        .expect_err("no such key");
    assert!(
        !inline.wants_key_refresh(&f),
        "no OpenID configuration to refresh"
    );
}

#[test]
fn other_token_sources() {
    let q = policy(&format!(
        r#"<validate-jwt query-parameter-name="access_token"><issuer-signing-keys><key>{}</key></issuer-signing-keys></validate-jwt>"#,
        secret_b64()
    ));
    let token = hs256(&json!({"exp": NOW + 60}));
    let mut ctx = Context::default();
    ctx.request
        .url
        .query
        .push(("access_token".into(), token.clone()));
    assert!(q.validate(&ctx, &KeySets::new(), NOW).is_ok());
    assert_eq!(
        reason(q.validate(&Context::default(), &KeySets::new(), NOW)),
        "TokenNotPresent"
    );
    let v = policy(&format!(
        r#"<validate-jwt token-value="{token}"><issuer-signing-keys><key>{}</key></issuer-signing-keys></validate-jwt>"#,
        secret_b64()
    ));
    assert!(v
        .validate(&Context::default(), &KeySets::new(), NOW)
        .is_ok());
    // A custom header keeps its value as is.
    let h = policy(&format!(
        r#"<validate-jwt header-name="X-Token" require-scheme="Bearer"><issuer-signing-keys><key id="k1">{}</key></issuer-signing-keys></validate-jwt>"#,
        secret_b64()
    ));
    let mut ctx = Context::default();
    ctx.request.headers.append("x-token", token);
    assert!(h.validate(&ctx, &KeySets::new(), NOW).is_ok());
}

#[test]
fn compile_errors() {
    let k = secret_b64();
    for (src, needle) in [
        (
            format!(r#"<validate-jwt><issuer-signing-keys><key>{k}</key></issuer-signing-keys></validate-jwt>"#),
            "exactly one",
        ),
        (
            r#"<validate-jwt header-name="a" token-value="b"/>"#.to_string(),
            "exactly one",
        ),
        (
            r#"<validate-jwt header-name="a"><decryption-keys><key>AAAA</key></decryption-keys></validate-jwt>"#.to_string(),
            "not supported",
        ),
        (
            r#"<validate-jwt header-name="a"><issuer-signing-keys><key certificate-id="c"/></issuer-signing-keys></validate-jwt>"#.to_string(),
            "certificate-id",
        ),
        (
            r#"<validate-jwt header-name="a"><issuer-signing-keys><key>not base64!!</key></issuer-signing-keys></validate-jwt>"#.to_string(),
            "base64",
        ),
        (
            r#"<validate-jwt header-name="a"><issuer-signing-keys><key n="AQAB"/></issuer-signing-keys></validate-jwt>"#.to_string(),
            "together",
        ),
        (
            r#"<validate-jwt header-name="a"><issuer-signing-keys><key n="@@@" e="AQAB"/></issuer-signing-keys></validate-jwt>"#.to_string(),
            "base64url",
        ),
        (
            r#"<validate-jwt header-name="a"><issuer-signing-keys><key n="AQAB" e="AQAB"/></issuer-signing-keys></validate-jwt>"#.to_string(),
            "1024 bits",
        ),
        (
            r#"<validate-jwt header-name="a"><required-claims><claim name="x" match="some"/></required-claims></validate-jwt>"#.to_string(),
            "all or any",
        ),
        (
            r#"<validate-jwt header-name="a" clock-skew="soon"/>"#.to_string(),
            "timespan",
        ),
        (
            r#"<validate-jwt header-name="a"><openid-config url="ftp://x"/></validate-jwt>"#.to_string(),
            "http(s)",
        ),
        (
            r#"<validate-jwt header-name="a" output-token-variable-name="@(1)"/>"#.to_string(),
            "expressions",
        ),
    ] {
        let e = compile_err(&src);
        assert!(e.message.contains(needle), "{src}: {e}");
    }
}
