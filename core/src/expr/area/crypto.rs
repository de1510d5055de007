//! `System.Security.Cryptography`: hash and HMAC classes (`SHA256.Create()`,
//! `new HMACSHA256(key)`, `ComputeHash`, `HashData`), AES (`Aes.Create()`,
//! `new AesManaged { ... }`, `Key`/`IV`/`Mode`/`Padding`) and APIM's
//! `byte[].Encrypt`/`Decrypt`. The algorithms are in `expr::crypto`.

use std::sync::Arc;

use bytes::Bytes;

use crate::expr::ast::{Arg, TypeRef, E, EK};
use crate::expr::compile::{err, konst, Comp, Compiler};
use crate::expr::crypto;
use crate::expr::eval::{bytes_arg, common_method, fail, idx_arg, int_arg, no_member, nre, R};
use crate::expr::node::{AesField, Ctor, Member, Method, Node, StaticFn};
use crate::expr::types::{StaticSig, Ty, TypeK};
use crate::expr::value::{Obj, Value};
use crate::expr::{EvalError, ExprError};

// ---- compile time ----

/// `CipherMode.*`, `PaddingMode.*`.
pub(crate) fn consts(k: TypeK, name: &str) -> Option<Comp> {
    match k {
        TypeK::CipherMode => crypto::CIPHER_MODES.iter().find(|(n, _)| *n == name),
        TypeK::PaddingMode => crypto::PADDING_MODES.iter().find(|(n, _)| *n == name),
        _ => None,
    }
    .map(|(_, v)| konst(*v, Ty::Int))
}

/// `SHA256.Create()`, `SHA256.HashData(bytes)`, `HMACSHA256.HashData(key, bytes)`.
pub(crate) fn statics(k: TypeK, name: &str, _pos: usize) -> Result<Option<StaticSig>, ExprError> {
    use StaticFn as F;
    Ok(Some(match (k, name) {
        (TypeK::Hash(alg, false), "Create") => (F::HashCreate(alg), Ty::Crypto, 0, 0),
        (TypeK::Hash(alg, false), "HashData") => (F::HashData(alg), Ty::Bytes, 1, 1),
        (TypeK::Hash(alg, true), "HashData") => (F::HmacData(alg), Ty::Bytes, 2, 2),
        _ => return Ok(None),
    }))
}

/// Whether `m` is a method of a hash algorithm object.
pub(crate) fn hasher_method_ok(m: Method) -> bool {
    matches!(m, Method::ComputeHash | Method::Dispose | Method::Clear)
}

/// Whether `m` is a method of an `Aes` object.
pub(crate) fn cipher_method_ok(m: Method) -> bool {
    matches!(m, Method::Dispose | Method::Clear)
}

/// Whether `m` is APIM's `byte[].Encrypt`/`Decrypt`.
pub(crate) fn bytes_method_ok(m: Method) -> bool {
    matches!(m, Method::Encrypt | Method::Decrypt)
}

/// Whether `m` is a property of a hash algorithm object.
pub(crate) fn hasher_member_ok(m: Member) -> bool {
    matches!(m, Member::Key)
}

/// Whether `m` is a property of an `Aes` object.
pub(crate) fn cipher_member_ok(m: Member) -> bool {
    use Member as M;
    matches!(
        m,
        M::Key | M::IV | M::Mode | M::Padding | M::KeySize | M::BlockSize
    )
}

impl Compiler {
    /// `Aes.Create()` or `Aes.Create("Aes")`: a literal algorithm name is checked here.
    pub(crate) fn aes_create(
        &mut self,
        base: &str,
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if let Some(a) = args.first() {
            match &a.value.kind {
                EK::Str(n) if args.len() == 1 && crypto::is_aes_name(n) => {}
                EK::Str(n) if args.len() == 1 => {
                    return Err(err(a.value.pos, crypto::unsupported_alg(n)))
                }
                _ => {
                    return Err(err(
                        pos,
                        format!(
                        "'{base}.Create' takes no arguments or an algorithm name literal (\"Aes\")"
                    ),
                    ))
                }
            }
        }
        Ok(Comp::Val(
            Node::Static(StaticFn::AesCreate, Vec::new()),
            Ty::Cipher,
        ))
    }

