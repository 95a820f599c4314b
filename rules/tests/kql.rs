//! KQL semantics, item by item of DESIGN's checklist: each with a case that matches and one
//! that does not. Every evaluation also checks the compiled matcher against the interpreter.

mod support;

use support::*;

fn kcc() -> nightjar_proto::ExecEvent<'static> {
    event("/usr/bin/kcc", &["kcc", "copy_cred_cache", "-v"])
}

#[test]
fn seed_rule() {
    let q = "event.category:process and host.os.type:macos and event.type:(start or process_started) and\n  process.name:kcc and\n  process.args:copy_cred_cache";
    assert!(kql(q, &kcc()));
    assert!(!kql(q, &event("/usr/bin/kcc", &["kcc", "list"])));
    assert!(!kql(
        q,
        &event("/usr/bin/kcc2", &["kcc", "copy_cred_cache"])
    ));
    let mut linux = kcc();
    linux.os = nightjar_proto::OsType::Linux;
    assert!(!kql(q, &linux));
}

#[test]
fn arrays_match_any_element_and_not_means_none() {
    assert!(kql("process.args:-v", &kcc()));
    assert!(!kql("process.args:-x", &kcc()));
    assert!(!kql("not process.args:-v", &kcc()));
    assert!(kql("not process.args:-x", &kcc()));
    // Two terms may be satisfied by different elements.
    assert!(kql("process.args:(kcc and -v)", &kcc()));
}

#[test]
fn missing_fields_make_every_term_false() {
    let ev = kcc();
    assert!(!kql("process.parent.name:bash", &ev));
    assert!(kql("not process.parent.name:bash", &ev));
    assert!(!kql("process.parent.name:*", &ev));
    assert!(!kql("file.path:/etc/passwd", &ev));
    assert!(kql("not file.path:/etc/passwd", &ev));
    assert!(!kql(
        "process.parent.pid >= 0",
        &event("/bin/x", &["x"]).tap(|e| e.target.ppid = None)
    ));
}

#[test]
fn exists_means_at_least_one_value() {
    assert!(kql("process.working_directory:*", &kcc()));
    assert!(!kql(
        "process.working_directory:*",
        &kcc().tap(|e| e.target.cwd = None)
    ));
    assert!(kql("process.args:*", &kcc()));
    assert!(!kql("process.args:*", &event("/bin/x", &[])));
    assert!(!kql("process.command_line:*", &event("/bin/x", &[])));
}

#[test]
fn unquoted_star_is_an_anchored_wildcard() {
    assert!(kql("process.name:kc*", &kcc()));
    assert!(kql("process.name:*cc", &kcc()));
    assert!(kql("process.name:k*c", &kcc()));
    assert!(!kql("process.name:cc*", &kcc()));
    assert!(!kql("process.name:*k", &kcc()));
    assert!(kql("process.executable:/usr/*", &kcc()));
    assert!(!kql("process.executable:usr/*", &kcc()));
    assert!(kql("process.args:*cred*", &kcc()));
}

#[test]
fn question_mark_is_literal() {
    assert!(!kql("process.name:k?c", &kcc()));
    assert!(kql("process.name:k?c", &event("/bin/k?c", &["x"])));
}

#[test]
fn quoted_strings_are_literal() {
    assert!(!kql("process.name:\"kc*\"", &kcc()));
    assert!(kql("process.name:\"kc*\"", &event("/bin/kc*", &["x"])));
    assert!(kql("process.args:\"copy_cred_cache\"", &kcc()));
    assert!(kql("process.args:\"a b\"", &event("/bin/x", &["a b"])));
    assert!(kql("process.args:a b", &event("/bin/x", &["a b"])));
    assert!(!kql("process.args:\"a\"", &event("/bin/x", &["a b"])));
}

