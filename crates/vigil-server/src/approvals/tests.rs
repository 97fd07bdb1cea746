//! The registry on its own: who may decide, counting approvals, single-use
//! claims, expiry, grants, and reading Bind parameters.

use super::*;

fn registry() -> Arc<Approvals> {
    Approvals::start(AuditLog::disabled(), &[])
}

fn new_request(requester: &str, approvers: Approvers) -> NewRequest {
    NewRequest {
        requester: requester.into(),
        database: "prod".into(),
        rules: vec!["r".into()],
        approvers,
        timeout: Duration::from_secs(60),
        reason: None,
    }
}

fn ask(mode: ApprovalMode, sql: &str) -> StatementAsk {
    StatementAsk {
        session_id: 7,
        mode,
        sql: sql.into(),
        parameters: Vec::new(),
        binding: binding(sql, None),
        statements: json!([]),
    }
}

fn dba() -> Approvers {
    Approvers {
        groups: vec!["dba".into()],
        count: 2,
        ..Approvers::default()
    }
}

const WINDOW: Duration = Duration::from_secs(60);

fn who<'a>(name: &'a str, groups: &'a [String]) -> Approver<'a> {
    Approver { name, groups }
}

#[test]
fn approvals_are_counted_per_person_and_never_self_given() {
    let approvals = registry();
    let (id, mut outcome) = approvals
        .hold(
            new_request("agent", dba()),
            ask(ApprovalMode::Hold, "UPDATE t SET a = 1"),
            10,
        )
        .unwrap();
    let dba_group = vec!["dba".to_owned()];
    let ops = vec!["ops".to_owned()];
    let refused = |r: Result<Value, Refusal>| r.unwrap_err().status;
    assert_eq!(
        refused(approvals.approve(&id, &who("agent", &dba_group), None, WINDOW)),
        403
    );
    assert_eq!(
        refused(approvals.approve(&id, &who("olga", &ops), None, WINDOW)),
        403
    );
    let first = approvals
        .approve(&id, &who("bob", &dba_group), None, WINDOW)
        .unwrap();
    assert_eq!(first["state"], "pending", "one of two: {first}");
    assert_eq!(
        refused(approvals.approve(&id, &who("bob", &dba_group), None, WINDOW)),
        409
    );
    assert!(outcome.try_recv().is_err(), "not decided yet");
    let second = approvals
        .approve(&id, &who("carol", &dba_group), Some("ok".into()), WINDOW)
        .unwrap();
    assert_eq!(second["state"], "approved");
    assert_eq!(outcome.try_recv().unwrap(), Outcome::Approved);
    assert_eq!(
        refused(approvals.deny(&id, &who("dan", &dba_group), "late".into())),
        409
    );
    assert_eq!(
        refused(approvals.approve("nope", &who("bob", &dba_group), None, WINDOW)),
        404
    );
}

#[test]
fn a_refused_statement_runs_once_approved_and_only_the_same_bytes() {
    let approvals = registry();
    let one = |sql: &str| {
        approvals
            .claim(
                new_request("agent", Approvers::default()),
                ask(ApprovalMode::Refuse, sql),
                10,
            )
            .unwrap()
    };
    let Claim::Refused(id) = one("DELETE FROM t WHERE id = 1") else {
        panic!("refused first")
    };
    // Asking again while pending names the same request.
    assert!(matches!(one("DELETE FROM t WHERE id = 1"), Claim::Refused(same) if same == id));
    approvals
        .approve(&id, &who("bob", &[]), None, WINDOW)
        .unwrap();
    assert!(matches!(one("DELETE FROM t WHERE id = 2"), Claim::Refused(other) if other != id));
    assert!(matches!(one("DELETE FROM t WHERE id = 1"), Claim::Run(run) if run == id));
    assert!(matches!(one("DELETE FROM t WHERE id = 1"), Claim::Refused(again) if again != id));
    assert_eq!(approvals.get(&id).unwrap()["state"], "executed");
}