    /// `new SHA256Managed()`, `new HMACSHA256(key)`, `new HMACSHA256 { Key = key }`.
    pub(crate) fn new_hasher(
        &mut self,
        ctor: Ctor,
        keyed: bool,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let mut key = None;
        for item in init.unwrap_or_default() {
            match &item.kind {
                EK::Assign(None, l, r) if keyed && matches!(&l.kind, EK::Name(n) if n == "Key") => {
                    key = Some(self.value(r)?.0);
                }
                _ => {
                    return Err(err(
                        item.pos,
                        format!("unsupported initializer on '{}'", t.name),
                    ))
                }
            }
        }
        let mut a = self.args(args, pos)?;
        if !keyed && !a.is_empty() {
            return Err(err(pos, format!("'{}' takes no arguments", t.name)));
        }
        if keyed {
            if a.len() > 1 || (a.len() == 1 && key.is_some()) {
                return Err(err(
                    pos,
                    format!("wrong number of arguments to '{}'", t.name),
                ));
            }
            if let Some(k) = key {
                a.push(k);
            }
            if a.is_empty() {
                return Err(err(
                    pos,
                    format!(
                        "new {}() without a key is not supported (.NET makes a random key; give one: new {}(keyBytes))",
                        t.name, t.name
                    ),
                ));
            }
        }
        Ok(Comp::Val(Node::New(ctor, a, Vec::new()), Ty::Crypto))
    }

    /// `aes.Key` (`IV`, `Mode`, `Padding`) as an assignment target, when
    /// `aes` is a local holding an `Aes` object (or of unknown type).
    pub(crate) fn aes_member<'e>(&self, lhs: &'e E) -> Option<(&'e E, AesField)> {
        let EK::Member(base, name) = &lhs.kind else {
            return None;
        };
        let f = match name.as_str() {
            "Key" => AesField::Key,
            "IV" => AesField::Iv,
            "Mode" => AesField::Mode,
            "Padding" => AesField::Padding,
            _ => return None,
        };
        let EK::Name(n) = &base.kind else {
            return None;
        };
        match self.lookup(n) {
            Some((_, Ty::Cipher | Ty::Any)) => Some((base, f)),
            _ => None,
        }
    }

    /// `bytes.Encrypt("Aes", key, iv)`, `Encrypt(aes)`, `Encrypt(aes, key, iv)`
    /// (and `Decrypt`): a literal algorithm name is checked here.
    pub(crate) fn encrypt_call(
        &mut self,
        node: Node,
        ty: Ty,
        m: Method,
        targs: &[TypeRef],
        args: &[Arg],
        pos: usize,
    ) -> Result<Comp, ExprError> {
        let name = if m == Method::Encrypt {
            "Encrypt"
        } else {
            "Decrypt"
        };
        if !targs.is_empty() {
            return Err(err(
                pos,
                format!("type arguments are not supported on '{name}'"),
            ));
        }
        if args.len() != 1 && args.len() != 3 {
            return Err(err(
                pos,
                format!("wrong number of arguments to '{name}' (algorithm, key, IV; or an Aes object[, key, IV])"),
            ));
        }
        if let EK::Str(alg) = &args[0].value.kind {
            if !crypto::is_aes_name(alg) {
                return Err(err(args[0].value.pos, crypto::unsupported_alg(alg)));
            }
            if args.len() != 3 {
                return Err(err(
                    pos,
                    format!("'{name}(\"{alg}\")' needs a key and an IV"),
                ));
            }
        }
        let a = self.args(args, pos)?;
        let _ = ty;
        Ok(Comp::Val(
            Node::Method(Box::new(node), m, a, None),
            Ty::Bytes,
        ))
    }

    /// `new AesManaged()`, `new AesManaged { Key = k, IV = iv, Mode = ..., Padding = ... }`.
    pub(crate) fn new_aes(
        &mut self,
        t: &TypeRef,
        args: &[Arg],
        init: Option<&[E]>,
        pos: usize,
    ) -> Result<Comp, ExprError> {
        if !args.is_empty() {
            return Err(err(pos, format!("'{}' takes no arguments", t.name)));
        }
        let mut fields: Vec<Node> = vec![
            Node::Const(Value::Null),
            Node::Const(Value::Null),
            Node::Const(Value::Int(0)),
            Node::Const(Value::Int(0)),
        ];
        for item in init.unwrap_or_default() {
            let i = match &item.kind {
                EK::Assign(None, l, r) => {
                    let i = match &l.kind {
                        EK::Name(n) if n == "Key" => 0,
                        EK::Name(n) if n == "IV" => 1,
                        EK::Name(n) if n == "Mode" => 2,
                        EK::Name(n) if n == "Padding" => 3,
                        _ => usize::MAX,
                    };
                    if i != usize::MAX {
                        fields[i] = self.value(r)?.0;
                    }
                    i
                }
                _ => usize::MAX,
            };
            if i == usize::MAX {
                return Err(err(
                    item.pos,
                    format!(
                        "unsupported initializer on '{}' (Key, IV, Mode and Padding can be set)",
                        t.name
                    ),
                ));
            }
        }
        Ok(Comp::Val(
            Node::New(Ctor::Aes, fields, Vec::new()),
            Ty::Cipher,
        ))
    }
}

