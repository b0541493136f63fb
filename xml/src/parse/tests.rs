use super::*;
use time::macros::datetime;

const EXAMPLE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
  <Profile Identifier="Administrator" DisplayName_L1="Administrator" />
  <Agent Identifier="Local" URI="https://localhost:5001" />
  <OpenIdClient Identifier="Job" HashedSecret="K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=" DisplayName_L1="Permissions for jobs" Profile="Administrator" ContextId="-2" ExpirationDate="2027-01-01T00:00:00"/>
  <EntityType Identifier="Directory_User"> <Property Identifier="x"/> </EntityType>
</ConfigurationFile>
"#;

fn at(line: u32, column: u32) -> Position {
    Position { line, column }
}

fn wrap(body: &str) -> String {
    format!(
        "<ConfigurationFile xmlns=\"urn:schemas-usercube-com:configuration\">\n{body}\n</ConfigurationFile>\n"
    )
}

fn parse(text: &str) -> Document {
    parse_document("conf.xml", text).unwrap()
}

fn parse_err(text: &str) -> XmlError {
    parse_document("conf.xml", text).unwrap_err()
}

/// The single client of a document made of `body`.
fn client(body: &str) -> OpenIdClient {
    let document = parse(&wrap(body));
    assert_eq!(document.clients.len(), 1, "{document:?}");
    document.clients.into_iter().next().unwrap()
}

#[test]
fn parses_the_example() {
    let document = parse_document("conf/Example.xml", EXAMPLE).unwrap();
    assert_eq!(document.file, "conf/Example.xml");
    assert!(document.warnings.is_empty(), "{:?}", document.warnings);
    assert_eq!(
        document.profiles,
        [Profile {
            identifier: "Administrator".into(),
            display_names: BTreeMap::from([(1, "Administrator".into())]),
            file: "conf/Example.xml".into(),
            position: at(3, 3),
        }]
    );
    assert_eq!(
        document.agents,
        [Agent {
            identifier: "Local".into(),
            uri: Some("https://localhost:5001".into()),
            file: "conf/Example.xml".into(),
            position: at(4, 3),
        }]
    );
    assert_eq!(
        document.clients,
        [OpenIdClient {
            identifier: "Job".into(),
            hashed_secret: Some("K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=".into()),
            display_names: BTreeMap::from([(1, "Permissions for jobs".into())]),
            profile: Some("Administrator".into()),
            context_id: Some("-2".into()),
            context: None,
            expiration_date: Some(datetime!(2027-01-01 00:00:00 UTC)),
            thumbprints: Vec::new(),
            tls_client_auth_subject_dn: None,
            tls_client_auth_san: None,
            audiences: None,
            require_dpop: false,
            file: "conf/Example.xml".into(),
            position: at(5, 3),
        }]
    );
}

#[test]
fn audiences_and_require_dpop_are_read_and_a_bad_boolean_is_an_error() {
    let text = r#"<ConfigurationFile>
  <OpenIdClient Identifier="Job" HashedSecret="x" Audiences="https://a.example, urn:b" RequireDPoP="True"/>
  <OpenIdClient Identifier="Other" HashedSecret="x" Audiences=""/>
</ConfigurationFile>"#;
    let document = parse_document("conf/a.xml", text).unwrap();
    assert_eq!(
        document.clients[0].audiences,
        Some(vec!["https://a.example".to_string(), "urn:b".to_string()])
    );
    assert!(document.clients[0].require_dpop);
    assert_eq!(document.clients[1].audiences, Some(Vec::new()));
    assert!(!document.clients[1].require_dpop);
    let bad = r#"<OpenIdClient Identifier="Job" HashedSecret="x" RequireDPoP="yes"/>"#;
    let err = parse_document("conf/b.xml", bad).unwrap_err().to_string();
    assert!(
        err.contains("conf/b.xml:1:1") && err.contains("RequireDPoP `yes` is not a boolean"),
        "{err}"
    );
}

