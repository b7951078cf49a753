//! A real legacy app end to end (issue 19): Radicale, a CalDAV server that
//! trusts its reverse proxy's `X-Remote-User` (`[auth] type =
//! http_x_remote_user`, `[rights] type = owner_only`), behind portcullis with
//! the `radicale` identity preset (SPEC §11). Signed-in users reach their own
//! calendars and no one else's; a client-sent `X-Remote-User`, in any spelling
//! Radicale accepts, never speaks for anyone.
//!
//! Radicale is the Debian package (`apt-get install radicale`, 3.1.8 on
//! Debian 12), run as a child process on a loopback port of its own.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use crate::support::stack::{free_port, Browser, Page, Stack, StackOptions};
use crate::support::{client, full, ChildGuard};

/// A running Radicale with its own storage; killed on drop.
struct Radicale {
    child: ChildGuard,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Radicale {
    /// Starts Radicale on a free loopback port and waits until it answers.
    async fn start() -> Radicale {
        // `free_port` releases the port before Radicale binds it, and a
        // parallel test can take it meanwhile: Radicale then exits, and we retry.
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::try_start(free_port()).await {
                Ok(radicale) => return radicale,
                Err(log) => last_log = log,
            }
        }
        panic!("Radicale did not start (five attempts); its last log:\n{last_log}");
    }

    /// One attempt on `port`: the running server, or Radicale's log when it
    /// exited or never answered.
    async fn try_start(port: u16) -> Result<Radicale, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("config");
        let log_path = dir.path().join("radicale.log");
        std::fs::write(
            &config,
            format!(
                "[server]\n\
                 hosts = 127.0.0.1:{port}\n\
                 [auth]\n\
                 type = http_x_remote_user\n\
                 [rights]\n\
                 type = owner_only\n\
                 [storage]\n\
                 filesystem_folder = {collections}\n\
                 [logging]\n\
                 level = warning\n",
                collections = dir.path().join("collections").display(),
            ),
        )
        .expect("write Radicale's config");
        let log = std::fs::File::create(&log_path).expect("create Radicale's log");
        // The `radicale` script of the Debian package runs the system Python
        // (`/usr/bin/python3`), which is where the package's module lives.
        let spawned = Command::new("radicale")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => ChildGuard(child),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "radicale is not installed: apt-get install radicale \
                 (CI installs it through `bash tests/run.sh --deps-only`)"
            ),
            Err(error) => panic!("cannot run radicale: {error}"),
        };
        let mut radicale = Radicale {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..200 {
            if let Ok(Some(status)) = radicale.child.0.try_wait() {
                return Err(format!("exited with {status}:\n{}", read_log(&log_path)));
            }
            if radicale.answers().await {
                return Ok(radicale);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "no answer on port {port} within 10 s:\n{}",
            read_log(&log_path)
        ))
    }

    /// Radicale's own web page answers on our port (not some other server
    /// that took the port first).
    async fn answers(&self) -> bool {
        let Ok(req) = http::Request::get(format!("{}/.web/", self.url())).body(full("")) else {
            return false;
        };
        let Ok(resp) = client().request(req).await else {
            return false;
        };
        let ok = resp.status() == StatusCode::OK;
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        ok && String::from_utf8_lossy(&body).contains("Radicale")
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Portcullis in front of `radicale`: every path goes to it, with the
/// `radicale` preset's `X-Remote-User: <preferred_username>`.
async fn stack_in_front_of(radicale: &Radicale) -> Stack {
    let extra = format!(
        r#"
[upstreams.radicale]
url = "{url}"
identity_preset = "radicale"

[[route]]
name = "caldav"
path = "/"
upstream = "radicale"
"#,
        url = radicale.url()
    );
    Stack::start_with(StackOptions {
        extra,
        ..StackOptions::default()
    })
    .await
}

/// A browser signed in as `user` the way a person does: open Radicale's web
/// page, sign in at the provider, land back on Radicale's page.
async fn sign_in(stack: &Stack, user: &str) -> Browser {
    let mut browser = Browser::default();
    let landed = browser.sign_in(&stack.url("/.web/"), user).await;
    assert_eq!(
        landed.status,
        StatusCode::OK,
        "{user}'s sign-in lands on Radicale's web page: {}",
        landed.body
    );
    assert!(
        landed.body.contains("Radicale Web Interface"),
        "{user} lands on Radicale's own page: {}",
        landed.body
    );
    browser
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a method token")
}

const MEETING: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//portcullis//radicale test//EN\r\n\
BEGIN:VEVENT\r\n\
UID:meeting-1@portcullis.test\r\n\
DTSTAMP:20240101T090000Z\r\n\
DTSTART:20240102T100000Z\r\n\
DTEND:20240102T110000Z\r\n\
SUMMARY:Quarterly planning\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

/// The same event (same UID) with another summary: what a forger would write.
fn forged_meeting() -> String {
    MEETING.replace("Quarterly planning", "Forged by mallory")
}

const CALENDAR: &[(&str, &str)] = &[("content-type", "text/calendar; charset=utf-8")];

async fn mkcalendar(browser: &mut Browser, stack: &Stack, path: &str) -> Page {
    browser
        .request(method("MKCALENDAR"), &stack.url(path), &[], "")
        .await
}

async fn put_event(
    browser: &mut Browser,
    stack: &Stack,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Page {
    let headers = [CALENDAR, headers].concat();
    browser
        .request(Method::PUT, &stack.url(path), &headers, body)
        .await
}

async fn get_event(browser: &mut Browser, stack: &Stack, headers: &[(&str, &str)]) -> Page {
    let headers = [&[("accept", "text/calendar")][..], headers].concat();
    browser
        .request(
            Method::GET,
            &stack.url("/alice/work/meeting.ics"),
            &headers,
            "",
        )
        .await
}

async fn propfind(
    browser: &mut Browser,
    stack: &Stack,
    path: &str,
    headers: &[(&str, &str)],
) -> Page {
    let headers = [&[("depth", "1")][..], headers].concat();
    browser
        .request(method("PROPFIND"), &stack.url(path), &headers, "")
        .await
}

/// The principal Radicale says the request was made by, from a PROPFIND answer.
fn principal(page: &Page) -> &str {
    let start = "<current-user-principal><href>";
    let rest = page
        .body
        .split_once(start)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("no current-user-principal in {}", page.body));
    rest.split_once("</href>").map_or(rest, |(href, _)| href)
}

/// Alice signs in, creates `/alice/work/` and puts the meeting in it.
async fn alice_publishes_the_meeting(stack: &Stack) -> Browser {
    let mut alice = sign_in(stack, "alice").await;
    let created = mkcalendar(&mut alice, stack, "/alice/work/").await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "alice creates her calendar: {}",
        created.body
    );
    let put = put_event(&mut alice, stack, "/alice/work/meeting.ics", &[], MEETING).await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "alice puts an event in her calendar: {}",
        put.body
    );
    alice
}

