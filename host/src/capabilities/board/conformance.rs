//! The board conformance suite: the same behaviour from every backend (the
//! embedded board, and the Planka backend against the loopback Planka stub
//! of `tests/support/planka_stub.rs`), then the Planka protocol cases:
//! logins and the terms step, boards by name, hidden boards, retries, and
//! the answers that must not be repeated.

use super::*;
use std::time::Duration;

#[path = "../../../../tests/support/planka_stub.rs"]
mod planka_stub;

fn new(list: &str, title: &str, labels: &[&str]) -> NewCard {
    NewCard {
        list: list.into(),
        title: title.into(),
        description: "details".into(),
        labels: labels.iter().map(|l| l.to_string()).collect(),
    }
    .checked()
    .unwrap()
}

fn move_to(list: &str) -> CardEdit {
    CardEdit {
        list: Some(list.into()),
        ..CardEdit::default()
    }
    .checked()
    .unwrap()
}

/// What every backend does the same way.
async fn suite(board: &dyn BoardBackend) {
    let names: Vec<String> = board
        .lists()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, DEFAULT_LISTS, "{}", board.name());

    let started = crate::capabilities::now_ms();
    let gap = board
        .create_card(new(
            "blocked",
            "  Gap: ingest lag ",
            &["urgent", "kpi-gap", "urgent"],
        ))
        .await
        .unwrap();
    assert_eq!(gap.list, "Blocked");
    assert_eq!(gap.title, "Gap: ingest lag");
    assert_eq!(gap.description, "details");
    assert_eq!(gap.labels, ["kpi-gap", "urgent"]);
    assert!(gap.list_entered_at_ms + 2_000 >= started, "{gap:?}");
    assert_eq!(board.card(&gap.id).await.unwrap(), gap);
    let other = board
        .create_card(new("Backlog", "Other", &[]))
        .await
        .unwrap();

    let filter = |list: Option<&str>, label: Option<&str>, secs: Option<u64>| CardFilter {
        list: list.map(str::to_string),
        label: label.map(str::to_string),
        in_list_longer_than: secs.map(Duration::from_secs),
        ..CardFilter::default()
    };
    let ids = |cards: Vec<Card>| cards.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(
        ids(board.cards(&filter(None, None, None)).await.unwrap()).len(),
        2
    );
    assert_eq!(
        ids(board
            .cards(&filter(Some("BLOCKED"), None, None))
            .await
            .unwrap()),
        std::slice::from_ref(&gap.id)
    );
    assert_eq!(
        ids(board
            .cards(&filter(None, Some("kpi-gap"), None))
            .await
            .unwrap()),
        std::slice::from_ref(&gap.id)
    );
    assert!(board
        .cards(&filter(None, Some("none"), None))
        .await
        .unwrap()
        .is_empty());
    assert!(board
        .cards(&filter(Some("Blocked"), None, Some(3600)))
        .await
        .unwrap()
        .is_empty());

    // Moves: to another list, then to the list it is in (no change).
    let moved = board.edit_card(&gap.id, move_to("review")).await.unwrap();
    assert_eq!((moved.list.as_str(), moved.labels.len()), ("Review", 2));
    let again = board.edit_card(&gap.id, move_to("Review")).await.unwrap();
    assert_eq!(again.list_entered_at_ms, moved.list_entered_at_ms);
    let renamed = CardEdit {
        title: Some("Gap: ingest lag (2 days)".into()),
        ..CardEdit::default()
    };
    let renamed = board
        .edit_card(&gap.id, renamed.checked().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (renamed.title.as_str(), renamed.list.as_str()),
        ("Gap: ingest lag (2 days)", "Review")
    );

    let comment = board.comment(&gap.id, " looking into it ").await.unwrap();
    assert_eq!(
        (comment.card_id.as_str(), comment.text.as_str()),
        (gap.id.as_str(), "looking into it")
    );
    assert_eq!(board.card(&gap.id).await.unwrap().comments, 1);

    // Bad input: clear errors, nothing changed.
    let err = board
        .create_card(new("Nowhere", "x", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BoardError::NotFound(m) if m.contains("Backlog, In Progress, Blocked")),
        "{err}"
    );
    let edit = CardEdit {
        list: Some("Nope".into()),
        title: Some("lost".into()),
        ..CardEdit::default()
    };
    assert!(matches!(
        board.edit_card(&other.id, edit.checked().unwrap()).await,
        Err(BoardError::NotFound(_))
    ));
    assert_eq!(board.card(&other.id).await.unwrap().title, "Other");
    for id in ["999999", "abc", "../boards/1"] {
        assert!(
            matches!(board.card(id).await, Err(BoardError::NotFound(_))),
            "{id}"
        );
        assert!(
            matches!(board.comment(id, "hi").await, Err(BoardError::NotFound(_))),
            "{id}"
        );
    }
    assert!(matches!(
        board.comment(&gap.id, "  ").await,
        Err(BoardError::Invalid(_))
    ));
    assert_eq!(
        board.cards(&filter(None, None, None)).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn embedded_board_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let board = EmbeddedBoard::open(&dir.path().join("board.db")).unwrap();
    suite(&board).await;
}