#[test]
fn collects_at_any_depth_and_ignores_everything_else() {
    let text = r#"<?xml version="1.0"?>
<!DOCTYPE ConfigurationFile>
<?some-instruction <OpenIdClient Identifier="InPI"/> ?>
<ConfigurationFile xmlns="urn:schemas-usercube-com:configuration">
  <!-- <OpenIdClient Identifier="Commented"/> -->
  <![CDATA[ <OpenIdClient Identifier="InCData"/> ]]>
  text &amp; more text &#x41;
  <EntityType Identifier="Directory_User">
    <Property Identifier="x" TargetEntityType="Directory_User"/>
    <Deep><Deeper><OpenIdClient Identifier="Nested" Profile="Reader">
      <Profile Identifier="InsideClient"/>
    </OpenIdClient></Deeper></Deep>
  </EntityType>
  <OpenIdClients Identifier="NotIt"/><ProfileRule Identifier="NotIt"/><AgentX Identifier="NotIt"/>
  <Agent Identifier="A1"/>
</ConfigurationFile>
"#;
    let document = parse(text);
    let clients: Vec<(&str, Position)> = document
        .clients
        .iter()
        .map(|c| (c.identifier.as_str(), c.position))
        .collect();
    assert_eq!(clients, [("Nested", at(10, 19))]);
    let profiles: Vec<(&str, Position)> = document
        .profiles
        .iter()
        .map(|p| (p.identifier.as_str(), p.position))
        .collect();
    assert_eq!(profiles, [("InsideClient", at(11, 7))]);
    let agents: Vec<&str> = document
        .agents
        .iter()
        .map(|a| a.identifier.as_str())
        .collect();
    assert_eq!(agents, ["A1"]);
    assert!(document.warnings.is_empty(), "{:?}", document.warnings);
}

#[test]
fn keeps_file_order() {
    let document = parse(&wrap(
        r#"<OpenIdClient Identifier="B"/><OpenIdClient Identifier="A"/><X><OpenIdClient Identifier="C"/></X>"#,
    ));
    let ids: Vec<&str> = document
        .clients
        .iter()
        .map(|c| c.identifier.as_str())
        .collect();
    assert_eq!(ids, ["B", "A", "C"]);
}

#[test]
fn namespace_prefixes_are_ignored() {
    let text = r#"<u:ConfigurationFile xmlns:u="urn:schemas-usercube-com:configuration">
  <u:OpenIdClient Identifier="Job" xmlns:x="urn:other" x:Note="ignored" u:Extra="ignored" />
  <other:Profile xmlns:other="urn:whatever" Identifier="P"></other:Profile>
</u:ConfigurationFile>"#;
    let document = parse(text);
    assert_eq!(document.clients.len(), 1);
    assert_eq!(document.clients[0].identifier, "Job");
    assert_eq!(document.clients[0].position, at(2, 3));
    assert_eq!(document.profiles[0].identifier, "P");
    assert!(document.warnings.is_empty(), "{:?}", document.warnings);
}

#[test]
fn element_positions_after_every_kind_of_markup() {
    // Each collected element follows a different construct, with nothing in between.
    let text = "<R><!--c--><Agent Identifier=\"1\"/><?pi x?><Agent Identifier=\"2\"/>\
                <![CDATA[x]]><Agent Identifier=\"3\"/>&amp;<Agent Identifier=\"4\"/>\
                t<Agent Identifier=\"5\"/><Agent Identifier=\"6\"></Agent><Agent Identifier=\"7\"/></R>";
    let document = parse(text);
    for agent in &document.agents {
        let offset = usize::try_from(agent.position.column - 1).unwrap();
        assert!(
            text[offset..].starts_with(&format!("<Agent Identifier=\"{}\"", agent.identifier)),
            "agent {} at {:?}",
            agent.identifier,
            agent.position
        );
    }
    assert_eq!(document.agents.len(), 7);
}

#[test]
fn columns_count_characters_not_bytes() {
    let document = parse("<R><!-- é€😀 --><Agent Identifier=\"é\"/></R>");
    // `<R>` 3 + `<!-- é€😀 -->` 12 characters: the `<` is the 16th character.
    assert_eq!(document.agents[0].position, at(1, 16));
    assert_eq!(document.agents[0].identifier, "é");
}