/// The event as alice reads it: 200 and still the original text.
async fn assert_meeting_intact(alice: &mut Browser, stack: &Stack, when: &str) {
    let page = get_event(alice, stack, &[]).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "{when}: alice reads her event: {}",
        page.body
    );
    assert!(
        page.body.contains("UID:meeting-1@portcullis.test")
            && page.body.contains("SUMMARY:Quarterly planning"),
        "{when}: the event is alice's original: {}",
        page.body
    );
    assert!(
        !page.body.contains("mallory"),
        "{when}: nothing forged got into alice's calendar: {}",
        page.body
    );
}

/// The spellings of Radicale's header a client might send, each claiming to
/// be alice: Radicale 3.1.8 reads the underscore one too.
const FORGED: &[&[(&str, &str)]] = &[
    &[("X-Remote-User", "alice")],
    &[("X_Remote_User", "alice")],
    &[("x-remote-user", "alice"), ("x-remote-user", "alice")],
    &[("X-REMOTE-USER", "alice"), ("X_Remote_User", "alice")],
];

#[tokio::test]
async fn each_user_reaches_only_their_own_calendars() {
    let radicale = Radicale::start().await;
    let stack = stack_in_front_of(&radicale).await;

    let mut alice = alice_publishes_the_meeting(&stack).await;
    let event = get_event(&mut alice, &stack, &[]).await;
    assert_eq!(
        event.status,
        StatusCode::OK,
        "alice reads her event: {}",
        event.body
    );
    assert!(
        event
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/calendar")),
        "Radicale serves the event as text/calendar: {:?}",
        event.headers
    );
    assert!(
        event.body.contains("SUMMARY:Quarterly planning"),
        "the event alice put is the event she reads: {}",
        event.body
    );
    let listing = propfind(&mut alice, &stack, "/alice/", &[]).await;
    assert_eq!(
        listing.status.as_u16(),
        207,
        "PROPFIND on alice's home is a multistatus: {}",
        listing.body
    );
    assert!(
        listing.body.contains("<href>/alice/work/</href>"),
        "alice's home lists her work calendar: {}",
        listing.body
    );
    assert_eq!(
        principal(&listing),
        "/alice/",
        "Radicale saw alice's preferred_username"
    );

    let mut bob = sign_in(&stack, "bob").await;
    let read = get_event(&mut bob, &stack, &[]).await;
    assert_eq!(
        read.status,
        StatusCode::FORBIDDEN,
        "owner_only: bob cannot read alice's event: {}",
        read.body
    );
    let listed = propfind(&mut bob, &stack, "/alice/", &[]).await;
    assert_eq!(
        listed.status,
        StatusCode::FORBIDDEN,
        "owner_only: bob cannot list alice's home: {}",
        listed.body
    );
    let overwrite = put_event(
        &mut bob,
        &stack,
        "/alice/work/meeting.ics",
        &[],
        &forged_meeting(),
    )
    .await;
    assert_eq!(
        overwrite.status,
        StatusCode::FORBIDDEN,
        "owner_only: bob cannot overwrite alice's event: {}",
        overwrite.body
    );
    let added = put_event(
        &mut bob,
        &stack,
        "/alice/work/bob.ics",
        &[],
        &forged_meeting(),
    )
    .await;
    assert_eq!(
        added.status,
        StatusCode::FORBIDDEN,
        "owner_only: bob cannot add to alice's calendar: {}",
        added.body
    );
    let own = mkcalendar(&mut bob, &stack, "/bob/home/").await;
    assert_eq!(
        own.status,
        StatusCode::CREATED,
        "bob creates his own calendar: {}",
        own.body
    );

    // Bob's session with a client-sent claim to be alice: the proxy strips
    // every spelling and sends its own `X-Remote-User: bob`.
    for forged in FORGED {
        let read = get_event(&mut bob, &stack, forged).await;
        assert_eq!(
            read.status,
            StatusCode::FORBIDDEN,
            "bob's session with {forged:?} still reads as bob: {}",
            read.body
        );
        let write = put_event(
            &mut bob,
            &stack,
            "/alice/work/meeting.ics",
            forged,
            &forged_meeting(),
        )
        .await;
        assert_eq!(
            write.status,
            StatusCode::FORBIDDEN,
            "bob's session with {forged:?} still writes as bob: {}",
            write.body
        );
        // A header left in would reach Radicale beside the proxy's and make
        // the user `bob,alice` or `alice`: the principal shows exactly bob.
        let home = propfind(&mut bob, &stack, "/bob/", forged).await;
        assert_eq!(
            home.status.as_u16(),
            207,
            "bob's session with {forged:?} lists bob's home: {}",
            home.body
        );
        assert_eq!(
            principal(&home),
            "/bob/",
            "with {forged:?}, Radicale saw bob and only bob"
        );
        assert!(
            home.body.contains("<href>/bob/home/</href>"),
            "bob's home lists his calendar: {}",
            home.body
        );
    }

    assert_meeting_intact(&mut alice, &stack, "after bob's attempts").await;
}