// ---- run time ----

/// `SHA256.Create()`, `Aes.Create()`, `SHA256.HashData`, `HMACSHA256.HashData`.
pub(crate) fn call_static(f: StaticFn, a: &[Value]) -> R<Value> {
    use StaticFn as F;
    let arg = |i: usize| a.get(i).unwrap_or(&Value::Null);
    Ok(match f {
        F::HashCreate(alg) => Value::Object(Arc::new(Obj::Hasher(alg, None))),
        F::AesCreate => Value::Object(Arc::new(Obj::Aes(crypto::AesParams::default()))),
        F::HashData(alg) => Value::Bytes(Bytes::from(crypto::hash(alg, &bytes_arg(arg(0))?))),
        F::HmacData(alg) => {
            let key = bytes_arg(arg(0))?;
            let data = bytes_arg(arg(1))?;
            Value::Bytes(Bytes::from(crypto::hmac(alg, &key, &data)))
        }
        _ => return fail("internal error: unexpected static function"),
    })
}

/// `new SHA256Managed()`, `new HMACSHA256(key)`, `new AesManaged { ... }`.
pub(crate) fn construct(c: Ctor, a: &[Value]) -> R<Value> {
    match c {
        Ctor::Hasher(alg, keyed) => {
            let key = if keyed {
                Some(bytes_arg(a.first().unwrap_or(&Value::Null))?)
            } else {
                None
            };
            Ok(Value::Object(Arc::new(Obj::Hasher(alg, key))))
        }
        Ctor::Aes => {
            let mut p = crypto::AesParams::default();
            for (i, v) in a.iter().enumerate() {
                let f = match i {
                    0 => AesField::Key,
                    1 => AesField::Iv,
                    2 => AesField::Mode,
                    _ => AesField::Padding,
                };
                if !v.is_null() && !matches!(v, Value::Int(0)) {
                    set_aes(&mut p, f, v)?;
                }
            }
            Ok(Value::Object(Arc::new(Obj::Aes(p))))
        }
        _ => fail("internal error: unexpected constructor"),
    }
}

/// `ComputeHash`, `Dispose`, `Clear` on hash and `Aes` objects.
pub(crate) fn object_method(o: &Obj, recv: &Value, m: Method, a: &[Value]) -> R<Value> {
    match (o, m) {
        (Obj::Aes(_), Method::Dispose | Method::Clear) => Ok(Value::Null),
        (Obj::Hasher(alg, key), Method::ComputeHash) => {
            let data = bytes_arg(a.first().unwrap_or(&Value::Null))?;
            let data = match (a.get(1), a.get(2)) {
                (None, None) => &data[..],
                (Some(off), Some(n)) => {
                    let off = idx_arg(off, "offset")?;
                    let n = idx_arg(n, "count")?;
                    match off.checked_add(n).and_then(|end| data.get(off..end)) {
                    Some(d) => d,
                    None => return fail("Offset and length were out of bounds for the array or count is greater than the number of elements from index to the end of the source collection."),
                }
                }
                _ => return fail("ComputeHash takes a byte[], or a byte[], an offset and a count"),
            };
            let out = match key {
                Some(k) => crypto::hmac(*alg, k, data),
                None => crypto::hash(*alg, data),
            };
            Ok(Value::Bytes(Bytes::from(out)))
        }
        (Obj::Hasher(..), Method::Dispose | Method::Clear) => Ok(Value::Null),
        _ => common_method(recv, m, a),
    }
}

