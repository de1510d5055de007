//! Hashes, HMACs, byte helpers, `using` and `Array.Copy`, with known-answer vectors.

use super::*;

fn hex(src: &str) -> String {
    evs(&format!(
        "@(BitConverter.ToString({src}).Replace(\"-\", \"\").ToLowerInvariant())"
    ))
}

#[test]
fn sha_known_answers() {
    assert_eq!(
        hex("SHA256.Create().ComputeHash(Encoding.UTF8.GetBytes(\"abc\"))"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        evs("@(Convert.ToBase64String(SHA256.Create().ComputeHash(Encoding.UTF8.GetBytes(\"abc\"))))"),
        "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
    );
    assert_eq!(
        hex("System.Security.Cryptography.SHA1.Create().ComputeHash(Encoding.UTF8.GetBytes(\"abc\"))"),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    assert_eq!(
        hex("new SHA256Managed().ComputeHash(Encoding.UTF8.GetBytes(\"\"))"),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        hex("SHA512.HashData(Encoding.UTF8.GetBytes(\"abc\"))"),
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
         2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
    );
    assert_eq!(
        hex("SHA384.Create().ComputeHash(Encoding.ASCII.GetBytes(\"abc\"))"),
        "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed\
         8086072ba1e7cc2358baeca134c825a7"
    );
    // ComputeHash(buffer, offset, count) hashes the slice: "abc" out of "xabcx".
    assert_eq!(
        hex("SHA256.Create().ComputeHash(Encoding.UTF8.GetBytes(\"xabcx\"), 1, 3)"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert!(
        eval_err("@(SHA256.Create().ComputeHash(new byte[2], 1, 5))").contains("out of bounds")
    );
}

#[test]
fn hmac_known_answers() {
    // RFC 4231 test case 2.
    let data = "Encoding.UTF8.GetBytes(\"what do ya want for nothing?\")";
    let key = "Encoding.UTF8.GetBytes(\"Jefe\")";
    assert_eq!(
        hex(&format!("new HMACSHA256({key}).ComputeHash({data})")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert_eq!(
        hex(&format!(
            "new System.Security.Cryptography.HMACSHA512({key}).ComputeHash({data})"
        )),
        "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
         9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
    );
    // RFC 2202 test case 2.
    assert_eq!(
        hex(&format!("new HMACSHA1({key}).ComputeHash({data})")),
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
    );
    assert_eq!(
        hex(&format!("HMACSHA256.HashData({key}, {data})")),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // RFC 4231 test case 1: key 0x0b * 20, "Hi There", via a typed local.
    assert_eq!(
        evs(r#"@{
            var key = new byte[20];
            for (int i = 0; i < key.Length; i++) { key[i] = 0x0b; }
            System.Security.Cryptography.HMACSHA256 hasher = new System.Security.Cryptography.HMACSHA256(key);
            return Convert.ToHexString(hasher.ComputeHash(System.Text.Encoding.UTF8.GetBytes("Hi There")));
        }"#),
        "B0344C61D8DB38535CA8AFCEAF0BF12B881DC200C9833DA726E9376C2E32CFF7"
    );
    // The CosmosDB sample's object initializer, and the Key property.
    assert_eq!(
        evs(r#"@{
            var h = new System.Security.Cryptography.HMACSHA256 { Key = Encoding.UTF8.GetBytes("Jefe") };
            return Encoding.UTF8.GetString(h.Key) + ":" + Convert.ToHexStringLower(h.ComputeHash(Encoding.UTF8.GetBytes("what do ya want for nothing?")));
        }"#),
        "Jefe:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn using_statements_are_scoped_declarations() {
    let want = "W9zBRr9gdU5qBCQmCJV1x1oAPwidJzmDnexYuWTsOEM=";
    assert_eq!(
        evs(r#"@{
            using (var h = new HMACSHA256(Encoding.UTF8.GetBytes("Jefe")))
            {
                return Convert.ToBase64String(h.ComputeHash(Encoding.UTF8.GetBytes("what do ya want for nothing?")));
            }
        }"#),
        want
    );
    assert_eq!(
        evs(r#"@{
            using var h = new HMACSHA256(Encoding.UTF8.GetBytes("Jefe"));
            var sig = Convert.ToBase64String(h.ComputeHash(Encoding.UTF8.GetBytes("what do ya want for nothing?")));
            h.Dispose();
            return sig;
        }"#),
        want
    );
    // The using variable is scoped to its statement; nested usings chain.
    assert_eq!(
        evs(r#"@{
            string r = "";
            using (HashAlgorithm a = SHA1.Create())
            using (var b = SHA256.Create())
                r = a.ComputeHash(new byte[0]).Length + "," + b.ComputeHash(new byte[0]).Length;
            var a2 = 1;
            return r;
        }"#),
        "20,32"
    );
    assert_eq!(
        compile_err("@{ using (var h = SHA256.Create()) { } return h; }"),
        "the name 'h' does not exist in the current context"
    );
    assert_eq!(
        compile_err("@{ using 1; return 1; }"),
        "expected a declaration after 'using'"
    );
}

#[test]
fn crypto_types_and_errors() {
    assert_eq!(ev("@(SHA256.Create() is HashAlgorithm)"), Value::Bool(true));
    assert_eq!(
        evs("@(new HMACSHA256(new byte[1]).ToString())"),
        "System.Security.Cryptography.HMACSHA256"
    );
    assert_eq!(
        compile_err("@(new HMACSHA256().ComputeHash(new byte[0]))"),
        "new HMACSHA256() without a key is not supported (.NET makes a random key; give one: new HMACSHA256(keyBytes))"
    );
    assert_eq!(
        compile_err("@(System.Security.Cryptography.MD5.Create())"),
        "unsupported type 'System.Security.Cryptography.MD5' (MD5 is not available: the gateway's crypto library, ring, has no MD5)"
    );
    assert_eq!(
        compile_err("@(new HMACMD5(new byte[1]))"),
        "unsupported type 'HMACMD5' (MD5 is not available: the gateway's crypto library, ring, has no MD5)"
    );
    assert_eq!(
        compile_err("@{ using (var des = TripleDES.Create()) { return 1; } }"),
        "unsupported type 'TripleDES' (of symmetric encryption only AES in CBC mode is supported: Aes, byte[].Encrypt/Decrypt)"
    );
    assert_eq!(
        compile_err("@(SHA256.Create().Foo())"),
        "unsupported method 'Foo' on HashAlgorithm"
    );
    assert_eq!(
        compile_err("@(SHA256.Create().TransformFinalBlock(new byte[0], 0, 0))"),
        "unsupported method 'TransformFinalBlock' on HashAlgorithm"
    );
    assert_eq!(
        compile_err("@(new SHA256Managed(1))"),
        "'SHA256Managed' takes no arguments"
    );
    assert_eq!(
        compile_err("@(new HMACSHA256 { Foo = 1 })"),
        "unsupported initializer on 'HMACSHA256'"
    );
    assert_eq!(
        compile_err("@(new byte[1].Encrypt(\"DES\", new byte[8], new byte[8]))"),
        "symmetric algorithm 'DES' is not supported (only AES: \"Aes\", in CBC mode)"
    );
    assert!(eval_err("@(SHA256.Create().ComputeHash(null))").contains("cannot be null"));
    assert!(eval_err("@(new HMACSHA256((byte[])null))").contains("cannot be null"));
}

#[test]
fn bit_converter_and_hex() {
    assert_eq!(
        evs("@(BitConverter.ToString(new byte[] { 0x0a, 0xff, 0x10 }))"),
        "0A-FF-10"
    );
    assert_eq!(
        evs("@(BitConverter.ToString(new byte[] { 1, 2, 3, 4 }, 1, 2))"),
        "02-03"
    );
    assert_eq!(
        evs("@(BitConverter.ToString(new byte[] { 1, 2, 3, 4 }, 3))"),
        "04"
    );
    assert!(
        eval_err("@(BitConverter.ToString(new byte[] { 1 }, 1, 5))").contains("not long enough")
    );
    assert_eq!(
        ev("@(BitConverter.ToInt32(new byte[] { 10, 0, 0, 192 }, 0))"),
        Value::Int(-1_073_741_814)
    );
    assert_eq!(
        ev("@(BitConverter.ToUInt32(new byte[] { 255, 255, 255, 255 }, 0))"),
        Value::Int(4_294_967_295)
    );
    assert_eq!(
        ev("@(BitConverter.ToInt16(new byte[] { 0, 0xfe, 0xff }, 1))"),
        Value::Int(-2)
    );
    assert_eq!(
        ev("@(BitConverter.ToInt64(new byte[] { 1, 0, 0, 0, 0, 0, 0, 0x80 }, 0))"),
        Value::Int(i64::MIN + 1)
    );
    assert!(
        eval_err("@(BitConverter.ToInt32(new byte[] { 1, 2, 3 }, 0))").contains("not long enough")
    );
    assert!(eval_err("@(BitConverter.ToInt32(new byte[4], -1))").contains("Must be non-negative"));
    assert_eq!(ev("@(BitConverter.IsLittleEndian)"), Value::Bool(true));
    assert_eq!(
        evs("@(Convert.ToHexString(Convert.FromHexString(\"00aBfF\")))"),
        "00ABFF"
    );
    assert!(eval_err("@(Convert.FromHexString(\"abc\"))").contains("not a valid hex string"));
    assert_eq!(
        compile_err("@(BitConverter.GetBytes(1))"),
        "unsupported method 'BitConverter.GetBytes'"
    );
}

#[test]
fn array_copy() {
    // The "Add correlation id" sample.
    let id = evs(r#"@{
        var guidBinary = new byte[16];
        Array.Copy(Guid.NewGuid().ToByteArray(), 0, guidBinary, 0, 10);
        long time = DateTime.Now.Ticks;
        byte[] bytes = new byte[6];
        unchecked
        {
            bytes[5] = (byte)(time >> 40);
            bytes[4] = (byte)(time >> 32);
            bytes[3] = (byte)(time >> 24);
            bytes[2] = (byte)(time >> 16);
            bytes[1] = (byte)(time >> 8);
            bytes[0] = (byte)(time);
        }
        Array.Copy(bytes, 0, guidBinary, 10, 6);
        return new Guid(guidBinary).ToString();
    }"#);
    assert_eq!(id.len(), 36);
    // The last six bytes are the ticks' low 48 bits, lowest byte first.
    let ticks: i64 = 1_700_000_000_123 * 10_000 + 621_355_968_000_000_000;
    let tail: String = (0..6)
        .map(|i| format!("{:02x}", (ticks >> (8 * i)) & 0xff))
        .collect();
    assert_eq!(&id[24..], tail);
    assert_eq!(
        evs(r#"@{
            var dst = new byte[] { 9, 9, 9, 9 };
            Array.Copy(new byte[] { 1, 2, 3 }, dst, 2);
            Buffer.BlockCopy(new byte[] { 7, 8 }, 1, dst, 3, 1);
            return BitConverter.ToString(dst);
        }"#),
        "01-02-09-08"
    );
    assert_eq!(
        evs(r#"@{
            var dst = new string[3];
            Array.Copy(new [] { "a", "b" }, 0, dst, 1, 2);
            return string.Join(",", dst);
        }"#),
        ",a,b"
    );
    assert!(
        eval_err("@{ var d = new byte[2]; Array.Copy(new byte[4], 0, d, 0, 3); return d; }")
            .contains("not long enough")
    );
    assert!(
        eval_err("@{ var d = new byte[2]; Array.Copy(new byte[4], 3, d, 0, 2); return d; }")
            .contains("not long enough")
    );
    assert!(
        eval_err("@{ var d = new byte[2]; Array.Copy(new byte[4], 0, d, 0, -1); return d; }")
            .contains("Must be non-negative")
    );
    assert!(
        eval_err("@{ byte[] d = null; Array.Copy(new byte[4], 0, d, 0, 1); return d; }")
            .contains("Object reference")
    );
    assert_eq!(
        compile_err("@{ Array.Copy(new byte[4], 0, new byte[4], 0, 1); return 1; }"),
        "the destination of 'Array.Copy' must be a local variable"
    );
    assert_eq!(
        compile_err("@{ var d = new byte[1]; Array.Copy(d, d); return 1; }"),
        "wrong number of arguments to 'Array.Copy'"
    );
}
