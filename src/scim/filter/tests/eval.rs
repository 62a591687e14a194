//! Evaluation against realistic resources: every operator on every attribute type, multi-valued and
//! complex attributes, extensions, absence, and the filters real clients send; and `check`.

use super::*;

/// Whether `filter` (lenient syntax) selects `resource` among Users; the filter must also pass `check`.
fn user_matches(filter: &str, resource: &Value) -> bool {
    let schema = user_schema();
    let parsed = f(filter);
    if let Err(e) = check(&parsed, &schema) {
        panic!("{filter:?} should pass check: {e}");
    }
    matches(&parsed, resource, &schema)
}

fn assert_user(resource: &Value, expected: bool, filters: &[&str]) {
    let wrong: Vec<&str> =
        filters.iter().copied().filter(|f| user_matches(f, resource) != expected).collect();
    assert!(wrong.is_empty(), "should {}match: {wrong:#?}", if expected { "" } else { "not " });
}

fn group_matches(filter: &str) -> bool {
    let schema = group_schema();
    let parsed = f(filter);
    check(&parsed, &schema).unwrap();
    matches(&parsed, &sales_group(), &schema)
}

fn check_error(filter: &str) -> String {
    let err = check(&f(filter), &user_schema()).expect_err(filter);
    assert_eq!(err.scim_type, Some(ScimType::InvalidFilter), "{filter}");
    err.detail
}