#[test]
fn escapes() {
    let ev = event(
        "/bin/x",
        &["a:b", "c*d", "e\\f", "(g)", "<h>", "\"i\"", "{j}", "or"],
    );
    assert!(kql(r"process.args:a\:b", &ev));
    assert!(kql(r"process.args:c\*d", &ev));
    assert!(!kql(r"process.args:c\*d", &event("/bin/x", &["cxd"])));
    assert!(kql(r"process.args:e\\f", &ev));
    assert!(kql(r"process.args:\(g\)", &ev));
    assert!(kql(r"process.args:\<h\>", &ev));
    assert!(kql(r#"process.args:\"i\""#, &ev));
    assert!(kql(r"process.args:\{j\}", &ev));
    assert!(kql(r"process.args:\or", &ev));
    assert!(!kql(r"process.args:\(x\)", &ev));
}

#[test]
fn precedence_or_and_not() {
    let ev = kcc();
    // or < and: a or (b and c)
    assert!(kql(
        "process.name:kcc or process.name:x and process.name:y",
        &ev
    ));
    assert!(!kql(
        "(process.name:kcc or process.name:x) and process.name:y",
        &ev
    ));
    // not binds tighter than and
    assert!(kql("not process.name:x and process.name:kcc", &ev));
    assert!(!kql(
        "not (process.name:kcc and process.name:x) and process.name:x",
        &ev
    ));
    // inside a value list, too
    assert!(kql("process.args:(x or kcc and not y)", &ev));
    assert!(!kql("process.args:(x or kcc and not -v)", &ev));
}

#[test]
fn keywords_are_case_insensitive_values_are_not() {
    assert!(kql(
        "process.name:kcc AND process.args:-v Or process.name:x",
        &kcc()
    ));
    assert!(kql("NOT process.name:x", &kcc()));
    assert!(!kql("process.name:KCC", &kcc()));
    assert!(!kql("process.name:Kcc*", &kcc()));
}

#[test]
fn typed_literals() {
    let ev = kcc();
    assert!(kql("process.code_signature.trusted:true", &ev));
    assert!(!kql("process.code_signature.trusted:false", &ev));
    assert!(kql("process.code_signature.exists:\"true\"", &ev));
    assert!(kql("process.pid:702", &ev));
    assert!(!kql("process.pid:703", &ev));
    assert!(kql("process.args_count:3", &ev));
    // On keyword fields, unquoted true and numbers are strings.
    assert!(kql(
        "process.args:(true and 1)",
        &event("/bin/dscl", &["true", "1"])
    ));
    assert!(!kql("process.args:true", &event("/bin/dscl", &["TRUE"])));
    assert!(kql("user.id:0", &ev));
    assert!(!kql("user.id:00", &ev));
    assert!(kql("user.name:root", &ev));
    let e = error_of(&kql_toml("process.pid:abc"));
    assert!(e.contains("not a number"), "{e}");
    let e = error_of(&kql_toml("process.code_signature.trusted:yes"));
    assert!(e.contains("not a boolean"), "{e}");
}

#[test]
fn ranges() {
    let ev = kcc();
    assert!(kql("process.pid >= 702", &ev));
    assert!(kql("process.pid > 701 and process.pid < 703", &ev));
    assert!(!kql("process.pid > 702", &ev));
    assert!(kql("process.args_count <= 3", &ev));
    assert!(!kql("process.args_count < 3", &ev));
    // Keyword ranges compare strings.
    assert!(kql("process.name > kca", &ev));
    assert!(!kql("process.name >= kcd", &ev));
    assert!(kql("process.args < b", &ev));
}

#[test]
fn keyword_values_over_ignore_above_never_match() {
    let long = "x".repeat(1025);
    let limit = "x".repeat(1024);
    let ev = event("/bin/echo", &["echo", &long]);
    assert!(!kql(&format!("process.args:{long}"), &ev));
    assert!(!kql("process.args:x*", &ev));
    assert!(kql("not process.args:x*", &ev));
    assert!(kql(
        &format!("process.args:{limit}"),
        &event("/bin/echo", &[&limit])
    ));
    assert!(!kql("process.args:*", &event("/bin/echo", &[&long])));
    // command_line is a wildcard field: no limit.
    assert!(kql("process.command_line:*xxx", &ev));
    // UTF-16 units count: 600 two-byte chars are 600 units.
    let wide = "é".repeat(600);
    assert!(kql(
        &format!("process.args:{wide}"),
        &event("/bin/echo", &[&wide])
    ));
}

#[test]
fn parents_and_effective_parents() {
    let mut table = Table::default();
    let mut parent = event("/bin/zsh", &["zsh", "-c", "kcc"]);
    parent.target.pid = 700;
    parent.target.cs_flags = Some(0);
    parent.target.signing_id = None;
    table.observe(&parent);
    let mut resp = event(
        "/Applications/Proxyman.app/Contents/MacOS/Proxyman",
        &["Proxyman"],
    );
    resp.target.pid = 600;
    table.observe(&resp);
    let mut ev = kcc();
    ev.responsible_pid = Some(600);
    let set = |q: &str| set_of(&kql_toml(q));
    assert!(matches_with(
        &set("process.parent.name:zsh and process.parent.args:-c"),
        &ev,
        &table
    ));
    assert!(matches_with(
        &set("process.parent.code_signature.exists:false"),
        &ev,
        &table
    ));
    assert!(matches_with(
        &set("process.parent.command_line:\"zsh -c kcc\""),
        &ev,
        &table
    ));
    assert!(matches_with(
        &set(
            "process.Ext.effective_parent.executable:\"/Applications/Proxyman.app/Contents/MacOS/Proxyman\""
        ),
        &ev,
        &table
    ));
    assert!(!matches_with(&set("process.parent.name:bash"), &ev, &table));
}

#[test]
fn nested_and_wildcard_field_queries_are_errors() {
    let e = error_of(&kql_toml("process:{name:kcc}"));
    assert!(e.contains("nested"), "{e}");
    let e = error_of(&kql_toml("process.*:kcc"));
    assert!(e.contains("wildcard field"), "{e}");
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&mut Self)) -> Self;
}
impl Tap for nightjar_proto::ExecEvent<'static> {
    fn tap(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
