//! AES-CBC: APIM's `byte[].Encrypt`/`Decrypt` and `Aes` objects, with known
//! answers (NIST SP 800-38A; PKCS7 ones computed with another implementation)
//! and the corpus samples run end to end.

use super::*;

fn hex(src: &str) -> String {
    evs(&format!("@(Convert.ToHexStringLower({src}))"))
}

const KEY16: &str = "Convert.FromHexString(\"2b7e151628aed2a6abf7158809cf4f3c\")";
const IV: &str = "Convert.FromHexString(\"000102030405060708090a0b0c0d0e0f\")";
const NIST_PT: &str = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                       30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
const NIST_CT128: &str = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2\
                          73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7";

#[test]
fn nist_vectors_through_aes_objects() {
    // F.2.1 CBC-AES128.Encrypt: no padding, so an Aes object with Padding = None.
    let enc = format!(
        "@{{ var aes = Aes.Create(); aes.Key = {KEY16}; aes.IV = {IV}; \
           aes.Padding = PaddingMode.None; aes.Mode = CipherMode.CBC; \
           return Convert.ToHexStringLower(Convert.FromHexString(\"{NIST_PT}\").Encrypt(aes)); }}"
    );
    assert_eq!(evs(&enc), NIST_CT128);
    let dec = format!(
        "@{{ using (var aes = new AesManaged {{ Key = {KEY16}, IV = {IV}, Padding = PaddingMode.None }}) {{ \
           return Convert.ToHexStringLower(Convert.FromHexString(\"{NIST_CT128}\").Decrypt(aes)); }} }}"
    );
    assert_eq!(evs(&dec), NIST_PT);
    // F.2.5 CBC-AES256.Encrypt, the key and IV passed with the object.
    let enc256 = format!(
        "@{{ System.Security.Cryptography.SymmetricAlgorithm alg = System.Security.Cryptography.Aes.Create(); \
           alg.Padding = PaddingMode.None; \
           var key = Convert.FromHexString(\"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4\"); \
           return Convert.ToHexStringLower(Convert.FromHexString(\"{NIST_PT}\").Encrypt(alg, key, {IV})); }}"
    );
    assert_eq!(
        evs(&enc256),
        "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
         39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"
    );
}

#[test]
fn string_overload_pkcs7_known_answers() {
    // PKCS7 (the default): a whole block of plaintext gains a block of padding.
    let one = hex(&format!(
        "Convert.FromHexString(\"6bc1bee22e409f96e93d7e117393172a\").Encrypt(\"Aes\", {KEY16}, {IV})"
    ));
    assert_eq!(one.len(), 64);
    assert_eq!(&one[..32], "7649abac8119b246cee98e9b12e9197d");
    // Known answers from another AES implementation (key 00..1f, IV 64..73).
    let key32 = "Convert.FromBase64String(\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\")";
    let iv = "Convert.FromBase64String(\"ZGVmZ2hpamtsbW5vcHFycw==\")";
    assert_eq!(
        hex(&format!(
            "Encoding.UTF8.GetBytes(\"hello\").Encrypt(\"AES\", {key32}, {iv})"
        )),
        "88fd3f0ce98e36a1bbcd9226fb0b9498"
    );
    let key16 = "Convert.FromHexString(\"000102030405060708090a0b0c0d0e0f\")";
    let long = "héllo wörld, this is longer than one block";
    assert_eq!(
        hex(&format!(
            "Encoding.UTF8.GetBytes(\"{long}\").Encrypt(\"System.Security.Cryptography.AesManaged\", {key16}, {iv})"
        )),
        "f93a9c7071c2185d221ac81aca16dd2c4e2c741d5662dcdd09da795489b0ea50\
         d5744cc73eb7dbc67cc260ea3340fe01"
    );
    // Round trips of every length around the block size, and the empty input.
    for n in [0, 1, 15, 16, 17, 33] {
        let src = format!(
            "@{{ var data = new byte[{n}]; for (var i = 0; i < data.Length; i++) {{ data[i] = (byte)(i * 7); }} \
               var ct = data.Encrypt(\"Aes\", {KEY16}, {IV}); \
               var back = ct.Decrypt(\"Aes\", {KEY16}, {IV}); \
               return ct.Length + \":\" + Convert.ToBase64String(back) + \":\" + Convert.ToBase64String(data); }}"
        );
        let out = evs(&src);
        let parts: Vec<&str> = out.split(':').collect();
        assert_eq!(parts[0], ((n / 16 + 1) * 16).to_string(), "{n}");
        assert_eq!(parts[1], parts[2], "{n}");
    }
}