fn config(url: &str, auth: PlankaAuth) -> PlankaConfig {
    let mut c = PlankaConfig::new(url, auth, PlankaBoardRef::Id(planka_stub::BOARD_ID.into()));
    c.backoff = Duration::from_millis(10);
    c.timeout = Duration::from_millis(500);
    c
}

fn api_key() -> PlankaAuth {
    PlankaAuth::ApiKey(planka_stub::API_KEY.into())
}

fn password() -> PlankaAuth {
    PlankaAuth::Password {
        username: planka_stub::USER.into(),
        password: planka_stub::PASSWORD.into(),
    }
}

#[tokio::test]
async fn planka_board_passes_the_suite_with_an_api_key() {
    let server = planka_stub::start(false).await;
    let board = PlankaBoard::new(config(&server.url, api_key())).unwrap();
    board.connect().await.unwrap();
    suite(&board).await;
    // Positions are spaced 65 536 apart, in the list's order.
    let backlog = server.stub.list_id("Backlog");
    let second = board
        .create_card(new("Backlog", "second", &[]))
        .await
        .unwrap();
    let positions: Vec<f64> = server
        .stub
        .cards()
        .iter()
        .filter(|c| c["listId"] == backlog.as_str())
        .map(|c| c["position"].as_f64().unwrap())
        .collect();
    assert_eq!(positions, [65_536.0, 131_072.0], "{second:?}");
}

#[tokio::test]
async fn planka_board_passes_the_suite_with_a_password_and_the_terms_step() {
    let server = planka_stub::start(true).await;
    // Without consent the host does not accept terms for a person.
    let refused = PlankaBoard::new(config(&server.url, password())).unwrap();
    let err = refused.connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::Denied(m) if m.contains("--planka-accept-terms")),
        "{err}"
    );
    let mut c = config(&server.url, password());
    c.accept_terms = true;
    let board = PlankaBoard::new(c).unwrap();
    board.connect().await.unwrap();
    assert_eq!(
        server.stub.exactly("POST /api/access-tokens/accept-terms"),
        1
    );
    suite(&board).await;
    // The refused login, then one login for every call.
    assert_eq!(server.stub.exactly("POST /api/access-tokens"), 2);
}

#[tokio::test]
async fn planka_board_by_project_and_name_and_clear_errors_for_the_rest() {
    let server = planka_stub::start(false).await;
    let named = |project: &str, board: &str| {
        let mut c = config(&server.url, api_key());
        c.board = PlankaBoardRef::Named {
            project: project.into(),
            board: board.into(),
        };
        PlankaBoard::new(c).unwrap()
    };
    // Two projects have a board `Ops`: the project decides.
    let board = named("fleet", "OPS");
    board.connect().await.unwrap();
    assert!(server
        .stub
        .requests()
        .contains(&format!("GET /api/boards/{}", planka_stub::BOARD_ID)));
    let err = named("Nope", "Ops").connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::NotFound(m) if m.contains("`Fleet`, `Other`")),
        "{err}"
    );
    let err = named("Fleet", "Dev").connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::NotFound(m) if m.contains("`Ops`")),
        "{err}"
    );

    // A board the user is not a member of is a 404 on Planka.
    let mut c = config(&server.url, api_key());
    c.board = PlankaBoardRef::Id(planka_stub::HIDDEN_BOARD_ID.into());
    let err = PlankaBoard::new(c).unwrap().connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::NotFound(m) if m.contains("not a member")),
        "{err}"
    );

    // A wrong key is a 401 with a hint.
    let wrong = PlankaBoard::new(config(&server.url, PlankaAuth::ApiKey("nope".into()))).unwrap();
    let err = wrong.connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::Unavailable(m) if m.contains("401") && m.contains("API key")),
        "{err}"
    );
    let wrong = PlankaBoard::new(config(
        &server.url,
        PlankaAuth::Password {
            username: planka_stub::USER.into(),
            password: "wrong".into(),
        },
    ))
    .unwrap();
    let err = wrong.connect().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::Unavailable(m) if m.contains("password")),
        "{err}"
    );

    // Labels the board does not have: refused before anything is created.
    let err = board
        .create_card(new("Backlog", "x", &["kpi-gap", "made-up"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BoardError::Invalid(m) if m.contains("made-up") && m.contains("kpi-gap, urgent")),
        "{err}"
    );
    assert!(server.stub.cards().is_empty());

    // A bad URL is refused when the board is built.
    assert!(matches!(
        PlankaBoard::new(config("ftp://x", api_key())),
        Err(BoardError::Invalid(_))
    ));
}

