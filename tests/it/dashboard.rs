//! The dashboard in a real browser (headless Chromium through chromedriver) against a running
//! `chatgptd up` with data in it: signing in with the token, each section showing its data, a
//! message sent from the page answered, an approval clicked through the page resuming the
//! conversation, a run's graph updating without a reload; and the session cookie's rules.

use chatgptd_testkit::{http_client, wait_until};
use reqwest::header;
use serde_json::{Value, json};

use crate::cli::{Up, WAIT, produce_ticket, tool};
use crate::support::browser::Browser;

/// Data for each section: an answered message, an enriched ticket, a dead letter.
async fn with_data(up: &Up, http: &str) {
    let client = up.client();
    up.wait_ready().await;
    let answered: Value = client
        .post(format!("{http}/agents/wanderweave/messages"))
        .json(&json!({"body": "hello from the test", "wait": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answered["status"], "answered", "{answered}");
    produce_ticket(&up.data_dir, 7);
    let letter = r#"{"source_topic":"tickets.events","source_partition":0,"source_offset":0,"key":"k","value":"raw bytes","error_class":"validation","error_message":"no ticket key in the payload","attempts":1,"worker":"test"}"#;
    let produced = tool(
        &up.data_dir,
        &["produce", "chatgptd.deadletter", "--value", letter],
    );
    assert!(produced.status.success(), "{produced:?}");
}

fn token(up: &Up) -> String {
    let file = chatgptd_node::auth::token_file(&up.data_dir);
    chatgptd_node::auth::read_token_file(&file).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_cookie_authenticates_and_unsafe_calls_need_the_csrf_header() {
    let up = Up::start().await;
    let http = up.info()["http"].as_str().unwrap().to_string();
    let anonymous = http_client();

    let page = anonymous.get(format!("{http}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/assets/app.js"));
    let missing = anonymous
        .get(format!("{http}/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let wrong = anonymous
        .post(format!("{http}/session"))
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());

    let signed_in = anonymous
        .post(format!("{http}/session"))
        .bearer_auth(token(&up))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 200);
    let set = signed_in.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    let agents = anonymous
        .get(format!("{http}/agents"))
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(agents.status(), 200);
    let send = |csrf: bool| {
        let mut request = anonymous
            .post(format!("{http}/agents/wanderweave/messages"))
            .header(header::COOKIE, &cookie)
            .json(&json!({"body": "hello", "wait": false}));
        if csrf {
            request = request.header("x-chatgptd-csrf", "1");
        }
        request.send()
    };
    let forged = send(false).await.unwrap();
    assert_eq!(forged.status(), 403);
    assert_eq!(forged.json::<Value>().await.unwrap()["error"], "csrf");
    assert_eq!(send(true).await.unwrap().status(), 202);

    let out = anonymous
        .delete(format!("{http}/session"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(
        out.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_dashboard_in_a_browser_shows_sends_approves_and_follows_a_run() {
    // A price for the offline model (made up for the test), so the fleet view shows a cost.
    let up = Up::start_with_config(
        "[model.prices.offline-1]\ninput_per_million = 1000.0\noutput_per_million = 3000.0\n",
    )
    .await;
    let http = up.info()["http"].as_str().unwrap().to_string();
    with_data(&up, &http).await;
    // A run started over the API, not from the page: the runs view lists it all the same.
    let started: Value = up
        .client()
        .post(format!("{http}/workflows/research/runs"))
        .json(&json!({"input": {"question": "Ferries or flights to the islands?"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_run = started["run_id"].as_str().unwrap().to_string();
    let browser = Browser::start().await;
    browser.client.goto(&format!("{http}/")).await.unwrap();

    // A wrong token is refused with a message; up's own signs in.
    browser.fill("#token", "not-the-token").await;
    browser.click("#signin-button").await;
    browser
        .wait_text("#signin-error", "not one of this server's API tokens")
        .await;
    browser.fill("#token", &token(&up)).await;
    browser.click("#signin-button").await;
    browser.wait_text("#status", "signed in as").await;
    // Set once: a reload would lose it, so its presence at the end shows the page stayed.
    browser.eval("window.dashboardMarker = 1;").await;

    // Fleets with their agents and today's usage; tickets; dead letters; search.
    browser.wait_text("#fleet-list", "Wanderweave").await;
    browser.wait_text("#usage", "offline-1").await;
    // The cost the server counts (the run above still adds to it), as the page writes it.
    let client = up.client();
    let (page, usage_url) = (&browser, format!("{http}/usage"));
    wait_until(WAIT, "the fleet view to show the server's cost", || async {
        let usage: Value = client
            .get(&usage_url)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let total = usage["totals"]["cost"]
            .as_f64()
            .filter(|cost| *cost > 0.0)?;
        let agents = usage["agents"].as_array()?;
        let wanderweave = agents.iter().find(|a| a["agent"] == "wanderweave")?;
        let own = wanderweave["cost"].as_f64()?;
        let shown = page.text("#usage").await?;
        let row = page.text("#fleet-list tr[data-agent=wanderweave]").await?;
        (shown.contains(&format!("${total:.6}")) && row.contains(&format!("${own:.6}")))
            .then_some(())
    })
    .await;
    browser.wait_text("#ticket-list", "PROJ-7").await;
    browser
        .wait_text("#deadletter-list", "no ticket key in the payload")
        .await;
    // What a replay would do, asked through the API (`POST /dead-letters/replay`).
    browser.click("button[data-tab=deadletters]").await;
    browser.click("#replay-dry").await;
    browser
        .wait_text("#replay-result", "1 would be replayed")
        .await;
    browser.click("button[data-tab=search]").await;
    browser.fill("#search-input", "hello").await;
    browser.click("#search-button").await;
    browser
        .wait_text("#search-results", "hello from the test")
        .await;

    // A message from the page, answered by the (offline) model; the history shows.
    browser.click("button[data-tab=conversation]").await;
    choose(&browser, "#agent-select", "wanderweave").await;
    browser.wait_text("#messages", "hello from the test").await;
    browser.fill("#message-input", "tell me about Lisbon").await;
    browser.click("#send-button").await;
    browser
        .wait_text(".message.answer", "on \"tell me about Lisbon\"")
        .await;

    // An action that needs a person: asked from the page, approved through the page, and the
    // conversation resumes with the outcome (no executor for access changes here).
    choose(&browser, "#agent-select", "shield-core").await;
    browser
        .fill("#message-input", "grant sam viewer access")
        .await;
    browser.click("#send-button").await;
    browser.click("button[data-tab=approvals]").await;
    browser.wait_text("#approval-list", "modify_access").await;
    browser
        .wait_text("#approval-list", "shield-core wants to modify_access")
        .await;
    browser.fill(".approval .reason", "ticket SEC-12").await;
    browser.click(".approval .approve").await;
    browser.wait_text("#messages", "no executor").await;
    browser.wait_text("#approval-list", "Nothing waits").await;

    // A run started from the page: its graph is redrawn from the run's event stream as its
    // steps change state, without a reload.
    browser.click("button[data-tab=workflows]").await;
    choose(&browser, "#workflow-select", "research").await;
    browser
        .eval(
            "window.seen = [];
             new MutationObserver(() => {
               for (const s of document.querySelectorAll('#run-graph .step'))
                 window.seen.push(s.dataset.step + ':' + s.dataset.state);
             }).observe(document.getElementById('run-graph'), {childList: true, subtree: true});",
        )
        .await;
    browser
        .fill(
            "#workflow-input",
            r#"{"question": "Should we sell night-train passes?"}"#,
        )
        .await;
    browser.click("#start-run").await;
    let page = &browser;
    wait_until(WAIT, "the run's last step to succeed", || async move {
        let state = page
            .eval("const s = document.querySelector('#run-graph .step[data-step=synthesize]'); return s && s.dataset.state;")
            .await;
        (state == "succeeded").then_some(())
    })
    .await;
    let seen = browser.eval("return window.seen;").await;
    let seen: Vec<String> = serde_json::from_value(seen).unwrap();
    assert!(
        seen.iter()
            .any(|s| s.starts_with("synthesize:") && s != "synthesize:succeeded"),
        "the graph showed the last step before it succeeded: {seen:?}"
    );
    assert!(
        seen.contains(&"synthesize:succeeded".to_string()),
        "{seen:?}"
    );
    assert_eq!(browser.eval("return window.dashboardMarker;").await, 1);
    browser.wait_text("#run-status", "succeeded").await;

    // The run started over the API (not from this page) is listed, and opens.
    browser.wait_text("#run-list", &api_run[..8]).await;
    browser
        .click(&format!("#run-list button[data-run=\"{api_run}\"]"))
        .await;
    browser.wait_text("#run-title", &api_run).await;
    browser.wait_text("#run-status", "succeeded").await;
}

/// Selects `value` in the `<select>` matching `css`, as a person's choice does (a change
/// event).
async fn choose(browser: &Browser, css: &str, value: &str) {
    let script = "const s = document.querySelector(arguments[0]); s.value = arguments[1];
                  s.dispatchEvent(new Event('change')); return s.value;";
    wait_until(WAIT, &format!("{value} in {css}"), || async move {
        let chosen = browser
            .client
            .execute(script, vec![json!(css), json!(value)])
            .await
            .ok()?;
        (chosen == value).then_some(())
    })
    .await;
}