#[test]
fn mismatched_end_tag_is_located() {
    let text =
        "<ConfigurationFile>\n  <Profile Identifier=\"A\">\n    </Foo>\n</ConfigurationFile>\n";
    let error = parse_err(text);
    assert_eq!(
        (error.file.as_str(), error.line, error.column),
        ("conf.xml", 3, 5)
    );
    assert!(error.to_string().starts_with("conf.xml:3:5: "), "{error}");
    assert!(
        error.message.contains("`</Profile>`") && error.message.contains("`</Foo>`"),
        "{error}"
    );
}

#[test]
fn unmatched_end_tag_is_located() {
    let error = parse_err("<R/>\n</R>");
    assert_eq!((error.line, error.column), (2, 1), "{error}");
    assert!(error.message.contains("`</R>`"), "{error}");
}

#[test]
fn truncated_inside_a_tag() {
    let text =
        "<ConfigurationFile>\n  <Profile Identifier=\"A\"/>\n  <OpenIdClient Identifier=\"Jo";
    let error = parse_err(text);
    assert_eq!((error.line, error.column), (3, 3), "{error}");
    assert!(error.message.contains("not closed"), "{error}");
}

#[test]
fn truncated_between_tags() {
    let text = "<ConfigurationFile>\n  <X>\n  <Profile Identifier=\"A\"/>\n";
    let error = parse_err(text);
    // Located at the end of the text, naming the innermost open element.
    assert_eq!((error.line, error.column), (4, 1), "{error}");
    assert!(
        error.message.contains("`<X>` opened at 2:3 is not closed"),
        "{error}"
    );
}

#[test]
fn truncated_in_a_comment() {
    let error = parse_err("<R>\n<!-- never closed <Agent Identifier=\"A\"/>");
    assert_eq!((error.line, error.column), (2, 1), "{error}");
    assert!(error.message.contains("comment"), "{error}");
}

#[test]
fn empty_document_is_an_error() {
    let error = parse_err("");
    assert_eq!((error.line, error.column), (1, 1));
    assert!(error.message.contains("no root element"), "{error}");
    let error = parse_err("<?xml version=\"1.0\"?>\n<!-- nothing -->\n");
    assert!(error.message.contains("no root element"), "{error}");
}

#[test]
fn bad_attribute_syntax_is_located() {
    let error = parse_err("<R>\n  <EntityType Identifier=Directory_User/>\n</R>");
    // At the unquoted value, even in an ignored element.
    assert_eq!((error.line, error.column), (2, 26), "{error}");
    assert!(error.message.contains("enclosed"), "{error}");

    let error = parse_err("<R>\n<Agent Identifier/>\n</R>");
    assert_eq!(error.line, 2, "{error}");
    assert!(error.message.contains("`=`"), "{error}");
}

#[test]
fn duplicate_attribute_is_an_error() {
    let error = parse_err("<R>\n<Agent Identifier=\"A\" URI=\"x\" URI=\"y\"/>\n</R>");
    assert_eq!((error.line, error.column), (2, 31), "{error}");
    assert!(
        error.message.contains("duplicate attribute `URI`"),
        "{error}"
    );

    // A case-only duplicate is the same attribute too.
    let error = parse_err("<R>\n<Agent Identifier=\"A\" URI=\"x\" Uri=\"y\"/>\n</R>");
    assert_eq!((error.line, error.column), (2, 1), "{error}");
    assert!(
        error.message.contains("`Uri`") && error.message.contains("`URI`"),
        "{error}"
    );
}

#[test]
fn attribute_values_are_unescaped() {
    let c = client(
        r#"<OpenIdClient Identifier="A&amp;B" DisplayName_L1="&lt;Jobs&gt; &quot;x&quot; &apos;y&apos; &#65;&#x42;" Context="a&#10;b"/>"#,
    );
    assert_eq!(c.identifier, "A&B");
    assert_eq!(c.display_names[&1], "<Jobs> \"x\" 'y' AB");
    assert_eq!(c.context.as_deref(), Some("a\nb"));
}

