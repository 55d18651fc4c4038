// The console end to end in Debian's chromium, driven by Playwright.
//
// Run by crates/hood/tests/console_browser.rs, which starts `hood up`,
// pushes the anvil binary, and answers this script's requests on stdin
// (a line `@@hood kill-host <host id>` on stdout asks it to kill a host's
// processes; it answers `ok`). Environment: HOOD_API, HOOD_EDGE,
// HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD, HOOD_CHROMIUM, HOOD_SCREENSHOTS.
// Exits non-zero, naming the failed step, when anything is not as it must be.

import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { API, launch, problems, reportFailure, say, shot, signIn, until, watchPage } from "./lib.mjs";

const EDGE = process.env.HOOD_EDGE;
const ADMIN_EMAIL = process.env.HOOD_ADMIN_EMAIL;
const ADMIN_PASSWORD = process.env.HOOD_ADMIN_PASSWORD;
const CUSTOMER_EMAIL = "ops@acme.test";
const CUSTOMER_PASSWORD = "acme-customer-password-1";
const CHAIN = "ethereum-anvil";

const stdin = createInterface({ input: process.stdin });
const answers = stdin[Symbol.asyncIterator]();
async function ask(line) {
  process.stdout.write(`@@hood ${line}\n`);
  const { value } = await answers.next();
  assert.equal(value, "ok", `the harness refused: ${line}`);
}

async function secretShown(page) {
  const input = page.locator("[data-testid=secret]");
  await input.waitFor();
  return input.inputValue();
}