#[tokio::test]
async fn a_client_sent_remote_user_without_a_session_never_reaches_radicale() {
    let radicale = Radicale::start().await;
    let stack = stack_in_front_of(&radicale).await;
    let mut alice = alice_publishes_the_meeting(&stack).await;

    let mut anonymous = Browser::default();
    for forged in FORGED {
        let navigation = [&[("accept", "text/html,application/xhtml+xml")][..], forged].concat();
        let page = anonymous
            .request(
                Method::GET,
                &stack.url("/alice/work/meeting.ics"),
                &navigation,
                "",
            )
            .await;
        assert_eq!(
            page.status,
            StatusCode::FOUND,
            "a navigation with {forged:?} and no session is sent to log in: {}",
            page.body
        );
        assert!(
            page.location()
                .is_some_and(|l| l.starts_with(&stack.idp.issuer())),
            "with {forged:?}, the redirect goes to the provider: {:?}",
            page.location()
        );

        let unauthenticated = [
            ("GET", get_event(&mut anonymous, &stack, forged).await),
            (
                "PROPFIND",
                propfind(&mut anonymous, &stack, "/alice/", forged).await,
            ),
            (
                "PUT",
                put_event(
                    &mut anonymous,
                    &stack,
                    "/alice/work/meeting.ics",
                    forged,
                    &forged_meeting(),
                )
                .await,
            ),
            (
                "MKCALENDAR",
                anonymous
                    .request(
                        method("MKCALENDAR"),
                        &stack.url("/alice/forged/"),
                        forged,
                        "",
                    )
                    .await,
            ),
            (
                "DELETE",
                anonymous
                    .request(
                        Method::DELETE,
                        &stack.url("/alice/work/meeting.ics"),
                        forged,
                        "",
                    )
                    .await,
            ),
        ];
        for (name, page) in unauthenticated {
            // Radicale never answers 401 here (an anonymous request is 403
            // to it): a 401 with a challenge is the proxy's own.
            assert_eq!(
                page.status,
                StatusCode::UNAUTHORIZED,
                "{name} with {forged:?} and no session is refused by the proxy: {}",
                page.body
            );
            assert!(
                page.headers.contains_key("www-authenticate"),
                "{name} with {forged:?}: the proxy's 401 carries a challenge: {:?}",
                page.headers
            );
        }
    }

    assert_meeting_intact(&mut alice, &stack, "after the forged requests").await;
    let listing = propfind(&mut alice, &stack, "/alice/", &[]).await;
    assert_eq!(
        listing.status.as_u16(),
        207,
        "alice lists her home: {}",
        listing.body
    );
    assert!(
        !listing.body.contains("/alice/forged/"),
        "no forged MKCALENDAR created a calendar: {}",
        listing.body
    );
}