#[test]
fn run_time_errors_never_panics() {
    let e = |src: &str| eval_err(src);
    assert_eq!(
        e(&format!(
            "@(new byte[3].Encrypt(\"Aes\", new byte[10], {IV}))"
        )),
        "Specified key is not a valid size for this algorithm."
    );
    assert_eq!(
        e(&format!(
            "@(new byte[3].Encrypt(\"Aes\", {KEY16}, new byte[8]))"
        )),
        "Specified initialization vector (IV) does not match the block size for this algorithm."
    );
    assert_eq!(
        e(&format!("@(new byte[15].Decrypt(\"Aes\", {KEY16}, {IV}))")),
        "The input data is not a complete block."
    );
    assert_eq!(
        e(&format!("@(new byte[16].Decrypt(\"Aes\", {KEY16}, {IV}))")),
        "Padding is invalid and cannot be removed."
    );
    assert!(e(&format!("@(new byte[1].Encrypt(\"Aes\", null, {IV}))")).contains("cannot be null"));
    // A run-time algorithm name is checked at run time.
    assert_eq!(
        e(&format!(
            "@(new byte[1].Encrypt((string)context.Variables[\"s\"], {KEY16}, {IV}))"
        )),
        "symmetric algorithm 'text' is not supported (only AES: \"Aes\", in CBC mode)"
    );
    assert!(e("@(new byte[1].Encrypt(Aes.Create()))").contains("Aes.Key was not set"));
    assert!(e("@(Aes.Create().Key)").contains("no random source"));
    assert_eq!(
        e("@{ var aes = Aes.Create(); aes.Key = new byte[5]; return 1; }"),
        "Specified key is not a valid size for this algorithm."
    );
    assert_eq!(
        e(&format!(
            "@{{ var aes = Aes.Create(); aes.Mode = CipherMode.ECB; return new byte[1].Encrypt(aes, {KEY16}, {IV}); }}"
        )),
        "CipherMode.ECB is not supported (only CipherMode.CBC)"
    );
    assert_eq!(
        e(&format!(
            "@{{ var aes = Aes.Create(); aes.Mode = CipherMode.CFB; return new byte[1].Encrypt(aes, {KEY16}, {IV}); }}"
        )),
        "CipherMode.CFB is not supported (only CipherMode.CBC)"
    );
    assert_eq!(
        e(&format!(
            "@{{ var aes = Aes.Create(); aes.Padding = PaddingMode.Zeros; return new byte[1].Encrypt(aes, {KEY16}, {IV}); }}"
        )),
        "PaddingMode.Zeros is not supported (only PaddingMode.PKCS7 and PaddingMode.None)"
    );
    assert_eq!(
        e(&format!(
            "@{{ var aes = Aes.Create(); aes.Padding = PaddingMode.None; return new byte[3].Encrypt(aes, {KEY16}, {IV}); }}"
        )),
        "The input data is not a complete block."
    );
}

#[test]
fn members_and_compile_errors() {
    assert_eq!(
        evs(&format!(
            "@{{ var aes = Aes.Create(); aes.Key = {KEY16}; aes.IV = {IV}; \
               return aes.KeySize + \" \" + aes.BlockSize + \" \" + (aes.Mode == CipherMode.CBC) + \" \" \
               + (aes.Padding == PaddingMode.PKCS7) + \" \" + aes.IV.Length + \" \" + aes.Key[0]; }}"
        )),
        "128 128 True True 16 43"
    );
    assert_eq!(
        evs("@(Aes.Create().ToString())"),
        "System.Security.Cryptography.AesManaged"
    );
    assert_eq!(
        compile_err("@(new byte[1].Encrypt(\"TripleDES\", new byte[24], new byte[8]))"),
        "symmetric algorithm 'TripleDES' is not supported (only AES: \"Aes\", in CBC mode)"
    );
    assert_eq!(
        compile_err("@(new byte[1].Decrypt(\"Aes\"))"),
        "'Decrypt(\"Aes\")' needs a key and an IV"
    );
    assert_eq!(
        compile_err("@(new byte[1].Encrypt(\"Aes\", new byte[16]))"),
        "wrong number of arguments to 'Encrypt' (algorithm, key, IV; or an Aes object[, key, IV])"
    );
    assert_eq!(
        compile_err("@(SymmetricAlgorithm.Create(\"RC2\"))"),
        "symmetric algorithm 'RC2' is not supported (only AES: \"Aes\", in CBC mode)"
    );
    assert_eq!(
        compile_err("@(Aes.Create().GenerateKey())"),
        "unsupported method 'GenerateKey' on Aes"
    );
    assert_eq!(
        compile_err("@(Aes.Create().CreateEncryptor())"),
        "unsupported method 'CreateEncryptor' on Aes"
    );
    assert_eq!(
        compile_err("@(new AesManaged { BlockSize = 256 })"),
        "unsupported initializer on 'AesManaged' (Key, IV, Mode and Padding can be set)"
    );
    assert_eq!(
        compile_err("@(CipherMode.XTS)"),
        "unsupported member 'CipherMode.XTS'"
    );
    assert_eq!(
        compile_err("@(\"abc\".Encrypt(\"Aes\", new byte[16], new byte[16]))"),
        "unsupported method 'Encrypt' on string"
    );
}

