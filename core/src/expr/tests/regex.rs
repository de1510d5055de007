//! `System.Text.RegularExpressions.Regex`.

use super::*;

#[test]
fn is_match_and_options() {
    assert_eq!(
        ev("@(Regex.IsMatch(\"abc123\", @\"\\d+\"))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(\"abc\", @\"^\\d+$\"))"),
        Value::Bool(false)
    );
    assert_eq!(
        ev("@(System.Text.RegularExpressions.Regex.IsMatch(\"ABC\", \"^abc$\", RegexOptions.IgnoreCase))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(\"ABC\", \"^abc$\"))"),
        Value::Bool(false)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(\"a\\nB\", \"^b$\", RegexOptions.IgnoreCase | RegexOptions.Multiline))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(\"a\\nb\", \"a.b\", RegexOptions.Singleline))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(\"a\\nb\", \"a.b\"))"),
        Value::Bool(false)
    );
    assert_eq!(
        ev("@(Regex.IsMatch(context.Request.Url.Path, \"^/v1/\", RegexOptions.None, TimeSpan.FromSeconds(1)))"),
        Value::Bool(true)
    );
    // Pattern from a run-time value.
    assert_eq!(
        ev("@(Regex.IsMatch(\"some text\", (string)context.Variables[\"s\"]))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@(new Regex(@\"^\\w+$\").IsMatch(\"abc\"))"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@{ var r = new Regex(\"X\", RegexOptions.IgnoreCase | RegexOptions.Compiled); return r.IsMatch(\"axb\"); }"),
        Value::Bool(true)
    );
    assert_eq!(
        ev("@{ Regex r = new Regex((string)context.Variables[\"s\"]); return r.IsMatch(\"context\"); }"),
        Value::Bool(true)
    );
}

#[test]
fn match_and_groups() {
    // The APIM documentation's example, and the corpus sample's.
    let mut c = ctx();
    c.response = Some(Response {
        status: 200,
        ..Response::default()
    });
    if let Some(r) = c.response.as_mut() {
        r.headers.append("Cache-Control", "public, max-age=120");
    }
    let doc = Expr::compile(
        "@(Regex.Match(context.Response.Headers.GetValueOrDefault(\"Cache-Control\",\"\"), @\"max-age=(?<maxAge>\\d+)\").Groups[\"maxAge\"]?.Value)",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        doc.eval(&c).map(|v| v.to_display_string()),
        Ok("120".into())
    );
    let sample = Expr::compile(
        "@{
        var header = context.Response.Headers.GetValueOrDefault(\"Cache-Control\",\"\");
        var maxAge = Regex.Match(header, @\"max-age=(?<maxAge>\\d+)\").Groups[\"maxAge\"]?.Value;
        return (!string.IsNullOrEmpty(maxAge))?int.Parse(maxAge):300;
    }",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sample.eval(&c), Ok(Value::Int(120)));
    if let Some(r) = c.response.as_mut() {
        r.headers = Default::default();
    }
    assert_eq!(sample.eval(&c), Ok(Value::Int(300)));

    assert_eq!(
        evs(
            "@{ var m = Regex.Match(\"order 42-7\", @\"(\\d+)-(\\d+)\"); \
               return m.Success + \" \" + m.Value + \" \" + m.Index + \" \" + m.Length + \" \" \
               + m.Groups[1].Value + \" \" + m.Groups[2].Value + \" \" + m.Groups.Count; }"
        ),
        "True 42-7 6 4 42 7 3"
    );
    let no = "@{ var m = Regex.Match(\"abc\", @\"\\d\"); return m.Success + \"|\" + m.Value + \"|\" + m.Groups[1].Success; }";
    assert_eq!(evs(no), "False||False");
    // .NET numbers unnamed groups before named ones.
    assert_eq!(
        evs("@{ var m = Regex.Match(\"2024-05\", @\"(?<year>\\d+)-(\\d+)\"); \
               return m.Groups[1].Value + \" \" + m.Groups[2].Value + \" \" + m.Groups[\"year\"].Value + \" \" + m.Groups[\"1\"].Value; }"),
        "05 2024 2024 05"
    );
    // A missing group name is an unsuccessful, empty group.
    assert_eq!(
        evs("@(Regex.Match(\"a\", \"a\").Groups[\"nope\"].Success + \"|\" + Regex.Match(\"a\", \"a\").Groups[\"nope\"].Value)"),
        "False|"
    );
    // Indexes count characters.
    assert_eq!(ev("@(Regex.Match(\"héllo\", \"l+\").Index)"), Value::Int(2));
    assert_eq!(evs("@(Regex.Match(\"abc\", \"b\").ToString())"), "b");
    assert_eq!(
        evs("@(Regex.Match(\"John Smith\", @\"(\\w+) (\\w+)\").Result(\"$2, $1\"))"),
        "Smith, John"
    );
    assert_eq!(
        evs("@{ var total = 0; foreach (var m in Regex.Matches(\"a1b22c333\", @\"\\d+\")) { total += ((string)m.Value).Length; } \
               return Regex.Matches(\"a1b22c333\", @\"\\d+\").Count + \":\" + total; }"),
        "3:6"
    );
    assert_eq!(
        evs("@(string.Join(\",\", Regex.Matches(\"a1b22\", @\"\\d+\").Select(m => m.Value)))"),
        "1,22"
    );
}

#[test]
fn replace_and_split() {
    assert_eq!(
        evs("@(Regex.Replace(\"a1b22c\", @\"\\d+\", \"#\"))"),
        "a#b#c"
    );
    assert_eq!(
        evs("@(Regex.Replace(\"John Smith\", @\"(?<first>\\w+) (?<last>\\w+)\", \"${last}, ${first} ($0) $$ $& $3\"))"),
        "Smith, John (John Smith) $ John Smith $3"
    );
    // `$1a` is group 1 then "a" in .NET.
    assert_eq!(evs("@(Regex.Replace(\"xy\", \"(x)\", \"$1a\"))"), "xay");
    assert_eq!(
        evs("@(Regex.Replace(\"Hello World\", \"o\", \"0\", RegexOptions.IgnoreCase))"),
        "Hell0 W0rld"
    );
    assert_eq!(
        evs("@(new Regex(\"-+\").Replace(\"a--b-c\", \"+\"))"),
        "a+b+c"
    );
    assert_eq!(
        evs("@(string.Join(\"|\", Regex.Split(\"a1b22c\", @\"\\d+\")))"),
        "a|b|c"
    );
    // Captured groups are included, as in .NET.
    assert_eq!(
        evs("@(string.Join(\"|\", Regex.Split(\"a-b_c\", @\"([-_])\")))"),
        "a|-|b|_|c"
    );
    assert_eq!(
        evs("@(string.Join(\"|\", new Regex(\",\").Split(\"x,y\")))"),
        "x|y"
    );
    assert_eq!(evs("@(Regex.Escape(\"a.b*c (d)\"))"), "a\\.b\\*c\\ \\(d\\)");
    assert_eq!(evs("@(Regex.Unescape(@\"a\\.b\\tc\\u0041\"))"), "a.b\tcA");
}

#[test]
fn errors_name_the_problem() {
    assert_eq!(
        compile_err("@(Regex.IsMatch(\"a\", \"(?=a)a\"))"),
        "invalid regular expression '(?=a)a': lookahead (?=...) / (?!...) is not supported (the gateway's regex engine has no lookaround, backreferences or atomic groups)"
    );
    assert!(compile_err("@(Regex.IsMatch(\"a\", @\"(a)\\1\"))")
        .contains("backreferences (\\1) is not supported"));
    assert!(compile_err("@(Regex.IsMatch(\"a\", \"(?<=a)b\"))").contains("lookbehind"));
    assert!(compile_err("@(new Regex(\"(a\"))").starts_with("invalid regular expression '(a': "));
    assert_eq!(
        compile_err("@(Regex.IsMatch(\"a\", \"a\", RegexOptions.RightToLeft))"),
        "RegexOptions.RightToLeft is not supported"
    );
    assert_eq!(
        compile_err("@(Regex.Foo(\"a\"))"),
        "unsupported method 'Regex.Foo'"
    );
    assert_eq!(
        compile_err("@(Regex.IsMatch(\"a\"))"),
        "wrong number of arguments to 'Regex.IsMatch'"
    );
    assert_eq!(
        compile_err("@(Regex.Replace(\"a\", \"a\", m => m.Value))"),
        "'Regex.Replace' with a MatchEvaluator (lambda) is not supported"
    );
    assert_eq!(
        compile_err("@(RegexOptions.Foo)"),
        "unsupported member 'RegexOptions.Foo'"
    );
    // Run-time patterns: errors at run time, with a size limit.
    let mut c = ctx();
    c.variables.insert("p".into(), Value::from("(?!x)"));
    let e = Expr::compile("@(Regex.IsMatch(\"a\", (string)context.Variables[\"p\"]))")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(e.eval(&c).is_err_and(|e| e.message.contains("lookahead")));
    c.variables
        .insert("p".into(), Value::from(r"\w{1000}\w{1000}\w{1000}"));
    assert!(e
        .eval(&c)
        .is_err_and(|e| e.message.contains("larger than the 1048576-byte limit")));
    c.variables
        .insert("p".into(), Value::from("a".repeat(5000)));
    assert!(e
        .eval(&c)
        .is_err_and(|e| e.message.contains("longer than 4096")));
    c.variables.insert("p".into(), Value::Null);
    assert!(e.eval(&c).is_err());
    assert!(eval_err("@(Regex.IsMatch((string)null, \"a\"))").contains("cannot be null"));
}

#[test]
fn documented_examples() {
    assert_eq!(
        evs("@(Regex.Replace(context.Request.Url.Path, @\"/v(\\d+)/\", \"/version-$1/\"))"),
        "/version-1/items"
    );
    assert_eq!(
        compile_err("@(new Regex(\"(a\"))"),
        "invalid regular expression '(a': unclosed group"
    );
    assert_eq!(
        evs("@{ var aes = SymmetricAlgorithm.Create(\"Aes\"); return aes is Aes; }"),
        "True"
    );
    assert_eq!(
        evs("@{ Match m = Regex.Match(\"ab\", \"b\"); Group g = m.Groups[0]; return g.Index; }"),
        "1"
    );
}

#[test]
fn odd_inputs_do_not_panic() {
    for rep in [
        "$", "${", "${x", "$é", "$9", "${99}", "$+", "$_$`$'", "é$1é", "$0$00$01",
    ] {
        let src = format!("@(Regex.Replace(\"aéb\", \"(é)\", \"{rep}\"))");
        let _ = Expr::compile(&src).map(|e| e.eval(&ctx()));
        let src = format!("@(Regex.Match(\"aéb\", \"(é)\").Result(\"{rep}\"))");
        let _ = Expr::compile(&src).map(|e| e.eval(&ctx()));
    }
    assert_eq!(
        evs("@(Regex.Replace(\"aéb\", \"(é)\", \"[$1é$]\"))"),
        "a[éé$]b"
    );
    assert_eq!(evs("@(Regex.Replace(\"ab\", \"b\", \"${x\"))"), "a${x");
    assert_eq!(evs("@(string.Join(\"|\", Regex.Split(\"\", \",\")))"), "");
    assert_eq!(
        evs("@(string.Join(\"|\", Regex.Split(\"abc\", \"\")))"),
        "|a|b|c|"
    );
    assert_eq!(
        evs("@(Regex.Match(\"a\", \"a\").Groups[-1].Success)"),
        "False"
    );
    assert_eq!(evs("@(Regex.Match(\"a\", \"a\").Groups[99].Value)"), "");
    assert!(eval_err("@(Regex.Match(\"a\", \"a\").Groups[null].Value)").contains("groupnum"));
}