#[test]
fn someone_else_cannot_use_an_approval() {
    let approvals = registry();
    let claim = |who: &str| {
        approvals
            .claim(
                new_request(who, Approvers::default()),
                ask(ApprovalMode::Refuse, "TRUNCATE t"),
                10,
            )
            .unwrap()
    };
    let Claim::Refused(id) = claim("agent") else {
        panic!()
    };
    approvals
        .approve(&id, &who("bob", &[]), None, WINDOW)
        .unwrap();
    assert!(matches!(claim("mallory"), Claim::Refused(_)));
    assert!(matches!(claim("agent"), Claim::Run(_)));
}

#[test]
fn undecided_requests_expire_and_their_sessions_hear_it() {
    let approvals = registry();
    let mut request = new_request("agent", Approvers::default());
    request.timeout = Duration::from_millis(1);
    let (id, outcome) = approvals
        .hold(request, ask(ApprovalMode::Hold, "UPDATE t SET a = 2"), 10)
        .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    approvals.sweep();
    assert_eq!(approvals.get(&id).unwrap()["state"], "expired");
    assert!(matches!(
        outcome.blocking_recv().unwrap(),
        Outcome::Expired { .. }
    ));
}

#[test]
fn a_dropped_wait_withdraws_its_request() {
    let approvals = registry();
    let (id, outcome) = approvals
        .hold(
            new_request("agent", Approvers::default()),
            ask(ApprovalMode::Hold, "UPDATE t SET a = 3"),
            10,
        )
        .unwrap();
    drop(Wait::new(id.clone(), outcome, Arc::clone(&approvals)));
    assert_eq!(approvals.get(&id).unwrap()["state"], "withdrawn");
    assert!(!approvals.withdraw(&id, "again"), "only once");
}

#[test]
fn pending_requests_are_capped() {
    let approvals = registry();
    let hold = |sql: &str| {
        approvals
            .hold(
                new_request("agent", Approvers::default()),
                ask(ApprovalMode::Hold, sql),
                2,
            )
            .map(|(id, _)| id)
    };
    hold("UPDATE t SET a = 1").unwrap();
    hold("UPDATE t SET a = 2").unwrap();
    assert_eq!(hold("UPDATE t SET a = 3").unwrap_err().status, 503);
}

#[test]
fn grants_start_when_approved_and_end_on_time() {
    let approvals = registry();
    let settings = ApprovalSettings {
        grants: serde_json::from_value(json!([{
            "group": "writers",
            "databases": ["prod*"],
            "max_secs": 60,
            "approvers": {"groups": ["dba"]},
            "requesters": {"identity_kinds": ["person"]},
        }]))
        .unwrap(),
        ..ApprovalSettings::default()
    };
    let groups = vec![];
    let person = vigil_policy::Subject {
        name: "alice",
        groups: &groups,
        kind: "person",
    };
    let agent = vigil_policy::Subject {
        name: "agent",
        groups: &groups,
        kind: "agent",
    };
    let asking = |subject: &vigil_policy::Subject<'_>, database: &str, group: &str, secs| {
        approvals.request_grant(
            subject,
            database,
            GrantAsk {
                group: group.into(),
                duration_secs: secs,
            },
            None,
            &settings,
        )
    };
    assert_eq!(
        asking(&agent, "prod", "writers", 10).unwrap_err().status,
        403
    );
    assert_eq!(
        asking(&person, "dev", "writers", 10).unwrap_err().status,
        403
    );
    assert_eq!(
        asking(&person, "prod", "admins", 10).unwrap_err().status,
        403
    );
    assert_eq!(
        asking(&person, "prod", "writers", 61).unwrap_err().status,
        400
    );
    let request = asking(&person, "prod-eu", "writers", 1).unwrap();
    let id = request["id"].as_str().unwrap().to_owned();
    assert_eq!(
        approvals.granted_groups("alice", "prod-eu").0,
        Vec::<String>::new()
    );
    let version = approvals.grants_version();
    let dba_group = vec!["dba".to_owned()];
    approvals
        .approve(&id, &who("bob", &dba_group), None, WINDOW)
        .unwrap();
    assert_ne!(approvals.grants_version(), version);
    assert_eq!(approvals.granted_groups("alice", "prod-eu").0, ["writers"]);
    assert!(
        approvals.granted_groups("alice", "prod").0.is_empty(),
        "one database only"
    );
    std::thread::sleep(Duration::from_millis(1_050));
    approvals.sweep();
    assert!(approvals.granted_groups("alice", "prod-eu").0.is_empty());
    assert!(approvals.grants().is_empty());
}

