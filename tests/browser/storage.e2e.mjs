// The console's storage browser in Debian's chromium: the administrator
// creates a namespace with a 1 MiB quota, uploads files at its top and into
// a folder (streamed by the page's script), walks the folders, downloads a
// file byte for byte, takes a presigned URL and reads it with no session,
// is refused past the quota with the API's reason, deletes an object and
// the namespace. Another organization's namespace is a 404.
// (Set up by crates/hood/tests/console.rs.)
// Environment: HOOD_API, HOOD_ADMIN_EMAIL, HOOD_ADMIN_PASSWORD,
// HOOD_CHROMIUM, HOOD_SCREENSHOTS, HOOD_OTHER_NAMESPACE.

import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { API, launch, problems, reportFailure, say, shot, signIn, until, watchPage } from "./lib.mjs";

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function upload(page, files) {
  await page.setInputFiles("#upload-files", files);
  await Promise.all([page.waitForEvent("load"), page.click("#upload button[type=submit]")]);
}

const browser = await launch();
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  watchPage(page, "admin");
  await signIn(page, process.env.HOOD_ADMIN_EMAIL, process.env.HOOD_ADMIN_PASSWORD);

  say("the administrator opens Storage from the navigation");
  await page.click("nav a:has-text('Storage')");
  await page.waitForURL(`${API}/console/storage`);
  assert.equal(await page.textContent("h1"), "Storage");
  assert.match(await page.textContent("#namespaces tbody"), /No namespaces yet/);

  say("a namespace with a 1 MiB byte quota is created");
  await page.fill("#ns-name", "photos");
  await page.fill("#ns-max-mib", "1");
  await page.click("button:has-text('Create namespace')");
  await page.waitForURL(`${API}/console/storage/photos`);
  assert.match(await page.textContent(".flash"), /Namespace photos created/);
  assert.match(await page.textContent("[data-testid=usage-bytes]"), /0 B of 1\.0 MiB/);

  say("two files are uploaded at the top");
  const picture = randomBytes(300_000);
  await upload(page, [
    { name: "hello.txt", mimeType: "text/plain", buffer: Buffer.from("hello storage\n") },
    { name: "picture.bin", mimeType: "application/octet-stream", buffer: picture },
  ]);
  assert.equal(await page.locator("#objects tr[data-key='hello.txt']").count(), 1);
  assert.equal(await page.locator("#objects tr[data-key='picture.bin']").count(), 1);
  assert.match(await page.textContent("[data-testid=usage-objects]"), /^2 of /);

  say("a file goes into a folder that does not exist yet");
  await page.goto(`${API}/console/storage/photos?prefix=${encodeURIComponent("2026/12/")}`);
  assert.match(await page.textContent("[data-testid=crumbs]"), /photos \/ 2026 \/ 12/);
  await upload(page, [{ name: "report one.txt", mimeType: "text/plain", buffer: Buffer.from("in a folder") }]);
  assert.equal(await page.locator("#objects tr[data-key='2026/12/report one.txt']").count(), 1);

  say("the folders are walked from the top");
  await page.click("[data-testid=crumbs] a:has-text('photos')");
  await page.waitForURL(`${API}/console/storage/photos`);
  const folders = await page.locator("#objects tr[data-folder]").evaluateAll((rows) =>
    rows.map((r) => r.getAttribute("data-folder")));
  assert.deepEqual(folders, ["2026/"]);
  await page.click("#objects tr[data-folder='2026/'] a");
  await page.click("#objects tr[data-folder='2026/12/'] a");
  assert.equal(await page.locator("#objects tr[data-key='2026/12/report one.txt']").count(), 1);
  await shot(page, "30-storage-folder");

  say("a download is the file byte for byte");
  await page.click("[data-testid=crumbs] a:has-text('photos')");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("#objects tr[data-key='picture.bin'] a[download]"),
  ]);
  assert.equal(download.suggestedFilename(), "picture.bin");
  assert.equal(sha256(await readFile(await download.path())), sha256(picture));

  say("a presigned URL reads the object with no session");
  await page.click("#objects tr[data-key='hello.txt'] button:has-text('Presigned URL')");
  await page.waitForURL(`${API}/console/storage/photos`);
  const url = await page.inputValue("[data-testid=secret]");
  assert.match(url, /\/api\/v1\/storage\/presigned\/.+\/hello\.txt\?expires=\d+&signature=/);
  const anonymous = await fetch(url);
  assert.equal(anonymous.status, 200);
  assert.equal(await anonymous.text(), "hello storage\n");
  const tampered = await fetch(url.replace("hello.txt", "picture.bin"));
  assert.equal(tampered.status, 403);
  await shot(page, "31-storage-presigned");

  say("an upload past the quota is refused with the API's reason");
  await page.setInputFiles("#upload-files", [
    { name: "too-big.bin", mimeType: "application/octet-stream", buffer: randomBytes(900_000) },
  ]);
  await page.click("#upload button[type=submit]");
  await until("the refusal", 15_000, async () =>
    /Not uploaded: too-big\.bin: .*quota/i.test(await page.textContent("#upload-status")));
  await page.reload();
  assert.equal(await page.locator("#objects tr[data-key='too-big.bin']").count(), 0);
  assert.match(await page.textContent("[data-testid=usage-objects]"), /^3 of /);

  say("an object is deleted");
  await page.click("#objects tr[data-key='hello.txt'] button:has-text('Delete')");
  await page.waitForURL(`${API}/console/storage/photos`);
  assert.match(await page.textContent(".flash"), /Deleted hello\.txt/);
  assert.equal(await page.locator("#objects tr[data-key='hello.txt']").count(), 0);

  say("another organization's namespace is not there");
  const other = await page.goto(`${API}/console/storage/${process.env.HOOD_OTHER_NAMESPACE}`);
  assert.equal(other.status(), 404);
  const otherObject = await page.goto(
    `${API}/console/storage/${process.env.HOOD_OTHER_NAMESPACE}/objects/secret.txt`);
  assert.equal(otherObject.status(), 404);

  say("the namespace is deleted with its objects");
  await page.goto(`${API}/console/storage`);
  await page.click("#namespaces tr[data-namespace=photos] button:has-text('Delete')");
  await page.waitForURL(`${API}/console/storage`);
  assert.match(await page.textContent(".flash"), /being deleted/);
  await until("the namespace gone", 20_000, async () => {
    await page.reload();
    return (await page.locator("#namespaces tr[data-namespace=photos]").count()) === 0;
  });

  assert.deepEqual(problems, [], "no CSP refusal, page error or alert");
  say("done");
  process.stdout.write("@@hood passed\n");
} catch (e) {
  await reportFailure(browser, e);
} finally {
  await browser.close();
}
