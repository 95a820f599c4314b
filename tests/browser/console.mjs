// Drives the console in Debian's Chromium (playwright-core): a wrong token refused, sign-in,
// the fleet overview shows the host, the alert list filtered by host, an alert's detail with
// its arguments (HTML in argv rendered as text) and its verification, sign-out. Fails on any
// console error and on any request to another origin. Screenshots go to SHOTS_DIR.
// Usage: node console.mjs BASE_URL ADMIN_TOKEN HOST_ID SHOTS_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [base, token, hostId, shots] = process.argv.slice(2);
mkdirSync(shots, { recursive: true });
const origin = new URL(base).origin;
const problems = [];
const step = (msg) => console.error("console test: " + msg);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("request", (r) => {
    const u = new URL(r.url());
    if (u.origin !== origin && u.protocol !== "data:") problems.push("request outside the server: " + r.url());
  });
  page.on("dialog", (d) => { problems.push("a dialog opened (script ran): " + d.message()); d.dismiss(); });
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  step("a wrong token is refused");
  await page.goto(base + "/console/");
  await page.waitForSelector("#signin-page:not([hidden])");
  await page.fill("#token", "nja_wrong-token");
  await Promise.all([page.waitForNavigation(), page.click("#signin button[type=submit]")]);
  await page.waitForSelector("#signin-error:not([hidden])");
  await shot("1-refused");

  step("sign in");
  await page.fill("#token", token);
  await Promise.all([page.waitForNavigation(), page.click("#signin button[type=submit]")]);
  await page.waitForSelector(`tr[data-host="${hostId}"]`);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "nightjar_session");
  if (!session || !session.httpOnly || session.sameSite !== "Strict") problems.push("session cookie is not HttpOnly + SameSite=Strict: " + JSON.stringify(session));
  const cookieVisible = await page.evaluate(() => document.cookie.includes("nightjar_session"));
  if (cookieVisible) problems.push("the session cookie is readable by script");
  await shot("2-fleet");

  step("filter alerts by host");
  await page.goto(base + "/console/#/alerts");
  await page.waitForSelector("#alert-filters");
  await page.fill("#alert-filters input[name=host]", hostId);
  await page.click("#alert-filters button[type=submit]");
  await page.waitForSelector("tr.alert-row");
  const hosts = await page.$$eval("tr.alert-row td:nth-child(2)", (tds) => tds.map((t) => t.textContent));
  if (!hosts.length || hosts.some((h) => h !== hostId)) problems.push("the host filter shows other hosts: " + hosts);
  await shot("3-alerts");

  step("free-text filter: the alert whose argv holds HTML");
  await page.fill("#alert-filters input[name=q]", "data-evil");
  await page.click("#alert-filters button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("tr.alert-row").length === 1);

  step("open an alert");
  await page.click("tr.alert-row");
  await page.waitForSelector("#verification");
  const verification = await page.textContent("#verification");
  if (!verification.startsWith("verified")) problems.push("verification shows: " + verification);
  const args = await page.$$eval("ul.args li", (lis) => lis.map((l) => l.textContent));
  const evil = args.find((a) => a.includes("<script"));
  if (!args.includes("copy_cred_cache")) problems.push("the arguments are not shown: " + JSON.stringify(args));
  if (!evil) problems.push("the HTML argument is not shown as text: " + JSON.stringify(args));
  const injected = await page.$$eval("script[data-evil], img[data-evil]", (n) => n.length);
  if (injected) problems.push("HTML from an alert became elements");
  await shot("4-detail");

  step("integrity and policies pages render");
  await page.goto(base + "/console/#/integrity");
  await page.waitForSelector("h2:text('Integrity events')");
  await page.goto(base + "/console/#/policies");
  await page.waitForSelector("h2:text('Policy versions')");

  step("sign out");
  await page.click("#signout");
  await page.waitForSelector("#signin-page:not([hidden])");
  // Asked outside the page (a failed fetch there would log a console error by design).
  const after = (await page.request.get(base + "/v1/hosts")).status();
  if (after !== 401) problems.push("the API still answers after sign-out: " + after);
  await shot("5-signed-out");
} catch (e) {
  problems.push("step failed: " + e.message);
} finally {
  await browser.close();
}
console.log(JSON.stringify({ problems }));
process.exit(problems.length ? 1 : 0);