/// A Bind body: portal, statement, parameter formats, values, result formats.
fn bind(formats: &[i16], values: &[Option<&[u8]>]) -> Vec<u8> {
    let mut body = b"p\0s\0".to_vec();
    body.extend((formats.len() as i16).to_be_bytes());
    for f in formats {
        body.extend(f.to_be_bytes());
    }
    body.extend((values.len() as i16).to_be_bytes());
    for v in values {
        match v {
            Some(v) => {
                body.extend((v.len() as i32).to_be_bytes());
                body.extend(*v);
            }
            None => body.extend((-1i32).to_be_bytes()),
        }
    }
    body.extend(0i16.to_be_bytes());
    body
}

#[test]
fn bind_parameters_are_shown_and_bound_exactly() {
    let text = bind_parameters(&bind(&[], &[Some(b"42"), None])).unwrap();
    assert_eq!(text.shown, [Some("42".to_owned()), None]);
    let binary = bind_parameters(&bind(&[1], &[Some(&[0, 0, 0, 42])])).unwrap();
    assert_eq!(binary.shown, [Some("\\x0000002a".to_owned())]);
    // The same value in another format binds differently.
    let as_text = bind_parameters(&bind(&[0], &[Some(b"\\x0000002a")])).unwrap();
    assert_ne!(
        binding("q", Some(&binary.raw)),
        binding("q", Some(&as_text.raw))
    );
    assert_ne!(binding("q", Some(&text.raw)), binding("q", None));
    // Result formats do not change what runs.
    let mut with_results = bind(&[], &[Some(b"42"), None]);
    with_results.truncate(with_results.len() - 2);
    with_results.extend([0, 1, 0, 1]);
    assert_eq!(bind_parameters(&with_results).unwrap().raw, text.raw);
    assert!(
        bind_parameters(b"p\0s\0\0\0\0\x01\0\0\0\x09ab").is_none(),
        "truncated"
    );
}

mod decoding {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any bytes a client sends as a Bind decode or are refused; none panic.
        #[test]
        fn any_bind_body_decodes_or_is_refused(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Some(parameters) = bind_parameters(&body) {
                prop_assert!(parameters.raw.len() <= body.len());
            }
        }

        /// Well-formed Binds give back every value, in order, and bind to
        /// what was sent: another value never binds the same.
        #[test]
        fn well_formed_binds_show_every_value(
            values in proptest::collection::vec(proptest::option::of("[a-z0-9 ]{0,12}"), 0..8),
            other in "[a-z0-9 ]{0,12}",
        ) {
            let slices: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref().map(str::as_bytes)).collect();
            let decoded = bind_parameters(&bind(&[], &slices)).expect("well formed");
            prop_assert_eq!(&decoded.shown, &values);
            if let Some(first) = values.first() {
                if first.as_deref() != Some(other.as_str()) {
                    let mut changed = slices.clone();
                    changed[0] = Some(other.as_bytes());
                    let again = bind_parameters(&bind(&[], &changed)).expect("well formed");
                    prop_assert_ne!(binding("q", Some(&again.raw)), binding("q", Some(&decoded.raw)));
                }
            }
        }
    }
}
