//! Local functions: declaration anywhere in a block, recursion, captures,
//! in-place changes through parameters.

use super::*;

#[test]
fn declared_and_called() {
    assert_eq!(
        ev("@{ int Twice(int x) { return x * 2; } return Twice(21); }"),
        Value::Int(42)
    );
    // Expression-bodied, called before its declaration, calling a later one.
    assert_eq!(
        evs(r#"@{
            var r = Greet("Ann");
            string Greet(string n) => Prefix() + n;
            string Prefix() => "Hello, ";
            return r;
        }"#),
        "Hello, Ann"
    );
    // void, `return;`, and a static function with no captures.
    assert_eq!(
        evs(r#"@{
            var log = new List<string>();
            void Note(string m) { if (m == "") { return; } log.Add(m); }
            static int Sq(int x) => x * x;
            Note("a"); Note(""); Note(Sq(3).ToString());
            return string.Join(",", log);
        }"#),
        "a,9"
    );
    // A double parameter and return take ints.
    assert_eq!(
        evs("@{ double Half(double x) { return x / 2; } double One() => 1; return Half(3) + One(); }"),
        "2.5"
    );
}

#[test]
fn recursion_and_captures() {
    assert_eq!(
        ev("@{ long Fact(int n) { if (n <= 1) { return 1; } return n * Fact(n - 1); } return Fact(10); }"),
        Value::Int(3_628_800)
    );
    // Each call has its own locals.
    assert_eq!(
        evs(r#"@{
            string Walk(int n) { var me = n.ToString(); if (n == 0) { return me; } var rest = Walk(n - 1); return me + rest; }
            return Walk(3);
        }"#),
        "3210"
    );
    // Captured outer locals are read and written.
    assert_eq!(
        ev("@{ int total = 0; void Add(int x) { total += x; } Add(2); Add(3); return total; }"),
        Value::Int(5)
    );
    assert!(eval_err("@{ int F(int n) => F(n + 1); return F(0); }").contains("nested too deeply"));
}

/// The deepest nesting the parser accepts, at every level of the deepest
/// recursion allowed, stays within the test thread's stack (2 MiB).
#[test]
fn deep_recursion_with_deep_nesting_does_not_overflow() {
    let src = |depth: usize| {
        format!(
            "@{{ int F(int n) {{ return F({}n{} + 1); }} return F(0); }}",
            "(int)(".repeat(depth),
            ")".repeat(depth)
        )
    };
    let mut depth = 1;
    while Expr::compile(&src(depth + 1)).is_ok() {
        depth += 1;
    }
    assert!(depth > 20, "only {depth} levels");
    assert!(eval_err(&src(depth)).contains("nested too deeply"));
}

#[test]
fn parameters_changed_in_place_are_seen_by_the_caller() {
    // The BFF sample: a JObject argument filled in by a void function.
    assert_eq!(
        evs(r#"@{
            void Fill(JObject element, string name, string body) {
                try { element.Add(name, JToken.Parse(body)); }
                catch (Exception ex) { element.Add(name, body); }
            }
            var o = new JObject();
            Fill(o, "a", "{\"x\":1}");
            Fill(o, "b", "not json");
            return o.ToString(Newtonsoft.Json.Formatting.None);
        }"#),
        r#"{"a":{"x":1},"b":"not json"}"#
    );
    assert_eq!(
        evs("@{ void Set(byte[] b) { b[0] = 7; } var a = new byte[2]; Set(a); return BitConverter.ToString(a); }"),
        "07-00"
    );
    // A reassigned parameter is a copy, as in .NET.
    assert_eq!(
        evs(
            r#"@{ void Reset(JObject o) { o = new JObject(); o["x"] = 1; } var a = new JObject(); Reset(a); return a.ToString(Newtonsoft.Json.Formatting.None); }"#
        ),
        "{}"
    );
    assert_eq!(
        ev("@{ void Inc(int x) { x++; } int a = 1; Inc(a); return a; }"),
        Value::Int(1)
    );
}