/// `Key` of a keyed hash; `Key`, `IV`, `Mode`, `Padding`, `KeySize`, `BlockSize` of an `Aes` object.
pub(crate) fn object_member(o: &Obj, v: &Value, m: Member) -> R<Value> {
    use Member as M;
    let bad = |v: &Value| no_member(v, m);
    match (o, m) {
        (Obj::Hasher(_, Some(k)), M::Key) => Ok(Value::Bytes(k.clone())),
        (Obj::Aes(p), M::Key | M::IV) => {
            let (x, what) = if m == M::Key {
                (&p.key, "Key")
            } else {
                (&p.iv, "IV")
            };
            match x {
                Some(b) => Ok(Value::Bytes(b.clone())),
                None => fail(format!("Aes.{what} was not set (.NET would generate a random one; the gateway has no random source)")),
            }
        }
        (Obj::Aes(p), M::Mode) => Ok(Value::Int(if p.mode == 0 {
            crypto::MODE_CBC
        } else {
            p.mode
        })),
        (Obj::Aes(p), M::Padding) => Ok(Value::Int(if p.padding == 0 {
            crypto::PADDING_PKCS7
        } else {
            p.padding
        })),
        (Obj::Aes(p), M::KeySize) => Ok(Value::Int(
            p.key.as_ref().map_or(256, |k| k.len() as i64 * 8),
        )),
        (Obj::Aes(_), M::BlockSize) => Ok(Value::Int(128)),
        _ => bad(v),
    }
}

/// `aes.Key = v` (and the other settable properties) on a local `Aes` object.
pub(crate) fn set_aes_on(target: &mut Value, f: AesField, a: &[Value]) -> R<Value> {
    let v = a.first().cloned().unwrap_or(Value::Null);
    let Value::Object(o) = target else {
        return match target {
            Value::Null => nre("the Aes object"),
            other => fail(format!(
                "'{f:?}' cannot be set on a value of type '{}'",
                other.type_name()
            )),
        };
    };
    let Obj::Aes(p) = Arc::make_mut(o) else {
        return fail(format!("'{f:?}' can only be set on an Aes object"));
    };
    set_aes(p, f, &v)?;
    Ok(v)
}

/// Sets a property of an `Aes` object, checking sizes as .NET's setters do.
fn set_aes(p: &mut crypto::AesParams, f: AesField, v: &Value) -> R<()> {
    let err = |message: String| EvalError { message };
    match f {
        AesField::Key => {
            let b = bytes_arg(v)?;
            crypto::check_key(&b).map_err(err)?;
            p.key = Some(b);
        }
        AesField::Iv => {
            let b = bytes_arg(v)?;
            crypto::check_iv(&b).map_err(err)?;
            p.iv = Some(b);
        }
        AesField::Mode => p.mode = int_arg(v, "Mode")?,
        AesField::Padding => p.padding = int_arg(v, "Padding")?,
    }
    Ok(())
}

/// APIM's `byte[].Encrypt(alg, key, iv)`, `Encrypt(aes)`, `Encrypt(aes, key, iv)`
/// (and `Decrypt`): AES-CBC.
pub(crate) fn encrypt_decrypt(data: &Bytes, encrypt: bool, a: &[Value]) -> R<Value> {
    let what = if encrypt { "Encrypt" } else { "Decrypt" };
    let mut p = match a.first() {
        Some(Value::Str(name)) => {
            if !crypto::is_aes_name(name) {
                return fail(crypto::unsupported_alg(name));
            }
            crypto::AesParams::default()
        }
        Some(Value::Object(o)) if matches!(**o, Obj::Aes(_)) => match &**o {
            Obj::Aes(p) => p.clone(),
            _ => return fail("internal error: not an Aes object"),
        },
        Some(Value::Null) | None => return nre(&format!("the algorithm of {what}")),
        Some(other) => {
            return fail(format!(
                "{what} takes an algorithm name or an Aes object, not a value of type '{}'",
                other.type_name()
            ))
        }
    };
    match a {
        [_] if matches!(a.first(), Some(Value::Str(_))) => {
            return fail(format!(
                "{what}(\"{}\") needs a key and an IV",
                a.first().map(|v| v.to_display_string()).unwrap_or_default()
            ))
        }
        [_] => {}
        [_, key, iv] => {
            let key = bytes_arg(key)?;
            let iv = bytes_arg(iv)?;
            p.key = Some(key);
            p.iv = Some(iv);
        }
        _ => return fail(format!("wrong number of arguments to {what}")),
    }
    crypto::aes_cbc(&p, data, encrypt)
        .map(|v| Value::Bytes(Bytes::from(v)))
        .map_err(|message| EvalError { message })
}