#[tokio::test]
async fn planka_requests_are_retried_only_when_that_is_safe() {
    let server = planka_stub::start(false).await;
    let board = PlankaBoard::new(config(&server.url, api_key())).unwrap();
    board.connect().await.unwrap();

    // Reads: two 500s and a timeout, then an answer.
    server.stub.fail_next(2, 500);
    server.stub.delay_next(1, Duration::from_secs(2));
    assert_eq!(board.lists().await.unwrap().len(), 5);
    // Too many failures: a clear error, after 1 + 3 attempts.
    let before = server.stub.requests().len();
    server.stub.fail_next(4, 502);
    let err = board.lists().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::Unavailable(m) if m.contains("502")),
        "{err}"
    );
    assert_eq!(server.stub.requests().len() - before, 4);

    // Creating a card: a 500 may have been applied, so it is not repeated.
    let snapshot_then_fail = || {
        // The snapshot read goes through; the create gets the failure.
        server.stub.delay_next(1, Duration::ZERO);
    };
    snapshot_then_fail();
    server.stub.fail_next(1, 500);
    let err = board
        .create_card(new("Backlog", "once", &[]))
        .await
        .unwrap_err();
    assert!(matches!(err, BoardError::Unavailable(_)), "{err}");
    assert_eq!(server.stub.count("POST /api/lists/"), 1);
    // A 503 says it was not applied: repeated.
    snapshot_then_fail();
    server.stub.fail_next(1, 503);
    board
        .create_card(new("Backlog", "twice", &[]))
        .await
        .unwrap();
    assert_eq!(server.stub.count("POST /api/lists/"), 3);
    // A timeout on the create: not repeated, and the error says to look.
    snapshot_then_fail();
    server.stub.delay_next(1, Duration::from_secs(2));
    let err = board
        .create_card(new("Backlog", "slow", &[]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BoardError::Unavailable(m) if m.contains("look before retrying")),
        "{err}"
    );

    // A label whose first attach answer was lost: the retry's 409 means done.
    snapshot_then_fail();
    server.stub.delay_next(1, Duration::ZERO);
    server.stub.late_answer_next(1, Duration::from_secs(2));
    let card = board
        .create_card(new("Backlog", "labelled", &["urgent"]))
        .await
        .unwrap();
    assert_eq!(card.labels, ["urgent"]);
    assert_eq!(server.stub.labels_of(&card.id), ["urgent"]);
    assert_eq!(
        server
            .stub
            .count(&format!("POST /api/cards/{}/card-labels", card.id)),
        2
    );

    // A label that cannot be attached: the card is deleted again.
    let cards_before = server.stub.cards().len();
    snapshot_then_fail();
    server.stub.delay_next(1, Duration::ZERO);
    server.stub.fail_next(4, 500);
    let err = board
        .create_card(new("Backlog", "half", &["urgent"]))
        .await
        .unwrap_err();
    assert!(matches!(err, BoardError::Unavailable(_)), "{err}");
    assert_eq!(server.stub.cards().len(), cards_before);
}

#[tokio::test]
async fn planka_card_age_comes_from_list_changed_at_and_an_expired_token_is_renewed() {
    let server = planka_stub::start(false).await;
    let board = PlankaBoard::new(config(&server.url, password())).unwrap();
    let card = board
        .create_card(new("Blocked", "stuck", &[]))
        .await
        .unwrap();
    board.comment(&card.id, "still waiting").await.unwrap();
    server.stub.age_card(&card.id, 50);
    let blocked = |hours: u64| CardFilter {
        list: Some("Blocked".into()),
        in_list_longer_than: Some(Duration::from_secs(hours * 3600)),
        ..CardFilter::default()
    };
    let stuck = board.cards(&blocked(48)).await.unwrap();
    assert_eq!(stuck.len(), 1);
    let age_h = (crate::capabilities::now_ms() - stuck[0].list_entered_at_ms) / 3_600_000;
    assert_eq!(age_h, 50);
    assert!(board.cards(&blocked(51)).await.unwrap().is_empty());

    // The stub forgets its tokens (as after a restart with a new secret):
    // one login again, and the call succeeds.
    server.stub.forget_tokens();
    assert_eq!(board.lists().await.unwrap().len(), 5);
    assert_eq!(server.stub.exactly("POST /api/access-tokens"), 2);
}

#[tokio::test]
async fn planka_unreachable_is_a_clear_error() {
    let mut server = planka_stub::start(false).await;
    let url = server.url.clone();
    server.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let board = PlankaBoard::new(config(&url, api_key())).unwrap();
    // A host starts without its Planka; the board answers unavailable.
    board.connect().await.unwrap();
    let err = board.lists().await.unwrap_err();
    assert!(
        matches!(&err, BoardError::Unavailable(m) if m.contains("unreachable")),
        "{err}"
    );
}

#[test]
fn the_stub_answers_422_without_a_position_as_planka_does() {
    // The backend always sends one; this keeps the stub honest about the
    // trap it reproduces.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let server = planka_stub::start(false).await;
        let list = server.stub.list_id("Backlog");
        let answer = reqwest::Client::new()
            .post(format!("{}/api/lists/{list}/cards", server.url))
            .header("x-api-key", planka_stub::API_KEY)
            .json(&serde_json::json!({"type": "project", "name": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 422);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["message"], "Position must be present");
    });
}