/// The `value="@{...}"` of `<set-variable name="{name}">` in a corpus sample.
/// The samples are embedded at build time: tests in `core/src` read no files.
fn sample_expr(text: &str, name: &str) -> String {
    let tag = format!("<set-variable name=\"{name}\" value=\"");
    let start = text.find(&tag).map(|i| i + tag.len()).unwrap_or(0);
    let len = text[start..].find("\" />").unwrap_or(0);
    text[start..start + len]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

#[test]
fn corpus_encrypt_and_decrypt_samples_end_to_end() {
    let enc_src = sample_expr(
        include_str!(
            "../../../tests/apim-policies/examples/Encrypt data using expressions.policy.xml"
        ),
        "encryptedParameter",
    );
    let dec_src = sample_expr(
        include_str!(
            "../../../tests/apim-policies/examples/Decrypt AES Data using policy expressions.xml"
        ),
        "plainText",
    );
    assert!(enc_src.contains(".Encrypt(\"Aes\", key, IV)"), "{enc_src}");
    assert!(dec_src.contains(".Decrypt(\"Aes\", key, IV)"), "{dec_src}");
    let enc = Expr::compile(&enc_src).unwrap_or_else(|e| panic!("{e}"));
    let dec = Expr::compile(&dec_src).unwrap_or_else(|e| panic!("{e}"));

    // AES-192 ("AES 192 bit encrypted text"), key 00..17, IV 64..73.
    let mut c = ctx();
    c.request
        .matched_parameters
        .push(("Goober".into(), "Goober & friends".into()));
    c.variables.insert(
        "key".into(),
        Value::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"),
    );
    c.variables
        .insert("IV".into(), Value::from("ZGVmZ2hpamtsbW5vcHFycw=="));
    let ct = enc.eval(&c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ct.to_display_string(),
        "D4nL7H1pfZhqhC08tug/0L98kb12Z3nAVCqC6kf0m6o="
    );

    c.request.body = Some(Bytes::from(format!(
        "{{\"encrpText\": \"{}\"}}",
        ct.to_display_string()
    )));
    let pt = dec.eval(&c).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pt.to_display_string(), "Goober & friends");

    // A tampered ciphertext fails at run time (bad padding), as in APIM.
    c.request.body = Some(Bytes::from_static(
        br#"{"encrpText": "D4nL7H1pfZhqhC08tug/0L98kb12Z3nAVCqC6kf0m6s="}"#,
    ));
    assert!(dec.eval(&c).is_err());
}

#[test]
fn oauth_proxy_style_guid_iv() {
    // oauth-proxy encrypts tokens with a Guid's bytes as the IV.
    let src = "@{
        var token = Encoding.UTF8.GetBytes(\"access-token-1\");
        var iv = Guid.Parse(\"0f8fad5b-d9cb-469f-a165-70867728950e\").ToByteArray();
        var key = Convert.FromHexString(\"000102030405060708090a0b0c0d0e0f\");
        var encryptedToken = token.Encrypt(\"Aes\", key, iv);
        var back = Encoding.UTF8.GetString(encryptedToken.Decrypt(\"Aes\", key, iv));
        return $\"{Convert.ToBase64String(encryptedToken)}.{back}\";
    }";
    assert_eq!(evs(src), "PdqHpNdWQie4mvP2pON5Vw==.access-token-1");
}

#[test]
fn documented_example() {
    let mut c = ctx();
    c.variables.insert(
        "key".into(),
        Value::from("AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"),
    );
    c.variables
        .insert("IV".into(), Value::from("ZGVmZ2hpamtsbW5vcHFycw=="));
    let src = "@{
    byte[] iv = Convert.FromBase64String((string)context.Variables[\"IV\"]);
    byte[] key = Convert.FromBase64String((string)context.Variables[\"key\"]);
    return Convert.ToBase64String(Encoding.UTF8.GetBytes(\"secret\").Encrypt(\"Aes\", key, iv));
}";
    let e = Expr::compile(src).unwrap_or_else(|e| panic!("{e}"));
    let ct = e
        .eval(&c)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_display_string();
    let back = format!(
        "@(Encoding.UTF8.GetString(Convert.FromBase64String(\"{ct}\").Decrypt(\"Aes\", \
         Convert.FromBase64String(\"AAECAwQFBgcICQoLDA0ODxAREhMUFRYX\"), Convert.FromBase64String(\"ZGVmZ2hpamtsbW5vcHFycw==\"))))"
    );
    assert_eq!(evs(&back), "secret");
}