#[test]
fn the_ip_filter_sample() {
    let src = r#"@{
        int HostToNetworkOrder(int host)
        {
            return (((int)HostToNetworkOrderShort((short)host) & 0xFFFF) << 16)
                | ((int)HostToNetworkOrderShort((short)(host >> 16)) & 0xFFFF);
        }
        short HostToNetworkOrderShort(short host)
        {
            return (short)((((int)host & 0xFF) << 8) | (int)((host >> 8) & 0xFF));
        }
        string[] cidrParts = "10.0.0.0/8".Split('/');
        string[] inputIPParts = "10.1.2.3".Split('.');
        string[] cidrIPArray = cidrParts[0].Split('.');
        byte[] inputIPBytes = new byte[] { Convert.ToByte(int.Parse(inputIPParts[0])), Convert.ToByte(int.Parse(inputIPParts[1])),
            Convert.ToByte(int.Parse(inputIPParts[2])), Convert.ToByte(int.Parse(inputIPParts[3])), };
        byte[] cidrIPBytes = new byte[] { Convert.ToByte(int.Parse(cidrIPArray[0])), Convert.ToByte(int.Parse(cidrIPArray[1])),
            Convert.ToByte(int.Parse(cidrIPArray[2])), Convert.ToByte(int.Parse(cidrIPArray[3])), };
        int cidrAddr = BitConverter.ToInt32(inputIPBytes, 0);
        int ipAddr = BitConverter.ToInt32(cidrIPBytes, 0);
        var host = int.Parse(cidrParts[1]);
        host = -1 << (32 - host);
        var mask = HostToNetworkOrder(host);
        return mask + ":" + ((ipAddr & mask) == (cidrAddr & mask));
    }"#;
    // -1 << 24 is 0xFF000000; in network order 0x000000FF.
    assert_eq!(evs(src), "255:True");
}

#[test]
fn errors_are_named() {
    assert_eq!(
        compile_err("@{ int F(int x) { if (x > 0) { return 1; } } return F(1); }"),
        "'F': not all code paths return a value"
    );
    assert_eq!(
        compile_err("@{ void F() { return 1; } F(); return 1; }"),
        "a void local function cannot return a value"
    );
    assert_eq!(
        compile_err("@{ int F(int x) => x; return F(); }"),
        "wrong number of arguments to local function 'F'"
    );
    assert_eq!(
        compile_err("@{ int F(int x) => x; int F(int y) => y; return 1; }"),
        "a local function named 'F' is already defined in this scope"
    );
    assert_eq!(
        compile_err("@{ int F(ref int x) => x; return 1; }"),
        "'ref' parameters are not supported in local functions"
    );
    assert_eq!(
        compile_err("@{ int F(int x = 1) => x; return 1; }"),
        "optional parameters are not supported in local functions"
    );
    assert_eq!(
        compile_err("@{ T F<T>(T x) => x; return 1; }"),
        "generic local functions are not supported"
    );
    assert_eq!(
        compile_err("@{ async void F() { } return 1; }"),
        "async local functions are not supported"
    );
    assert_eq!(
        compile_err("@{ return G(1); }"),
        "unsupported method 'G' (not a local function; delegates are not supported)"
    );
    // Scoped to their block.
    assert_eq!(
        compile_err("@{ if (true) { int F() => 1; } return F(); }"),
        "unsupported method 'F' (not a local function; delegates are not supported)"
    );
    // break cannot leave the function; parameters may shadow outer names.
    assert_eq!(
        compile_err("@{ while (true) { void F() { break; } F(); } }"),
        "no enclosing loop out of which to break"
    );
    assert_eq!(
        ev("@{ int x = 1; int F(int x) => x * 10; return F(2) + x; }"),
        Value::Int(21)
    );
    assert_eq!(
        compile_err("@{ int F(Foo x) => 1; return 1; }"),
        "unsupported type 'Foo'"
    );
}