/// XML 1.0 section 3.3.3 (done by quick-xml since 0.41, and by .NET's reader): a literal tab, CR or
/// LF in an attribute value reads as a space; a character reference keeps the character.
#[test]
fn attribute_values_are_normalised() {
    let c = client(
        "<OpenIdClient Identifier=\"A\" DisplayName_L1=\"Jobs\tand\r\nrest\" Context=\"a&#9;b\"/>",
    );
    assert_eq!(c.display_names[&1], "Jobs and rest");
    assert_eq!(c.context.as_deref(), Some("a\tb"));
}

#[test]
fn bad_escape_is_an_error_at_the_element() {
    let error = parse_err(&wrap(
        r#"  <OpenIdClient Identifier="Job" DisplayName_L1="Tom &amp Jerry"/>"#,
    ));
    assert_eq!((error.line, error.column), (2, 3), "{error}");
    assert!(error.message.contains("DisplayName_L1"), "{error}");

    let error = parse_err(&wrap(r#"<Other Name="&nbsp;"/>"#));
    assert_eq!((error.line, error.column), (2, 1), "{error}");
    assert!(error.message.contains("unknown entity `&nbsp;`"), "{error}");

    let error = parse_err(&wrap(r#"<Other Name="&#xD800;"/>"#));
    assert!(error.message.contains("character reference"), "{error}");
}

#[test]
fn unknown_entity_in_text_is_an_error() {
    let error = parse_err("<R>\n  some &nbsp; text\n</R>");
    assert_eq!((error.line, error.column), (2, 8), "{error}");
    assert!(error.message.contains("`&nbsp;`"), "{error}");
    let error = parse_err("<R>\n  a & b\n</R>");
    assert_eq!(error.line, 2, "{error}");
    // A DOCTYPE may declare entities: text is ignored anyway.
    assert!(
        parse_document(
            "a.xml",
            "<!DOCTYPE R [<!ENTITY nbsp \"&#160;\">]><R>&nbsp;</R>"
        )
        .is_ok()
    );
}

#[test]
fn expiration_date_formats() {
    let cases = [
        ("2027-01-01T00:00:00", datetime!(2027-01-01 00:00:00 UTC)),
        (
            "2027-01-01T12:30:15.250",
            datetime!(2027-01-01 12:30:15.25 UTC),
        ),
        ("2027-01-01T12:30:15Z", datetime!(2027-01-01 12:30:15 UTC)),
        (
            "2027-01-01T12:30:15.5Z",
            datetime!(2027-01-01 12:30:15.5 UTC),
        ),
        (
            "2027-01-01T12:30:15+02:00",
            datetime!(2027-01-01 12:30:15 +02:00),
        ),
        ("2027-01-01", datetime!(2027-01-01 00:00:00 UTC)),
    ];
    for (text, expected) in cases {
        let c = client(&format!(
            r#"<OpenIdClient Identifier="Job" ExpirationDate="{text}"/>"#
        ));
        assert_eq!(c.expiration_date, Some(expected), "{text}");
    }
    assert_eq!(
        client(r#"<OpenIdClient Identifier="Job"/>"#).expiration_date,
        None
    );
}

#[test]
fn bad_expiration_date_is_an_error() {
    let error = parse_err(&wrap(
        r#"<OpenIdClient Identifier="Job" ExpirationDate="xyz"/>"#,
    ));
    assert_eq!(
        error.to_string(),
        "conf.xml:2:1: OpenIdClient `Job`: ExpirationDate `xyz` is not a date (expected e.g. 2027-01-01T00:00:00)"
    );
    let error = parse_err(&wrap(
        r#"<OpenIdClient Identifier="Job" ExpirationDate="31/12/2027"/>"#,
    ));
    assert!(
        error.message.contains("`31/12/2027` is not a date"),
        "{error}"
    );
}

#[test]
fn missing_or_empty_identifier() {
    for element in ["OpenIdClient", "Profile", "Agent"] {
        let error = parse_err(&wrap(&format!("  <{element} DisplayName_L1=\"x\" />")));
        assert_eq!(
            error.to_string(),
            format!("conf.xml:2:3: {element} has no Identifier attribute"),
        );
        let error = parse_err(&wrap(&format!("<{element} Identifier=\"  \"/>")));
        assert_eq!((error.line, error.column), (2, 1), "{error}");
        assert!(
            error
                .message
                .starts_with(&format!("{element} has no Identifier attribute")),
            "{error}"
        );
    }
    // Other elements do not need one.
    assert!(parse_document("a.xml", &wrap("<EntityType/>")).is_ok());
}

#[test]
fn unknown_attribute_warns_with_did_you_mean() {
    let document = parse(&wrap(
        r#"<OpenIdClient Identifier="Job" HashedSecrt="abc" Colour="red"/>
<Agent Identifier="A" Uril="x"/>"#,
    ));
    assert_eq!(
        document.warnings,
        [
            "conf.xml:2:1: OpenIdClient `Job`: unknown attribute `HashedSecrt` ignored; did you mean `HashedSecret`?",
            "conf.xml:2:1: OpenIdClient `Job`: unknown attribute `Colour` ignored",
            "conf.xml:3:1: Agent `A`: unknown attribute `Uril` ignored; did you mean `URI`?",
        ]
    );
    // The element itself is kept, without the unknown attributes.
    assert_eq!(document.clients[0].hashed_secret, None);
    assert_eq!(document.agents[0].uri, None);
}

#[test]
fn display_name_languages() {
    let document = parse(&wrap(
        r#"<Profile Identifier="P" DisplayName_L1="one" DisplayName_L16="sixteen" DisplayName_L17="x" DisplayName_L0="y" DisplayName_L999="z"/>"#,
    ));
    let profile = &document.profiles[0];
    assert_eq!(
        profile.display_names,
        BTreeMap::from([(1, "one".to_owned()), (16, "sixteen".to_owned())])
    );
    assert_eq!(
        document.warnings,
        [
            "conf.xml:2:1: DisplayName_L17 ignored: languages go from _L1 to _L16",
            "conf.xml:2:1: DisplayName_L0 ignored: languages go from _L1 to _L16",
            "conf.xml:2:1: DisplayName_L999 ignored: languages go from _L1 to _L16",
        ]
    );
    // Agents have no display names.
    let document = parse(&wrap(r#"<Agent Identifier="A" DisplayName_L1="x"/>"#));
    assert_eq!(document.warnings.len(), 1, "{:?}", document.warnings);
    assert!(document.warnings[0].contains("unknown attribute `DisplayName_L1`"));
}

#[test]
fn case_only_differences_are_accepted_silently() {
    let document = parse(&wrap(
        r#"<OpenIdClient identifier="Job" hashedSecret="s" PROFILE="P" contextId="1" context="c" expirationdate="2027-01-01" displayname_l2="deux"/>
<Agent Identifier="A" Uri="https://x"/>"#,
    ));
    assert!(document.warnings.is_empty(), "{:?}", document.warnings);
    let c = &document.clients[0];
    assert_eq!(c.identifier, "Job");
    assert_eq!(c.hashed_secret.as_deref(), Some("s"));
    assert_eq!(c.profile.as_deref(), Some("P"));
    assert_eq!(c.context_id.as_deref(), Some("1"));
    assert_eq!(c.context.as_deref(), Some("c"));
    assert_eq!(c.expiration_date, Some(datetime!(2027-01-01 00:00:00 UTC)));
    assert_eq!(c.display_names[&2], "deux");
    assert_eq!(document.agents[0].uri.as_deref(), Some("https://x"));
}

#[test]
fn bom_is_skipped() {
    let text = format!("\u{feff}{}", "<Agent Identifier=\"A\"/>");
    let document = parse(&text);
    assert_eq!(document.agents[0].position, at(1, 1));
    let text = format!("\u{feff}{EXAMPLE}");
    assert_eq!(parse(&text).clients[0].position, at(5, 3));
    // Errors are located as if the BOM were not there.
    let error = parse_err("\u{feff}<R></S>");
    assert_eq!((error.line, error.column), (1, 4), "{error}");
}

#[test]
fn crlf_line_endings() {
    let text = EXAMPLE.replace('\n', "\r\n");
    let document = parse(&text);
    assert_eq!(document.profiles[0].position, at(3, 3));
    assert_eq!(document.agents[0].position, at(4, 3));
    assert_eq!(document.clients[0].position, at(5, 3));
    let error = parse_err("<R>\r\n\r\n  <A>\r\n  </B>\r\n</R>\r\n");
    assert_eq!((error.line, error.column), (4, 3), "{error}");
    // Old Mac line endings too.
    let document = parse("<R>\r\r  <Agent Identifier=\"A\"/></R>");
    assert_eq!(document.agents[0].position, at(3, 3));
}

#[test]
fn large_document_is_parsed_in_one_pass() {
    let mut body = String::new();
    for i in 0..20_000 {
        body.push_str(&format!(
            "  <OpenIdClient Identifier=\"c{i}\" HashedSecret=\"s\" DisplayName_L1=\"Client {i}\"/>\n  <EntityType Identifier=\"e{i}\"><Property Identifier=\"p\"/></EntityType>\n"
        ));
    }
    let document = parse(&wrap(&body));
    assert_eq!(document.clients.len(), 20_000);
    let last = document.clients.last().unwrap();
    assert_eq!(last.identifier, "c19999");
    assert_eq!(last.position, at(2 + 2 * 19_999, 3));
}

/// Random truncations and byte mutations of a realistic file never panic the parser, and every error
/// carries a line and column inside the text.
#[test]
fn mutated_documents_never_panic() {
    let base = "<?xml version=\"1.0\"?>\n<ConfigurationFile xmlns=\"urn:x\">\n  <Profile Identifier=\"Administrator\" DisplayName_L1=\"A &amp; B\"/>\n  <OpenIdClient Identifier=\"Job\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" Profile=\"Administrator\" ExpirationDate=\"2027-01-01\"/>\n  <!-- c --><![CDATA[x]]><Agent Identifier=\"A\" URI=\"https://h\"/>\n</ConfigurationFile>\n";
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = [
        '<', '>', '/', '"', '=', '&', ';', 'a', ' ', '\n', '\r', 'é', '!', '?',
    ];
    for _ in 0..5_000 {
        let mut text: Vec<char> = base.chars().collect();
        for _ in 0..(1 + next() % 4) {
            let pos = (next() as usize) % (text.len() + 1);
            let c = alphabet[(next() as usize) % alphabet.len()];
            match next() % 4 {
                0 if pos < text.len() => text[pos] = c,
                1 if pos < text.len() => {
                    text.remove(pos);
                }
                2 => text.truncate(pos),
                _ => text.insert(pos, c),
            }
        }
        let text: String = text.into_iter().collect();
        if let Err(e) = crate::parse_document("f.xml", &text) {
            let lines = text.split('\n').count() as u32 + 1;
            assert!(e.line >= 1 && e.line <= lines, "{e} for {text:?}");
            assert!(e.column >= 1, "{e}");
        }
    }
}

#[test]
fn thumbprints_and_tls_client_auth_attributes() {
    let c = client(
        r#"<OpenIdClient Identifier="Poller2" Thumbprints="pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4, AB12;  x  " TlsClientAuthSan="urn:ids:client:Poller2" TlsClientAuthSubjectDn=" "/>"#,
    );
    assert_eq!(
        c.thumbprints,
        ["pnI6EWkiTbazjikJXRkLmjml5wvVECYtQduJUjS4QK4", "AB12", "x"]
    );
    assert_eq!(
        c.tls_client_auth_san.as_deref(),
        Some("urn:ids:client:Poller2")
    );
    assert_eq!(c.tls_client_auth_subject_dn, None);
    assert_eq!(c.hashed_secret, None);
}