async function rpc(key, method = "eth_blockNumber") {
  const r = await fetch(`${EDGE}/${CHAIN}/v1/${key}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: [] }),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

const browser = await launch();

try {
  // -- the administrator ------------------------------------------------
  say("the administrator signs in");
  const adminContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const admin = await adminContext.newPage();
  watchPage(admin, "admin");
  await admin.goto(`${API}/console/nodes`);
  await admin.waitForURL(/\/console\/login\?next=/);
  await shot(admin, "01-sign-in");
  await admin.fill("#email", ADMIN_EMAIL);
  await admin.fill("#password", "not the password");
  await admin.click("button:has-text('Sign in')");
  assert.match(await admin.textContent("[role=alert]"), /Wrong e-mail or password/);
  await signIn(admin, ADMIN_EMAIL, ADMIN_PASSWORD);

  say("keyboard: the first tab stop skips to the content");
  await admin.keyboard.press("Tab");
  assert.equal(await admin.evaluate(() => document.activeElement.textContent), "Skip to content");
  await shot(admin, "02-overview-admin");

  say("the administrator creates an organization and its first user");
  await admin.goto(`${API}/console/orgs`);
  await admin.fill("#org-name", "Acme Chains");
  await admin.fill("#org-slug", "acme");
  await admin.click("button:has-text('Create organization')");
  await admin.waitForURL(/\/console\/orgs\/[0-9a-f-]+$/);
  assert.equal(await admin.textContent("h1"), "Acme Chains");
  await admin.fill("#user-email", CUSTOMER_EMAIL);
  await admin.fill("#user-name", "Acme Ops");
  await admin.selectOption("#user-role", "admin");
  await admin.fill("#user-password", CUSTOMER_PASSWORD);
  await admin.click("button:has-text('Add user')");
  await admin.waitForSelector(`td:has-text('${CUSTOMER_EMAIL}')`);
  await shot(admin, "03-organization");

  say("an organization named like a script renders as text");
  await admin.goto(`${API}/console/orgs`);
  await admin.fill("#org-name", "<script>alert(1)</script>");
  await admin.fill("#org-slug", "xss-test");
  await admin.click("button:has-text('Create organization')");
  await admin.waitForURL(/\/console\/orgs\/[0-9a-f-]+$/);
  assert.equal(await admin.textContent("h1"), "<script>alert(1)</script>");
  await admin.goto(`${API}/console/orgs`);
  assert.ok(
    (await admin.locator("[data-testid=org-name]").allTextContents()).includes("<script>alert(1)</script>"),
  );
  await shot(admin, "04-organizations");

  say("the administrator signs out");
  await admin.click("button:has-text('Sign out')");
  await admin.waitForURL(/\/console\/login/);
  await admin.goto(`${API}/console`);
  await admin.waitForURL(/\/console\/login/);
  await adminContext.close();

  // -- the customer -----------------------------------------------------
  say("the customer signs in");
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watchPage(page, "customer");
  await signIn(page, CUSTOMER_EMAIL, CUSTOMER_PASSWORD);
  const cookies = await context.cookies();
  for (const name of ["hood_access", "hood_refresh", "hood_csrf"]) {
    const c = cookies.find((c) => c.name === name);
    assert.ok(c, `cookie ${name}`);
    assert.equal(c.httpOnly, true, `${name} is HttpOnly`);
    assert.equal(c.sameSite, "Strict", `${name} is SameSite=Strict`);
  }

  say("the customer creates an RPC key and sees its secret once");
  await page.goto(`${API}/console/rpc-keys`);
  await page.fill("#rpc-name", "dapp-frontend");
  await page.check(`input[name=chains][value=${CHAIN}]`);
  await page.fill("#rpc-denied", "debug_*");
  await page.click("button:has-text('Create RPC key')");
  const key = await secretShown(page);
  assert.match(key, /^hrpc_/);
  await shot(page, "05-rpc-key-created");
  await page.reload();
  assert.equal(await page.locator("[data-testid=secret]").count(), 0, "the secret is shown only once");
  assert.ok(!(await page.content()).includes(key), "the page never shows the secret again");

  say("the customer creates a node and watches it become healthy without reloading");
  await page.goto(`${API}/console/nodes`);
  await page.selectOption("#chain", CHAIN);
  await page.fill("#node-name", "acme-devnet");
  await page.click("button:has-text('Create node')");
  await page.waitForURL(/\/console\/nodes\/[0-9a-f-]+$/);
  const nodeUrl = page.url();
  const nodeId = nodeUrl.split("/").pop();
  await page.evaluate(() => {
    window.__hoodSamePage = true;
    window.__hoodStates = [];
    const el = document.querySelector("[data-testid=node-state]");
    new MutationObserver(() => window.__hoodStates.push(el.textContent.trim()))
      .observe(el, { childList: true, subtree: true, characterData: true });
  });
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  await until("the node healthy", 120000, async () =>
    (await page.textContent("[data-testid=node-state]")).trim() === "healthy");
  await until("its endpoint and host, live", 20000, async () =>
    (await page.textContent("[data-node-field=rpc_endpoint]")).startsWith("http://")
    && /^[0-9a-f-]{36}$/.test((await page.textContent("[data-node-field=host_id]")).trim()));
  const nodeHost = (await page.textContent("[data-node-field=host_id]")).trim();

  say("the head rises on the node's page without reloading");
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const head = async () => Number((await page.textContent("[data-testid=node-head]")).trim());
  const first = await until("a head", 30000, async () => { const h = await head(); return h > 0 ? h : null; });
  await until("the head to rise", 30000, async () => (await head()) >= first + 2);
  assert.equal(await page.evaluate(() => window.__hoodSamePage), true, "no reload happened");
  assert.deepEqual(requests, [], "the page polled nothing: updates came over its event stream");
  await until("a log tail", 20000, async () => /anvil \|/.test(await page.textContent("#log-tail")));
  await shot(page, "06-node-healthy");

  say("the administrator watches the node's host on the cluster monitor");
  const opsContext = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const ops = await opsContext.newPage();
  watchPage(ops, "operator");
  await signIn(ops, ADMIN_EMAIL, ADMIN_PASSWORD);
  await ops.goto(`${API}/console/hosts`);
  await ops.click(`a[href="/console/hosts/${nodeHost}"]`);
  await ops.waitForURL(new RegExp(`/console/hosts/${nodeHost}$`));
  const cpuPoints = await until("three heartbeats charted", 30000, async () => {
    await ops.reload();
    const n = Number(await ops.getAttribute("svg[data-testid=chart-cpu]", "data-points"));
    return n >= 3 && (await ops.$("[data-testid=cpu-now]")) ? n : null;
  });
  assert.match(await ops.textContent("[data-testid=cpu-now]"), /^\d+(\.\d)? %$/);
  for (const chart of ["chart-memory", "chart-disk"]) {
    const points = Number(await ops.getAttribute(`svg[data-testid=${chart}]`, "data-points"));
    assert.ok(points >= cpuPoints, `${chart} has a point per heartbeat`);
    assert.match(await ops.getAttribute(`svg[data-testid=${chart}] path.line`, "d"), /^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+)+$/);
  }
  assert.equal(await ops.locator("svg[data-testid=chart-network] path.line").count(), 2, "received and sent");
  await ops.click("nav.tabs a:has-text('15 min')");
  await ops.waitForURL(/\?minutes=15$/);
  assert.equal(await ops.getAttribute("nav.tabs a[aria-current=page]", "href"), `/console/hosts/${nodeHost}?minutes=15`);
  await shot(ops, "16b-host-monitor");
  await opsContext.close();

  say("the customer puts the node on the public status page");
  await page.click("[data-testid=toggle-public]");
  await page.waitForSelector("text=On the public status page");

  say("the RPC key works through the edge");
  for (let i = 0; i < 3; i++) {
    const r = await rpc(key);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.match(r.body.result, /^0x/);
  }

  say("the usage chart counts those calls, as the API does");
  await page.goto(`${API}/console/api-keys`);
  await page.fill("#key-name", "usage-check");
  await page.check("input[name=scopes][value=read]");
  await page.click("button:has-text('Create API key')");
  const apiKey = await secretShown(page);
  const apiTotals = await until("three calls metered", 30000, async () => {
    const r = await fetch(`${API}/api/v1/usage`, { headers: { authorization: `Bearer ${apiKey}` } });
    const body = await r.json();
    return body.totals.requests === 3 ? body.totals : null;
  });
  await page.goto(`${API}/console/usage`);
  assert.equal(Number(await page.textContent("[data-testid=usage-total-requests]")), apiTotals.requests);
  assert.equal(Number(await page.textContent("[data-testid=usage-total-cu]")), apiTotals.compute_units);
  const charted = await page.$$eval("svg[data-testid=usage-by-chain] g.col",
    (cols) => cols.reduce((sum, c) => sum + Number(c.getAttribute("data-total")), 0));
  assert.equal(charted, 3, "the chart's bars add up to the calls");
  assert.equal(await page.textContent("#usage-methods tbody tr td"), "eth_blockNumber");
  await shot(page, "07-usage");
  await page.selectOption("#u-granularity", "day");
  await page.click("button:has-text('Show')");
  assert.equal(Number(await page.textContent("[data-testid=usage-total-requests]")), 3);

  say("the customer revokes the RPC key, and the edge refuses it");
  await page.goto(`${API}/console/rpc-keys`);
  await page.click("tr[data-rpc-key] button:has-text('Revoke')");
  await page.waitForSelector("[data-testid=revoked]");
  await until("the edge to refuse the revoked key", 15000, async () => (await rpc(key)).status === 401);
  await shot(page, "08-rpc-keys");

  say("the customer adds a webhook channel and sends it a test");
  const received = [];
  const hook = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => { received.push({ headers: req.headers, body }); res.end("ok"); });
  });
  await new Promise((r) => hook.listen(0, "127.0.0.1", r));
  await page.goto(`${API}/console/channels`);
  await page.fill("#ch-name", "ops-hook");
  await page.selectOption("#ch-kind", "webhook");
  assert.equal(await page.isVisible("#ch-slack-webhook_url"), false, "only the chosen kind's fields show");
  await page.fill("#ch-webhook-url", `http://127.0.0.1:${hook.address().port}/hook`);
  await page.fill("#ch-webhook-secret", "a-signing-secret-for-tests");
  await page.click("button:has-text('Add channel')");
  await page.waitForSelector("text=Channel ops-hook added.");
  assert.ok(!(await page.content()).includes("a-signing-secret-for-tests"), "the secret is never shown");
  await page.click("button:has-text('Send a test')");
  await page.waitForSelector("text=Test message delivered.");
  assert.equal(received.length, 1);
  assert.match(JSON.stringify(received[0].headers), /signature/i);
  await shot(page, "08b-channels");
  hook.close();

  say("the node's host dies: the node goes down and the incident appears live");
  await page.goto(nodeUrl);
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  await page.evaluate(() => {
    window.__hoodSamePage = true;
    window.__hoodStates = [];
    const el = document.querySelector("[data-testid=node-state]");
    new MutationObserver(() => window.__hoodStates.push(el.textContent.trim()))
      .observe(el, { childList: true, subtree: true, characterData: true });
  });
  const hostId = (await page.textContent("dt:has-text('Host') + dd")).trim();
  assert.match(hostId, /^[0-9a-f-]{36}$/);
  say("the customer's inbox, open in another tab, follows their notifications");
  const inbox = await page.context().newPage();
  watchPage(inbox, "inbox");
  await inbox.goto(`${API}/console/notifications`);
  await inbox.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  await inbox.evaluate(() => { window.__hoodSamePage = true; });
  const rowsBefore = await inbox.locator("table#notifications tbody tr[data-notification]").count();
  await ask(`kill-host ${hostId}`);
  await until("the node down, live on its page", 60000, async () =>
    (await page.locator("#timeline li[data-to=down]").count()) > 0);
  const badges = await page.evaluate(() => window.__hoodStates);
  process.stdout.write(`states shown: ${JSON.stringify(badges)}\n`);
  const row = page.locator("table[data-incidents] tr[data-incident]").first();
  await row.waitFor({ timeout: 30000 });
  assert.equal(await page.evaluate(() => window.__hoodSamePage), true, "no reload happened");
  await shot(page, "09-node-down-incident");

  say("the outage reaches the inbox live: a toast, a row and the unread count");
  await until("a toast and a new row in the inbox", 30000, async () =>
    (await inbox.locator("#toasts .toast").count()) > 0
    && (await inbox.locator("table#notifications tbody tr[data-notification]").count()) > rowsBefore);
  assert.equal(await inbox.evaluate(() => window.__hoodSamePage), true, "the inbox did not reload");
  assert.ok(await inbox.isVisible("[data-testid=unread-count]"), "the header shows the unread count");
  const unread = Number(await inbox.textContent("[data-testid=unread-count]"));
  assert.ok(unread > 0, `unread ${unread}`);
  await shot(inbox, "09b-inbox-live");
  await inbox.reload();
  await inbox.click("[data-testid=mark-all-read]");
  const marked = Number((await inbox.textContent(".flash p")).match(/^(\d+) marked read\.$/)[1]);
  assert.ok(marked >= 1, `marked ${marked}`);
  await inbox.close();

  say("the customer acknowledges the incident");
  await row.locator("button:has-text('Acknowledge')").click();
  await page.waitForSelector("text=Incident acknowledged");
  const states = await page.locator("table[data-incidents] [data-testid=incident-state]").allTextContents();
  assert.ok(states.some((s) => s.trim() === "acknowledged" || s.trim() === "resolved"), `states: ${states}`);
  await page.goto(`${API}/console/incidents?all=true`);
  await page.waitForSelector("tr[data-incident]");
  await shot(page, "10-incidents");

  say("the outage shows on the public status page");
  const visitor = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const statusPage = await visitor.newPage();
  watchPage(statusPage, "visitor");
  await until("today's bar to show the outage", 20000, async () => {
    await statusPage.goto(`${API}/status`);
    const today = statusPage.locator(`section[data-chain=${CHAIN}] svg.strip rect.day`).last();
    const cls = await today.getAttribute("class");
    return cls && !/\bup\b/.test(cls) && !/\bnone\b/.test(cls);
  });
  assert.match(await statusPage.textContent(`section[data-chain=${CHAIN}] [data-testid=chain-uptime]`), /%/);
  const badge = await fetch(`${API}/status/badges/${nodeId}.svg`);
  assert.equal(badge.status, 200);
  assert.match(await badge.text(), /acme-devnet/);
  await shot(statusPage, "11-status");

  say("the customer deletes the node and watches it terminate");
  await page.goto(nodeUrl);
  await page.waitForSelector("#live-status[data-state=live]", { timeout: 10000 });
  await page.click("button:has-text('Delete node')");
  await page.waitForSelector("text=The node is being terminated.");
  // The timeline and the state badge are separate live updates: wait for
  // both rather than reading the badge the instant the timeline moves.
  await until("the node terminated, live on its page", 60000, async () =>
    (await page.locator("#timeline li[data-to=terminated]").count()) > 0 &&
    (await page.textContent("[data-testid=node-state]")).trim() === "terminated");
  await shot(page, "11b-node-terminated");

  say("phone width and dark mode");
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(nodeUrl);
  await shot(page, "12-node-phone");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page fits a phone's width (overflow ${overflow}px)`);
  await page.emulateMedia({ colorScheme: "dark" });
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.goto(`${API}/console`);
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, "rgb(246, 248, 250)", "dark mode changes the background");
  await shot(page, "13-overview-dark");
  for (const [name, path] of [["14-nodes", "/console/nodes"], ["15-channels", "/console/channels"], ["16-hosts", "/console/hosts"], ["17-chains", "/console/chains"], ["18-workflows", "/console/workflows"]]) {
    await page.emulateMedia({ colorScheme: "light" });
    await page.goto(`${API}${path}`);
    await shot(page, name);
  }

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
  stdin.close();
}