#[test]
fn strings_compare_case_insensitively_unless_case_exact() {
    let u = bjensen();
    assert_user(
        &u,
        true,
        &[
            r#"userName eq "bjensen@example.com""#,
            r#"userName eq "BJENSEN@EXAMPLE.COM""#,
            r#"USERNAME Eq "BJensen@Example.com""#,
            r#"userName ne "jsmith@example.com""#,
            r#"userName co "JENSEN@""#,
            r#"userName sw "BJ""#,
            r#"userName ew ".COM""#,
            r#"userName co """#,
            r#"userName gt "ajensen""#,
            r#"userName gt "AJENSEN""#,
            r#"userName ge "BJENSEN@EXAMPLE.COM""#,
            r#"userName le "bjensen@example.com""#,
            r#"userName lt "C""#,
            r#"externalId eq "jyoung""#,
            r#"externalId sw "jy""#,
            r#"externalId ne "JYOUNG""#,
            r#"externalId gt "Z""#, // caseExact: lower case sorts after upper case
            &format!(r#"{TEST_EXT_URN}:badge eq "Gold""#),
            r#"profileUrl sw "HTTPS://LOGIN""#,
        ],
    );
    assert_user(
        &u,
        false,
        &[
            r#"userName eq "bjensen""#,
            r#"userName ne "BJENSEN@example.com""#,
            r#"userName co "smith""#,
            r#"userName sw "jensen""#,
            r#"userName ew "example""#,
            r#"userName gt "c""#,
            r#"userName lt "bjensen@example.com""#,
            r#"externalId eq "JYOUNG""#,
            r#"externalId sw "JY""#,
            r#"externalId co "YOUNG""#,
            r#"externalId ew "Young""#,
            r#"badge eq "gold""#,
        ],
    );
}

#[test]
fn non_ascii_strings_fold_case_too() {
    let u = json!({"userName": "Zoë.Müller@Example.com", "externalId": "Ünïcode"});
    assert_user(
        &u,
        true,
        &[
            r#"userName eq "ZOË.MÜLLER@EXAMPLE.COM""#,
            r#"userName co "ë.mü""#,
            r#"userName sw "zoË""#,
            r#"userName ew "LLER@example.COM""#,
            r#"userName gt "ZOE""#,
            r#"externalId eq "Ünïcode""#,
        ],
    );
    assert_user(&u, false, &[r#"externalId eq "ünïcode""#, r#"userName co "oe""#]);
}

#[test]
fn booleans_compare_with_eq_and_ne_and_coerce_strings() {
    let u = bjensen();
    assert_user(
        &u,
        true,
        &[
            "active eq true",
            "active ne false",
            r#"active eq "True""#,
            r#"active eq "TRUE""#,
            "active eq True",
            "verified eq false",
            r#"verified ne "true""#,
            // the stored role has Entra's string "True"
            r#"roles[primary eq "True"]"#,
            "roles[primary eq true]",
            "emails[primary eq true]",
        ],
    );
    assert_user(
        &u,
        false,
        &["active eq false", "active ne true", r#"active eq "False""#, "verified eq true"],
    );
    for filter in [
        "active gt true",
        "active ge false",
        "active lt true",
        "active le true",
        r#"active co "t""#,
        r#"active sw "t""#,
        r#"active ew "e""#,
    ] {
        assert!(check_error(filter).contains("a boolean can only be compared with eq or ne"), "{filter}");
        assert!(!matches(&f(filter), &u, &user_schema()), "{filter}");
    }
    assert!(check_error("active eq 1").contains("true or false"));
    assert!(check_error(r#"active eq "yes""#).contains("true or false"));
    assert!(check_error(r#"emails[primary gt true]"#).contains("boolean"));
}

#[test]
fn integers_and_decimals_compare_numerically() {
    let u = bjensen(); // loginCount 42, score 7.5
    assert_user(
        &u,
        true,
        &[
            "loginCount eq 42",
            "loginCount eq 42.0",
            "loginCount eq 4.2e1",
            r#"loginCount eq "42""#,
            "loginCount ne 41",
            "loginCount gt 9",
            "loginCount gt -100",
            "loginCount ge 42",
            "loginCount lt 100",
            "loginCount le 42",
            "loginCount lt 18446744073709551615",
            "loginCount gt 41.999",
            "score eq 7.5",
            "score gt 7",
            "score lt 8",
            "score ge 7.5",
            "score le 7.50",
            "score ne 7",
            "loginCount co 4",
            "loginCount sw 4",
            "loginCount ew 2",
        ],
    );
    assert_user(
        &u,
        false,
        &[
            "loginCount eq 43",
            "loginCount gt 42",
            "loginCount lt 42",
            "loginCount gt 100",
            "score eq 7",
            "score gt 7.5",
            "loginCount co 5",
        ],
    );
    assert!(check_error(r#"loginCount gt "many""#).contains("number"));
    assert!(check_error("loginCount eq true").contains("number"));
}

#[test]
fn date_times_compare_chronologically_across_offsets() {
    let u = bjensen(); // created 2010-01-23T04:56:22Z, lastModified 2011-05-13T04:42:34.1234567-07:00
    assert_user(
        &u,
        true,
        &[
            r#"meta.created eq "2010-01-23T04:56:22Z""#,
            r#"meta.created eq "2010-01-23T04:56:22.000Z""#,
            r#"meta.created eq "2010-01-22T20:56:22-08:00""#,
            r#"meta.created eq "2010-01-23T06:56:22+02:00""#,
            r#"meta.created ne "2010-01-23T04:56:23Z""#,
            r#"meta.created gt "2010-01-23T04:56:21.9999999Z""#,
            r#"meta.created gt "2010-01-23T05:56:21+02:00""#, // 03:56:21Z
            r#"meta.created lt "2010-01-22T21:00:00-08:00""#, // 05:00Z
            r#"meta.created ge "2010-01-23T04:56:22Z""#,
            r#"meta.created le "2010-01-23T04:56:22Z""#,
            r#"meta.lastModified eq "2011-05-13T11:42:34.1234567Z""#,
            r#"meta.lastModified gt "2011-05-13T11:42:34.1234566Z""#,
            r#"meta.lastModified lt "2011-05-13T11:42:34.1234568Z""#,
            "meta.lastModified gt 2011-05-13T04:42:34-07:00",
            r#"meta.created gt "2010-01-23""#,
            r#"meta.created lt "2010-01-23T05:00:00""#,
            r#"meta.created sw "2010-01""#,
            "lastSeen eq 2024-03-01T11:00:00Z",
        ],
    );
    assert_user(
        &u,
        false,
        &[
            r#"meta.created gt "2010-01-23T04:56:22Z""#,
            r#"meta.created lt "2010-01-23T04:56:22Z""#,
            r#"meta.created eq "2010-01-23T04:56:22+01:00""#,
            r#"meta.created gt "2010-01-23T04:56:22-00:01""#,
            r#"meta.lastModified eq "2011-05-13T04:42:34Z""#,
        ],
    );
    assert!(check_error(r#"meta.created gt "yesterday""#).contains("dateTime"));
    assert!(check_error("meta.created gt 5").contains("dateTime"));
}

#[test]
fn microsoft_reference_filters() {
    let u = entra_user();
    assert_user(
        &u,
        true,
        &[
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.org)",
            "meta.Created gt 2015-10-10T14:38:21.8617979-07:00",
            r#"userName eq "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1""#,
            r#"userName eq "TEST_USER_AB6490EE-1E48-479E-A20B-2D77186B5DD1""#,
            "externalId eq 0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            r#"emails[type eq "work"].value eq "Test_User_fd0ea19b@testuser.example.org""#,
            r#"emails[type eq "work"].value eq "test_user_FD0EA19B@testuser.example.org""#,
        ],
    );
    assert_user(
        &u,
        false,
        &[
            "name.FamilyName eq Employee and (emails.Value co example.com or emails.Value co example.net)",
            "meta.Created gt 2015-10-10T14:38:22.1-07:00",
            r#"userName eq "x""#,
            "externalId eq jyoung",
            r#"emails[type eq "home"].value eq "Test_User_fd0ea19b@testuser.example.org""#,
            r#"emails[type eq "work"].value eq "x@y.com""#,
        ],
    );
    // the user Entra created with `externalId eq jyoung` in mind
    assert_user(
        &bjensen(),
        true,
        &["externalId eq jyoung", r#"emails[type eq "work"].value eq "bjensen@example.com""#],
    );
}

#[test]
fn group_filters_entra_and_okta_send() {
    assert!(group_matches(r#"displayName eq "Sales""#));
    assert!(group_matches(r#"displayName eq "sales""#));
    assert!(group_matches(
        r#"id eq "e9e30dba-f08f-4109-8486-d5c6a331660a" and members eq "2819c223-7f76-453a-919d-413861904646""#
    ));
    assert!(group_matches(r#"members eq "902c246b-6245-4190-8e05-00816be7344a""#));
    assert!(group_matches(r#"members[value eq "902c246b-6245-4190-8e05-00816be7344a"]"#));
    assert!(group_matches(r#"members.value eq "902c246b-6245-4190-8e05-00816be7344a""#));
    assert!(group_matches(r#"members[$ref sw "https://example.com/"]"#));
    assert!(!group_matches(r#"id eq "e9e30dba-f08f-4109-8486-d5c6a331660a" and members eq "nobody""#));
    assert!(!group_matches(r#"id eq "E9E30DBA-F08F-4109-8486-D5C6A331660A""#)); // id is caseExact
    assert!(!group_matches(r#"displayName eq "Marketing""#));
    assert!(!group_matches(r#"userName eq "Sales""#)); // not a Group attribute
}

#[test]
fn multi_valued_attributes_match_when_any_value_does() {
    let u = bjensen();
    assert_user(
        &u,
        true,
        &[
            r#"emails co "jensen.org""#,
            r#"emails eq "BABS@jensen.org""#,
            r#"emails.value eq "babs@jensen.org""#,
            r#"emails.type eq "home""#,
            r#"emails.type ne "home""#, // the work address is not "home"
            r#"emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "home" or primary eq true]"#,
            r#"emails[not (type eq "work")]"#,
            r#"emails[TYPE eq "WORK"]"#,
            "emails pr",
            "emails.primary pr",
            "phoneNumbers[type eq work and value sw 555]",
            r#"tags eq "beta""#,
            r#"tags co "LPH""#,
            r#"x509Certificates eq "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAwTjELMAkGA1UEBhMCVVMx""#,
            r#"addresses[locality eq "hollywood"]"#,
            r#"addresses.postalCode eq null"#,
        ],
    );
    assert_user(
        &u,
        false,
        &[
            r#"emails[type eq "home" and value co "@example.com"]"#,
            r#"emails[type eq "other"]"#,
            r#"emails.type eq "other""#,
            r#"emails.display pr"#,
            "ims pr",
            "groups pr",
            r#"tags eq "gamma""#,
            r#"emails[nope eq "x"]"#,
            r#"addresses.postalCode pr"#,
        ],
    );
}

#[test]
fn complex_and_extension_attributes() {
    let u = bjensen();
    let ent = ENTERPRISE_URN;
    assert_user(
        &u,
        true,
        &[
            r#"name.givenName eq "barbara""#,
            r#"name.familyName sw "Jen""#,
            "name pr",
            r#"department eq "Tour Operations""#,
            &format!(r#"{ent}:department eq "tour operations""#),
            &format!(r#"{}:department eq "Tour Operations""#, ent.to_uppercase()),
            &format!(r#"{ent}:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d""#),
            &format!(r#"{ent}:manager eq "26118915-6090-4610-87e4-49d8ca9f808d""#),
            r#"manager.displayName co "smith""#,
            r#"employeeNumber eq 701984"#, // an unquoted number against a string attribute
            &format!(r#"{USER_URN}:userName eq "bjensen@example.com""#),
            r#"meta.resourceType eq "User""#,
        ],
    );
    assert_user(
        &u,
        false,
        &[
            r#"name.givenName eq "babs""#,
            r#"name.nope eq "x""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:Group:displayName eq "Babs Jensen""#,
            &format!(r#"{ent}:userName eq "bjensen@example.com""#),
            r#"meta.resourceType eq "user""#, // caseExact
            "manager.value eq null",
        ],
    );
    assert!(check_error(r#"name eq "Barbara""#).contains("needs a sub-attribute"));
    assert!(check_error(r#"addresses eq "x""#).contains("needs a sub-attribute"));
}

#[test]
fn absent_null_and_empty_values() {
    let u = bjensen(); // title is "", nickName "Babs", groups [], no ims
    assert_user(
        &u,
        true,
        &[
            "title eq null",
            "ims eq null",
            "groups eq null",
            "nickName ne null",
            "nickName pr",
            "not (title pr)",
            "not (title ne \"x\")", // comparisons need a value
        ],
    );
    assert_user(
        &u,
        false,
        &["title pr", "ims pr", "groups pr", "nickName eq null", "title ne null", r#"title ne "x""#],
    );
    let sparse = json!({"userName": "a", "name": {"givenName": null, "familyName": ""}, "emails": [{}], "active": null});
    assert_user(
        &sparse,
        false,
        &["name pr", "emails pr", "active pr", "active eq false", "active ne true", "name.givenName pr"],
    );
    assert_user(
        &sparse,
        true,
        &["name eq null", "emails eq null", "active eq null", "name.givenName eq null"],
    );
    assert!(check_error("title gt null").contains("null can only be compared with eq or ne"));
}

#[test]
fn unknown_attributes_never_match() {
    let u = bjensen();
    assert_user(
        &u,
        false,
        &["nope eq 1", "nope pr", "nope eq null", "nope ne null", r#"nope[value eq "x"]"#, "urn:x:y:nope pr"],
    );
    assert_user(&u, true, &["not (nope eq 1)", "not (nope pr)", "userName pr or nope pr"]);
    // unknown attributes are not a check error: other clients' custom attributes simply select nothing
    assert!(check(&f("nope gt 1 and x.y co z"), &user_schema()).is_ok());
}

#[test]
fn never_returned_attributes_neither_match_nor_pass_check() {
    let u = bjensen(); // has a password member
    for filter in ["password pr", r#"password eq "t1meMa$heen""#, r#"password sw "t""#] {
        assert!(!matches(&f(filter), &u, &user_schema()), "{filter}");
        assert!(check_error(filter).contains("cannot be used in a filter"), "{filter}");
    }
    assert!(matches(&f(r#"not (password sw "t")"#), &u, &user_schema()));
}

#[test]
fn binary_and_value_path_checks() {
    assert!(check_error(r#"x509Certificates.value gt "M""#).contains("binary"));
    assert!(check(&f(r#"x509Certificates.value eq "M""#), &user_schema()).is_ok());
    for filter in
        [r#"userName[value eq "x"]"#, r#"name[givenName eq "x"]"#, r#"name.givenName[value eq "x"]"#]
    {
        assert!(check_error(filter).contains("multi-valued complex"), "{filter}");
    }
    assert!(check(&f(r#"emails[type eq "work"] and not (nope[x eq 1])"#), &user_schema()).is_ok());
}

#[test]
fn check_errors_name_the_byte_the_offending_expression_starts_at() {
    for (filter, want) in [
        (
            r#"userName eq "x" and active gt true"#,
            "invalid filter at byte 20: `active gt true`: a boolean can only be compared with eq or ne",
        ),
        (
            r#"userName pr or emails[type eq "work" and primary co "t"]"#,
            "invalid filter at byte 41: `primary co \"t\"`: a boolean can only be compared with eq or ne",
        ),
        (
            r#"emails[type eq "work"].primary gt true"#,
            "invalid filter at byte 23: `primary gt true`: a boolean can only be compared with eq or ne",
        ),
        (
            r#"not (PASSWORD sw "t")"#,
            "invalid filter at byte 5: `PASSWORD`: the attribute is never returned, so it cannot be used in a filter",
        ),
        (
            r#"title pr and name[givenName eq "x"]"#,
            "invalid filter at byte 13: `name[...]`: a value filter applies only to a multi-valued complex attribute",
        ),
        (
            "urn:example:params:scim:schemas:extension:test:2.0:User:loginCount lt 2020-01-01",
            "invalid filter at byte 0: `urn:example:params:scim:schemas:extension:test:2.0:User:loginCount lt \
             \"2020-01-01\"`: the attribute is a number",
        ),
    ] {
        assert_eq!(check_error(filter), want, "{filter}");
    }
    // a filter built in code has no text to point into
    let built = Filter::Compare(AttrPath::new("active"), CompareOp::Gt, Literal::Bool(true));
    assert_eq!(
        check(&built, &user_schema()).unwrap_err().detail,
        "invalid filter: `active gt true`: a boolean can only be compared with eq or ne"
    );
}

#[test]
fn stored_member_names_in_another_case_still_match() {
    let u = json!({
        "UserName": "legacy@example.com",
        "Emails": [{"Value": "x@legacy.example.com", "Type": "work"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:user": {"Department": "Ops"}
    });
    assert_user(
        &u,
        true,
        &[
            r#"userName eq "legacy@example.com""#,
            r#"emails[type eq "work"].value ew "legacy.example.com""#,
            r#"department eq "ops""#,
        ],
    );
}

#[test]
fn element_matching_for_patch_filters() {
    let schema = user_schema();
    let emails = schema.resolve(None, "emails").unwrap().def;
    let roles = schema.resolve(None, "roles").unwrap().def;
    let work = json!({"value": "bjensen@example.com", "type": "work", "primary": true});
    assert!(matches_element(&f(r#"type eq "work""#), &work, emails));
    assert!(matches_element(&f(r#"TYPE eq "Work" and primary eq "true""#), &work, emails));
    assert!(matches_element(&f(r#"value eq "BJENSEN@example.com""#), &work, emails));
    assert!(!matches_element(&f(r#"type eq "home""#), &work, emails));
    assert!(!matches_element(&f(r#"emails.type eq "work""#), &work, emails));
    assert!(!matches_element(&f(r#"urn:x:y:type eq "work""#), &work, emails));
    assert!(matches_element(
        &f(r#"primary eq "True""#),
        &json!({"primary": "True", "value": "Admin"}),
        roles
    ));
    assert!(matches_element(&f(r#"primary eq True"#), &json!({"primary": true}), roles));
    assert!(check_element(&f(r#"type eq "work" and primary eq true"#), emails).is_ok());
    assert!(check_element(&f("primary gt true"), emails).is_err());
}
